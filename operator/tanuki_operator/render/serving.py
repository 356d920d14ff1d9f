"""ModelServer → vLLM Deployment + Service + HPA or KEDA ScaledObject (pure).

The canary rollout and the vllm-router front door belong to the serving issue; this renders the
stable replica set.
"""

from __future__ import annotations

from typing import Any

from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.render.common import Owner, Settings, container_resources, labels, metadata, scheduling_fields
from tanuki_serving.launch import API_KEY_ENV, vllm_command


def deployment(owner: Owner, spec: ModelServerSpec, model_path: str, settings: Settings) -> dict[str, Any]:
    selector = {"llm.tanuki.dev/kind": "modelserver", "llm.tanuki.dev/name": owner.name,
                "llm.tanuki.dev/track": "stable"}
    env = []
    if spec.auth.apiKey is not None:
        env.append({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {
            "name": spec.auth.apiKey.name, "key": spec.auth.apiKey.key}}})
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    container = {
        "name": "vllm",
        "image": spec.image or settings.serving_image,
        "command": vllm_command(spec.engine, model_path, owner.name, spec.port),
        "env": env,
        "ports": [{"name": "http", "containerPort": spec.port}],
        "resources": container_resources(spec.resources),
        "volumeMounts": [{"name": "data", "mountPath": spec.storage.mountPath, "readOnly": True},
                         {"name": "dshm", "mountPath": "/dev/shm"}],
        "startupProbe": {**probe, "periodSeconds": 10, "failureThreshold": 60},
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": {**labels(owner, "server"), **selector}},
            "spec": {
                "containers": [container],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": spec.storage.claimName, "readOnly": True}},
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.sharedMemory}},
                ],
                **scheduling_fields(spec.scheduling),
            },
        },
    }
    if spec.autoscaling.engine == "none":
        deployment_spec["replicas"] = spec.replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(owner, owner.name, "server"),
            "spec": deployment_spec}


def service(owner: Owner, spec: ModelServerSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, owner.name, "server"),
        "spec": {"selector": {"llm.tanuki.dev/kind": "modelserver", "llm.tanuki.dev/name": owner.name},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def autoscaler(owner: Owner, spec: ModelServerSpec) -> list[dict[str, Any]]:
    scaling = spec.autoscaling
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner.name}
    if scaling.engine == "hpa":
        metric_name = scaling.metric.replace(":", "_")  # how prometheus-adapter exposes vllm:* series
        return [{
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(owner, owner.name, "autoscaler"),
            "spec": {
                "scaleTargetRef": target,
                "minReplicas": scaling.minReplicas,
                "maxReplicas": scaling.maxReplicas,
                "metrics": [{"type": "Pods", "pods": {
                    "metric": {"name": metric_name},
                    "target": {"type": "AverageValue", "averageValue": str(scaling.target)}}}],
            },
        }]
    if scaling.engine == "keda":
        query = f'avg({scaling.metric.replace(":", "_")}{{namespace="{owner.namespace}",model_name="{owner.name}"}})'
        return [{
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": metadata(owner, owner.name, "autoscaler"),
            "spec": {
                "scaleTargetRef": {"name": owner.name},
                "minReplicaCount": scaling.minReplicas,
                "maxReplicaCount": scaling.maxReplicas,
                "triggers": [{"type": "prometheus", "metadata": {
                    "serverAddress": "http://prometheus-operated.monitoring:9090",
                    "query": query, "threshold": str(scaling.target)}}],
            },
        }]
    return []


def modelserver_manifests(owner: Owner, spec: ModelServerSpec, model_path: str, settings: Settings) -> list[dict[str, Any]]:
    return [deployment(owner, spec, model_path, settings), service(owner, spec), *autoscaler(owner, spec)]
