"""tanuki operator: CRDs, render layer and kopf handlers (issue: Operator)."""
