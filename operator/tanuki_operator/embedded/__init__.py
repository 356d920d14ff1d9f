"""The operator's control plane on one machine: an object store behind the operator's API seam and a
kubelet that runs the pods the operator renders as local processes (``tanuki local``)."""
