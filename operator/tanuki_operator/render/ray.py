"""SynthJob in cluster mode → a KubeRay ``ray.io/v1`` RayJob with a GPU worker group (pure)."""

from __future__ import annotations

from typing import Any

from tanuki_operator.api.synth import SynthJobSpec
from tanuki_operator.render.common import (
    RECIPE_FILE,
    RECIPE_MOUNT,
    Owner,
    Settings,
    container_resources,
    metadata,
    output_dir,
    recipe_configmap,
    scheduling_fields,
    volume_mounts,
    volumes,
)


def _pod(owner: Owner, spec: SynthJobSpec, image: str, name: str, resources: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {
        "containers": [{"name": name, "image": image, "resources": resources,
                        "volumeMounts": volume_mounts(spec.storage)}],
        "volumes": volumes(owner, spec.storage, spec.resources),
        **scheduling_fields(spec.scheduling),
    }}


def rayjob_manifests(owner: Owner, spec: SynthJobSpec, recipe: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    image = spec.image or settings.trainer_image
    worker_resources = spec.resources.model_copy(update={"gpus": spec.ray.workerGpus})
    head_resources = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
    entrypoint = " ".join(["tanuki", "synth", "--config", f"{RECIPE_MOUNT}/{RECIPE_FILE}",
                           "--output-dir", output_dir(owner, spec.storage), "--ray-address", "auto"])
    rayjob = {
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
    return [recipe_configmap(owner, recipe), rayjob]
