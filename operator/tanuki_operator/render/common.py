"""Building blocks shared by the per-kind renderers (pure: plain dicts, no API client)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

from tanuki_operator.api.common import JobSpec, Resources, Scheduling, SecretKeyRef, Storage
from tanuki_pipelines.outputs import MESSAGE_ENV as OUTPUTS_MESSAGE_ENV

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
RECIPE_MOUNT = "/etc/tanuki"
RECIPE_FILE = "recipe.yaml"
SECRETS_MOUNT = "/var/run/secrets/tanuki"
TERMINATION_LOG = "/dev/termination-log"
EXIT_BAD_INPUT = 2
RUN_AS = 10001
"""UID and GID of every pod's processes (the images create this user; Pod Security "restricted"
needs non-root, and common policy scanners want a UID of 10000 or more)."""
WRITABLE = "/tmp"
"""The one writable directory of a read-only root filesystem (an emptyDir); HOME and the caches
of torch, DeepSpeed, triton, vLLM and Hugging Face live below it."""


@dataclass(frozen=True)
class Settings:
    """Operator-wide defaults (from the Helm values, through the operator's environment)."""

    trainer_image: str = "ghcr.io/tanuki-llm/tanuki-trainer:0.1.0"
    serving_image: str = "ghcr.io/tanuki-llm/tanuki-serving:0.1.0"
    quantize_image: str = "ghcr.io/tanuki-llm/tanuki-quantize:0.1.0"
    """QuantizeJob pods: llmcompressor and llama.cpp, whose pins disagree with vLLM's, live there."""
    master_port: int = 29500
    network_policies: bool = True
    """Render a NetworkPolicy per resource (pods of one job reach each other; vLLM replicas take
    requests only from their router and from the monitoring namespace)."""
    monitoring_namespace: str = "monitoring"
    """Namespace whose pods (Prometheus) may scrape the vLLM replicas and routers."""

    def image(self, name: str) -> str:
        """The default image called ``name`` (a stage program's ``image``)."""
        return {"trainer": self.trainer_image, "serving": self.serving_image, "quantize": self.quantize_image}[name]

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            trainer_image=os.environ.get("TANUKI_DEFAULT_IMAGE_TRAINER", cls.trainer_image),
            serving_image=os.environ.get("TANUKI_DEFAULT_IMAGE_SERVING", cls.serving_image),
            quantize_image=os.environ.get("TANUKI_DEFAULT_IMAGE_QUANTIZE", cls.quantize_image),
            network_policies=os.environ.get("TANUKI_NETWORK_POLICIES", "true").lower() != "false",
            monitoring_namespace=os.environ.get("TANUKI_MONITORING_NAMESPACE", cls.monitoring_namespace),
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


def owner_selector(owner: Owner) -> dict[str, str]:
    """Every child (and pod) of one resource."""
    return {"llm.tanuki.dev/kind": owner.kind.lower(), "llm.tanuki.dev/name": owner.name}


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
        # libyaml's emitter when present: the pure-Python one was a sixth of the operator's CPU per CR
        "data": {RECIPE_FILE: yaml.dump(recipe, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)},
    }


def container_resources(resources: Resources) -> dict[str, Any]:
    amounts: dict[str, Any] = {"cpu": resources.cpu, "memory": resources.memory}
    if resources.gpus:
        amounts[resources.gpuResource] = str(resources.gpus)  # quantities come back from the API as strings
    return {"requests": dict(amounts), "limits": dict(amounts)}


def secret_volumes(secrets: dict[str, SecretKeyRef] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): each Secret key as a read-only file ``<SECRETS_MOUNT>/<index>/<key>``
    (``secret_file_env`` names them)."""
    volumes, mounts = [], []
    for index, ref in enumerate((secrets or {}).values()):
        volumes.append({"name": f"secret-{index}", "secret": {"secretName": ref.name, "defaultMode": 0o440,
                                                              "items": [{"key": ref.key, "path": ref.key}]}})
        mounts.append({"name": f"secret-{index}", "mountPath": f"{SECRETS_MOUNT}/{index}", "readOnly": True})
    return volumes, mounts


def volumes(owner: Owner, storage: Storage, resources: Resources, with_recipe: bool = True,
            secrets: dict[str, SecretKeyRef] | None = None) -> list[dict[str, Any]]:
    result = [
        {"name": "data", "persistentVolumeClaim": {"claimName": storage.claimName}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": resources.sharedMemory}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if with_recipe:
        result.append({"name": "recipe", "configMap": {"name": f"{owner.name}-recipe"}})
    return result + secret_volumes(secrets)[0]


def volume_mounts(storage: Storage, with_recipe: bool = True,
                  secrets: dict[str, SecretKeyRef] | None = None) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = [{"name": "data", "mountPath": storage.mountPath}, {"name": "dshm", "mountPath": "/dev/shm"},
              {"name": "tmp", "mountPath": WRITABLE}]
    if with_recipe:
        result.append({"name": "recipe", "mountPath": RECIPE_MOUNT, "readOnly": True})
    return result + secret_volumes(secrets)[1]


def secret_file_env(secrets: dict[str, SecretKeyRef]) -> list[dict[str, Any]]:
    """``<NAME>_FILE`` → the mounted key: secrets reach programs as files, never as env values."""
    return [{"name": f"{name}_FILE", "value": f"{SECRETS_MOUNT}/{index}/{ref.key}"}
            for index, (name, ref) in enumerate(secrets.items())]


def writable_env() -> list[dict[str, Any]]:
    """Point HOME and the caches at the writable emptyDir (the root filesystem is read-only)."""
    return [{"name": "HOME", "value": f"{WRITABLE}/home"}, {"name": "XDG_CACHE_HOME", "value": f"{WRITABLE}/cache"},
            {"name": "TORCH_EXTENSIONS_DIR", "value": f"{WRITABLE}/torch_extensions"},
            {"name": "TRITON_CACHE_DIR", "value": f"{WRITABLE}/triton"}]


def pod_security_context() -> dict[str, Any]:
    """Pod Security "restricted": non-root (UID/GID 10001), the runtime's default seccomp profile."""
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict[str, Any]:
    """No privilege escalation, no capabilities, read-only root filesystem."""
    return {"allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}


def network_policy(owner: Owner, pod_selector: dict[str, str], ingress: list[dict[str, Any]],
                   component: str = "network") -> dict[str, Any]:
    """Ingress to the selected pods only from the listed peers (egress is not restricted)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": metadata(owner, f"{owner.name}-{component}" if component != "network" else owner.name,
                                 component),
            "spec": {"podSelector": {"matchLabels": pod_selector}, "policyTypes": ["Ingress"], "ingress": ingress}}


def job_network_policy(owner: Owner, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The pods of one job talk to each other (rendezvous, NCCL/gloo use any port); nothing else comes in."""
    same_job = {"from": [{"podSelector": {"matchLabels": owner_selector(owner)}}]}
    return network_policy(owner, owner_selector(owner), [same_job, *(extra or [])])


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
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                     "securityContext": pod_security_context(), **pod_spec},
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
                {"name": "PYTHONUNBUFFERED", "value": "1"}, *writable_env(), *secret_file_env(spec.secrets()), *env],
        "resources": container_resources(spec.resources),
        "volumeMounts": volume_mounts(spec.storage, secrets=spec.secrets()),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "securityContext": container_security_context(),
    }
