"""The Deployment controller for one machine: each Deployment's pods run on the local kubelet.

A Deployment owns its pods directly here (a cluster puts a ReplicaSet per template between them);
the ``pod-template-hash`` label tells the pods of the current template from older ones. What it
does is a cluster's RollingUpdate with ``maxUnavailable: 0``: pods of the current template are
started up to ``spec.replicas`` (a surge), and a pod of an older template is deleted only while
the current template's ready pods, with the old ones kept, still add up to ``spec.replicas``.
Scaling down deletes not-ready pods first, then the newest. A pod that ended (the runner stopped,
its node went away) is replaced. The status has ``replicas``, ``updatedReplicas``,
``readyReplicas``, ``availableReplicas``, ``unavailableReplicas`` and ``observedGeneration``.
Containers restart in their pod (``restartPolicy: Always``, the kubelet's back-off), so a crash
loop shows on the pod, where the operator reads it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tanuki_operator.embedded.node import Node, pod_ready

API = ("apps/v1", "Deployment")
HASH_LABEL = "pod-template-hash"
SERVER_CORES = 0.0
"""What a Deployment's pod takes of the node's cores: none. Its pods are servers that run until
they are stopped, and a batch stage may wait for one (a DPOJob for its judge): were they fitted
into ``--cpus`` like a stage's pods, a server could wait for cores held by the stage waiting for
it. They share the machine's cores, as pods without CPU requests do."""


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def alive(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in (None, "Pending", "Running")


def _removal_order(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Which pods go first when some must: not ready before ready, newest before oldest."""
    newest_first = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
    return sorted(newest_first, key=pod_ready)  # a stable sort keeps newest first among equals


class DeploymentController:
    """One pass over the store's Deployments (``sync``), their pods started on ``kubelet``."""

    def __init__(self, kubelet: Node) -> None:
        self.kubelet = kubelet
        self.store = kubelet.store

    def deployments(self) -> list[dict[str, Any]]:
        return self.store.of_kind(*API)

    def sync(self) -> None:
        for deployment in self.deployments():
            self.sync_one(deployment)

    def sync_one(self, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        if self.store.get(*API, meta["namespace"], meta["name"]) is None:
            # deleted since the pass listed it (a retired revision): its pods are going, none is replaced
            return
        replicas = int(spec.get("replicas", 1))
        current_hash = template_hash(spec["template"])
        pods = self.kubelet.pods_of(deployment)
        for pod in pods:
            if not alive(pod):  # ended (disrupted, or it could not run): a new one takes its place
                self.store.delete("v1", "Pod", meta["namespace"], pod["metadata"]["name"])
        live = [pod for pod in pods if alive(pod)]
        current = [pod for pod in live if (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == current_hash]
        older = [pod for pod in live if pod not in current]
        for _ in range(replicas - len(current)):
            if not self._start(deployment, current_hash):
                break
        for pod in _removal_order(current)[:max(len(current) - replicas, 0)]:
            self.store.delete("v1", "Pod", meta["namespace"], pod["metadata"]["name"])
        keep_older = max(replicas - sum(1 for pod in current if pod_ready(pod)), 0)
        for pod in _removal_order(older)[:max(len(older) - keep_older, 0)]:
            self.store.delete("v1", "Pod", meta["namespace"], pod["metadata"]["name"])
        self.report(deployment)

    def _start(self, deployment: dict[str, Any], current_hash: str) -> bool:
        template = deployment["spec"]["template"]
        template = {**template, "spec": {**template["spec"], "restartPolicy": "Always"}}
        return self.kubelet.start_pod(deployment, template, f"{deployment['metadata']['name']}-{current_hash}",
                                      SERVER_CORES, set(), {}, labels={HASH_LABEL: current_hash}, annotations={},
                                      manager="deployment-controller")

    def report(self, deployment: dict[str, Any]) -> None:
        """Write the Deployment's status from its pods as they are now."""
        meta = deployment["metadata"]
        current_hash = template_hash(deployment["spec"]["template"])
        live = [pod for pod in self.kubelet.pods_of(deployment) if alive(pod)]
        ready_count = sum(1 for pod in live if pod_ready(pod))
        wanted = int(deployment["spec"].get("replicas", 1))
        status = {"observedGeneration": meta.get("generation"), "replicas": len(live),
                  "updatedReplicas": sum(1 for pod in live
                                         if (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == current_hash),
                  "readyReplicas": ready_count, "availableReplicas": ready_count,
                  "unavailableReplicas": max(wanted - ready_count, 0)}
        known = deployment.get("status") or {}
        if any(known.get(key) != value for key, value in status.items()):
            self.store.patch_status(*API, meta["namespace"], meta["name"], status, manager="deployment-controller")
