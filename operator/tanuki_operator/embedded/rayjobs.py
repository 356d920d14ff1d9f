"""KubeRay's part for one machine: a RayJob's Ray cluster is this node, its driver one pod.

What the operator rendered runs: the RayJob's ``entrypoint`` in a pod made from its head group's
template (a submitted job's driver runs on the head): its env, volumes, labels and termination
message. A cluster runs ``ray start`` in head and worker pods and submits the entrypoint (the
submitter pod does, and reports); here the driver gets ``RAY_ADDRESS=local``, Ray's own way of having
``ray.init("auto")`` start Ray inside the driver's process, on this node, within the cores the
head and the workers ask for together (at most the node's). So a SynthJob in cluster mode or a
TokenizeJob with ``spec.ray`` runs under ``tanuki local apply`` as the same program, on Ray Data,
as on KubeRay.

The status is KubeRay's: ``jobDeploymentStatus`` (Initializing, Running, Complete, Failed,
Suspended), ``jobStatus`` (RUNNING, SUCCEEDED, FAILED), ``startTime``, ``endTime``, ``message``,
``succeeded``/``failed``. A failed driver runs anew up to ``backoffLimit`` times, as KubeRay
submits a failed RayJob again; ``suspend`` stops the driver (disrupted, not failed); a driver the
runner was stopped in runs anew, and the program resumes what it had finished.
"""

from __future__ import annotations

import shlex
from typing import Any

from tanuki_operator.embedded.node import Node
from tanuki_operator.units import cpu_cores, now

API = ("ray.io/v1", "RayJob")
DRIVER_LABEL = "local.tanuki.dev/ray-driver"
FINISHED = ("SUCCEEDED", "FAILED", "STOPPED")


def requested_cores(rayjob: dict[str, Any]) -> float:
    """The cores the RayJob's head and all its workers ask for together."""
    cluster = rayjob["spec"].get("rayClusterSpec") or {}

    def of(template: dict[str, Any]) -> float:
        container = template["spec"]["containers"][0]
        return cpu_cores(((container.get("resources") or {}).get("requests") or {}).get("cpu"))

    head = of(cluster["headGroupSpec"]["template"]) if "headGroupSpec" in cluster else 0.0
    return head + sum(int(group.get("replicas") or 0) * of(group["template"])
                      for group in cluster.get("workerGroupSpecs") or [])


def driver_template(rayjob: dict[str, Any]) -> dict[str, Any]:
    """The pod the entrypoint runs in: the head's, where a Ray cluster runs a submitted job's driver.
    It runs once (a failed driver is submitted again by the RayJob's backoff, not restarted in place)."""
    template: dict[str, Any] = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    return {**template, "spec": {**template["spec"], "restartPolicy": "Never"}}


class RayJobController:
    """One pass over the store's RayJobs (``sync``), starting their drivers on ``kubelet``."""

    def __init__(self, kubelet: Node) -> None:
        self.kubelet = kubelet
        self.store = kubelet.store

    def rayjobs(self) -> list[dict[str, Any]]:
        return self.store.of_kind(*API)

    def drivers(self, rayjob: dict[str, Any]) -> list[dict[str, Any]]:
        return [pod for pod in self.kubelet.pods_of(rayjob) if DRIVER_LABEL in (pod["metadata"].get("labels") or {})]

    def cores(self, rayjob: dict[str, Any]) -> float:
        return min(requested_cores(rayjob) or 1.0, self.kubelet.capacity)

    def wants_driver(self, rayjob: dict[str, Any]) -> bool:
        status = rayjob.get("status") or {}
        if rayjob["spec"].get("suspend") or status.get("jobStatus") in FINISHED:
            return False
        return not any((pod.get("status") or {}).get("phase") in (None, "Pending", "Running")
                       for pod in self.drivers(rayjob))

    def sync(self) -> None:
        for rayjob in self.rayjobs():
            self.sync_one(rayjob)

    def sync_one(self, rayjob: dict[str, Any]) -> None:
        meta, spec, status = rayjob["metadata"], rayjob["spec"], rayjob.get("status") or {}
        if status.get("jobStatus") in FINISHED:
            return
        drivers = self.drivers(rayjob)
        if spec.get("suspend"):
            for pod in drivers:
                self.kubelet.terminate(meta["namespace"], pod["metadata"]["name"], evict=True)
            if status.get("jobDeploymentStatus") != "Suspended":
                self._status(rayjob, {"jobDeploymentStatus": "Suspended", "jobStatus": None, "startTime": None,
                                      "message": "suspended: the driver is stopped"})
            return
        phases = [(pod.get("status") or {}).get("phase") for pod in drivers]
        succeeded = [pod for pod, phase in zip(drivers, phases, strict=True) if phase == "Succeeded"]
        failed = [pod for pod, phase in zip(drivers, phases, strict=True)
                  if phase == "Failed" and not self.kubelet.counts_as_disruption(pod)]
        if succeeded:
            self._status(rayjob, {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "endTime": now(),
                                  "succeeded": 1, "failed": len(failed), "message": "the driver finished"})
            return
        if len(failed) > int(spec.get("backoffLimit") or 0):
            last = failed[-1]
            self._status(rayjob, {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "endTime": now(),
                                  "failed": len(failed), "message": f"driver {self.kubelet.exit_summary(last)}"})
            return
        if not self.wants_driver(rayjob):
            if status.get("failed", 0) != len(failed):
                self._status(rayjob, {"failed": len(failed)})
            return
        if not self.kubelet.fits_cores(self.cores(rayjob)):
            if not status.get("jobDeploymentStatus"):
                self._status(rayjob, {"jobDeploymentStatus": "Initializing", "message": "waiting for cores"})
            return
        command = shlex.split(spec["entrypoint"])
        started = self.kubelet.start_pod(rayjob, driver_template(rayjob), f"{meta['name']}-driver", self.cores(rayjob),
                                         set(), {}, labels={DRIVER_LABEL: "true"}, annotations={},
                                         manager="kuberay-operator", command=command, env={"RAY_ADDRESS": "local"})
        if started:
            self._status(rayjob, {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "failed": len(failed),
                                  "startTime": status.get("startTime") or now(), "message": "the driver runs"})

    def _status(self, rayjob: dict[str, Any], status: dict[str, Any]) -> None:
        meta = rayjob["metadata"]
        self.store.patch_status(*API, meta["namespace"], meta["name"], status, manager="kuberay-operator")
