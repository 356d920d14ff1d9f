"""SynthJob in cluster mode → a KubeRay ``ray.io/v1`` RayJob with a GPU worker group (pure)."""

from __future__ import annotations

from typing import Any

from tanuki_operator.api.synth import SynthJobSpec
from tanuki_operator.render.common import (
    Owner,
    Settings,
    container_resources,
    container_security_context,
    job_network_policy,
    labels,
    metadata,
    pod_security_context,
    recipe_configmap,
    scheduling_fields,
    secret_file_env,
    volume_mounts,
    volumes,
    writable_env,
)
from tanuki_operator.render.jobs import stage_command

DASHBOARD_PORT = 8265
"""Ray's job API on the head pod: KubeRay submits the entrypoint through it."""


def _pod(owner: Owner, spec: SynthJobSpec, image: str, name: str, resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels(owner, "ray")},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(),
            "containers": [{"name": name, "image": image, "resources": resources,
                            "env": [*writable_env(), *secret_file_env(spec.secrets())],
                            "volumeMounts": volume_mounts(spec.storage, secrets=spec.secrets()),
                            "securityContext": container_security_context()}],
            "volumes": volumes(owner, spec.storage, spec.resources, secrets=spec.secrets()),
            **scheduling_fields(spec.scheduling),
        },
    }


def rayjob_manifests(owner: Owner, spec: SynthJobSpec, recipe: dict[str, Any], settings: Settings,
                     command: str) -> list[dict[str, Any]]:
    image = spec.image or settings.trainer_image
    worker_resources = spec.resources.model_copy(update={"gpus": spec.ray.workerGpus})
    head_resources = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
    entrypoint = " ".join([*stage_command(owner, spec, command), "--ray-address", "auto"])
    rayjob: dict[str, Any] = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": metadata(owner, owner.name, "rayjob"),
        "spec": {
            "entrypoint": entrypoint,
            "shutdownAfterJobFinishes": spec.ray.shutdownAfterJobFinishes,
            "suspend": spec.suspend,
            "backoffLimit": spec.backoffLimit,
            **({"activeDeadlineSeconds": spec.activeDeadlineSeconds} if spec.activeDeadlineSeconds else {}),
            "rayClusterSpec": {
                "rayVersion": spec.ray.rayVersion,
                "headGroupSpec": {"rayStartParams": {"num-gpus": "0"},
                                  "template": _pod(owner, spec, image, "ray-head", head_resources)},
                "workerGroupSpecs": [{
                    "groupName": "vllm",
                    "replicas": spec.recipe.ray.workers,
                    "minReplicas": spec.recipe.ray.workers,
                    "maxReplicas": spec.recipe.ray.workers,
                    "rayStartParams": {},
                    "template": _pod(owner, spec, image, "ray-worker", container_resources(worker_resources)),
                }],
            },
        },
    }
    if spec.scheduling.queueName:
        rayjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = spec.scheduling.queueName
    manifests = [recipe_configmap(owner, recipe)]
    if settings.network_policies:  # KubeRay (another namespace) submits the job through the dashboard port
        manifests.append(job_network_policy(owner, [{"ports": [{"protocol": "TCP", "port": DASHBOARD_PORT}]}]))
    return [*manifests, rayjob]
