"""Building blocks shared by the per-kind renderers (pure: plain dicts, no API client)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

from tanuki_operator.api.common import JobSpec, Resources, Scheduling, Storage
from tanuki_pipelines.outputs import MESSAGE_ENV as OUTPUTS_MESSAGE_ENV

RECIPE_MOUNT = "/etc/tanuki"
RECIPE_FILE = "recipe.yaml"
TERMINATION_LOG = "/dev/termination-log"
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Settings:
    """Operator-wide defaults (from the Helm values, through the operator's environment)."""

    trainer_image: str = "ghcr.io/tanuki-llm/tanuki-trainer:0.1.0"
    serving_image: str = "ghcr.io/tanuki-llm/tanuki-serving:0.1.0"
    master_port: int = 29500

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            trainer_image=os.environ.get("TANUKI_DEFAULT_IMAGE_TRAINER", cls.trainer_image),
            serving_image=os.environ.get("TANUKI_DEFAULT_IMAGE_SERVING", cls.serving_image),
        )


@dataclass(frozen=True)
class Owner:
    """The custom resource the children belong to."""

    kind: str
    name: str
    namespace: str
    uid: str
    api_version: str = "llm.tanuki.dev/v1alpha1"

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "uid": self.uid,
                "controller": True, "blockOwnerDeletion": True}


def labels(owner: Owner, component: str | None = None) -> dict[str, str]:
    result = {
        "app.kubernetes.io/name": "tanuki",
        "app.kubernetes.io/managed-by": "tanuki-operator",
        "llm.tanuki.dev/kind": owner.kind.lower(),
        "llm.tanuki.dev/name": owner.name,
    }
    if component:
        result["app.kubernetes.io/component"] = component
    return result


def metadata(owner: Owner, name: str, component: str | None = None, **extra_labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": owner.namespace, "labels": {**labels(owner, component), **extra_labels},
            "ownerReferences": [owner.reference()]}


def output_dir(owner: Owner, storage: Storage) -> str:
    relative = storage.outputPath or f"{owner.kind.lower()}/{owner.name}"
    return absolute(storage, relative)


def absolute(storage: Storage, path: str) -> str:
    return path if path.startswith("/") else f"{storage.mountPath.rstrip('/')}/{path}"


def recipe_configmap(owner: Owner, recipe: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, f"{owner.name}-recipe", "recipe"),
        "data": {RECIPE_FILE: yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True)},
    }


def container_resources(resources: Resources) -> dict[str, Any]:
    amounts: dict[str, Any] = {"cpu": resources.cpu, "memory": resources.memory}
    if resources.gpus:
        amounts[resources.gpuResource] = resources.gpus
    return {"requests": dict(amounts), "limits": dict(amounts)}


def volumes(owner: Owner, storage: Storage, resources: Resources, with_recipe: bool = True) -> list[dict[str, Any]]:
    result = [
        {"name": "data", "persistentVolumeClaim": {"claimName": storage.claimName}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": resources.sharedMemory}},
    ]
    if with_recipe:
        result.append({"name": "recipe", "configMap": {"name": f"{owner.name}-recipe"}})
    return result


def volume_mounts(storage: Storage, with_recipe: bool = True) -> list[dict[str, Any]]:
    result = [{"name": "data", "mountPath": storage.mountPath}, {"name": "dshm", "mountPath": "/dev/shm"}]
    if with_recipe:
        result.append({"name": "recipe", "mountPath": RECIPE_MOUNT, "readOnly": True})
    return result


def scheduling_fields(scheduling: Scheduling) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if scheduling.nodeSelector:
        fields["nodeSelector"] = dict(scheduling.nodeSelector)
    if scheduling.tolerations:
        fields["tolerations"] = [t.model_dump(exclude_none=True) for t in scheduling.tolerations]
    if scheduling.priorityClassName:
        fields["priorityClassName"] = scheduling.priorityClassName
    return fields


def batch_job(owner: Owner, spec: JobSpec, pod_spec: dict[str, Any], completions: int,
              indexed: bool) -> dict[str, Any]:
    """A batch/v1 Job: bad input (exit 2) fails it at once; node disruptions do not count."""
    queue = spec.scheduling.queueName
    job_labels = {"kueue.x-k8s.io/queue-name": queue} if queue else {}
    job_spec: dict[str, Any] = {
        "completions": completions,
        "parallelism": completions,
        "backoffLimit": spec.backoffLimit,
        # Kueue admits a queued job by unsuspending it.
        "suspend": spec.suspend or bool(queue),
        "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [EXIT_BAD_INPUT]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]},
        "template": {
            "metadata": {"labels": labels(owner, "worker")},
            "spec": {"restartPolicy": "Never", **pod_spec},
        },
    }
    if indexed:
        job_spec["completionMode"] = "Indexed"
    if spec.activeDeadlineSeconds:
        job_spec["activeDeadlineSeconds"] = spec.activeDeadlineSeconds
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": metadata(owner, owner.name, "job", **job_labels), "spec": job_spec}


def stage_container(spec: JobSpec, image: str, command: list[str], env: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "main",
        "image": spec.image or image,
        "command": command,
        "env": [{"name": OUTPUTS_MESSAGE_ENV, "value": TERMINATION_LOG},
                {"name": "PYTHONUNBUFFERED", "value": "1"}, *env],
        "resources": container_resources(spec.resources),
        "volumeMounts": volume_mounts(spec.storage),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
