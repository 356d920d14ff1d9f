"""A stage on Ray (SynthJob in cluster mode, TokenizeJob with spec.ray) → a KubeRay ``ray.io/v1``
RayJob whose workers mount the stage's volume (pure)."""

from __future__ import annotations

import shlex
from typing import Any

from tanuki_operator.api.common import JobSpec, RayCluster
from tanuki_operator.render.common import (
    TERMINATION_LOG,
    Owner,
    Settings,
    container_resources,
    container_security_context,
    job_network_policy,
    labels,
    metadata,
    output_dir,
    pod_security_context,
    recipe_configmap,
    scheduling_fields,
    secret_file_env,
    volume_mounts,
    volumes,
    writable_env,
)
from tanuki_operator.render.jobs import stage_command
from tanuki_pipelines.outputs import MESSAGE_ENV as OUTPUTS_MESSAGE_ENV

DASHBOARD_PORT = 8265
"""Ray's job API on the head pod: KubeRay submits the entrypoint through it."""


def _pod(owner: Owner, spec: JobSpec, image: str, name: str, resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels(owner, "ray")},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(),
            "containers": [{"name": name, "image": image, "resources": resources,
                            # the entrypoint runs on the head: where a one-node runner takes its outputs from
                            "env": [{"name": OUTPUTS_MESSAGE_ENV, "value": TERMINATION_LOG}, *writable_env(),
                                    *secret_file_env(spec.secrets())],
                            "volumeMounts": volume_mounts(spec.storage, secrets=spec.secrets()),
                            "terminationMessagePath": TERMINATION_LOG, "terminationMessagePolicy": "File",
                            "securityContext": container_security_context()}],
            "volumes": volumes(owner, spec.storage, spec.resources, secrets=spec.secrets()),
            **scheduling_fields(spec.scheduling),
        },
    }


SUBMIT = """set -e
address="http://$RAY_DASHBOARD_ADDRESS"
if ray job status --address "$address" "$RAY_JOB_SUBMISSION_ID" >/dev/null 2>&1; then
  ray job logs --address "$address" --follow "$RAY_JOB_SUBMISSION_ID"
else
  ray job submit --address "$address" --submission-id "$RAY_JOB_SUBMISSION_ID" -- {entrypoint}
fi
exec python3 -m tanuki_pipelines.outputs --message-from {output_dir}
"""
"""The submitter's script: KubeRay's own (submit once under the RayJob's submission id, or follow a
job already submitted), then the stage's ``outputs.json`` from the volume as the pod's termination
message, which is where the operator reads every stage's outputs (a RayJob's status has no place
for them). KubeRay sets both variables in a submitter pod it is given."""


def submitter_template(owner: Owner, spec: JobSpec, image: str, entrypoint: list[str]) -> dict[str, Any]:
    script = SUBMIT.format(entrypoint=shlex.join(entrypoint), output_dir=shlex.quote(output_dir(owner, spec.storage)))
    return {
        "metadata": {"labels": labels(owner, "submitter")},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(),
            "containers": [{"name": "submitter", "image": image, "command": ["bash", "-c", script],
                            "env": [{"name": OUTPUTS_MESSAGE_ENV, "value": TERMINATION_LOG}, *writable_env()],
                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                          "limits": {"cpu": "1", "memory": "1Gi"}},
                            "volumeMounts": volume_mounts(spec.storage, with_recipe=False),
                            "terminationMessagePath": TERMINATION_LOG, "terminationMessagePolicy": "File",
                            "securityContext": container_security_context()}],
            "volumes": volumes(owner, spec.storage, spec.resources),
            **scheduling_fields(spec.scheduling),
        },
    }


def rayjob_manifests(owner: Owner, spec: JobSpec, cluster: tuple[RayCluster, int], recipe: dict[str, Any],
                     settings: Settings, command: str) -> list[dict[str, Any]]:
    ray, workers = cluster
    image = spec.image or settings.trainer_image
    worker_resources = spec.resources.model_copy(update={"gpus": ray.workerGpus})
    head_resources = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
    entrypoint = [*stage_command(owner, spec, command), "--ray-address", "auto"]
    rayjob: dict[str, Any] = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": metadata(owner, owner.name, "rayjob"),
        "spec": {
            "entrypoint": shlex.join(entrypoint),
            "submitterPodTemplate": submitter_template(owner, spec, image, entrypoint),
            "shutdownAfterJobFinishes": ray.shutdownAfterJobFinishes,
            "suspend": spec.suspend,
            "backoffLimit": spec.backoffLimit,
            **({"activeDeadlineSeconds": spec.activeDeadlineSeconds} if spec.activeDeadlineSeconds else {}),
            "rayClusterSpec": {
                "rayVersion": ray.rayVersion,
                "headGroupSpec": {"rayStartParams": {"num-gpus": "0"},
                                  "template": _pod(owner, spec, image, "ray-head", head_resources)},
                "workerGroupSpecs": [{
                    "groupName": "workers",
                    "replicas": workers,
                    "minReplicas": workers,
                    "maxReplicas": workers,
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
