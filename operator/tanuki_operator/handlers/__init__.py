"""Reconciliation (``reconcile``: no kopf) and its kopf wiring (``kopf_handlers``, imported by
``tanuki_operator.main`` only, so importing the reconciler registers nothing)."""
