"""ModelServer → vLLM Deployments (one per revision: stable, canary), the vllm-router front door,
Service, autoscaler and ServiceMonitor (pure).

Every revision is its own Deployment ``<name>-<revision>``; the router discovers all ready vLLM
pods of the ModelServer by label, so the traffic share of a canary is its share of the replicas.
The autoscaler scales the ModelServer itself through its /scale subresource; the operator splits
that total across the revisions.
"""

from __future__ import annotations

from typing import Any

from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.render.common import Owner, Settings, container_resources, labels, metadata, scheduling_fields
from tanuki_serving.launch import API_KEY_ENV, router_command, vllm_command
from tanuki_serving.rollout import Revision, revision_of

REVISION_LABEL = "llm.tanuki.dev/revision"
DRAIN_SECONDS = 15
"""preStop pause: the router notices a terminating pod before vLLM stops taking requests."""


def server_selector(owner: Owner) -> dict[str, str]:
    """Every vLLM pod of the ModelServer, whatever its revision (router discovery, /scale, metrics)."""
    return {"llm.tanuki.dev/kind": "modelserver", "llm.tanuki.dev/name": owner.name,
            "app.kubernetes.io/component": "server"}


def selector_string(owner: Owner) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(server_selector(owner).items()))


def deployment_name(owner: Owner, revision: str) -> str:
    return f"{owner.name}-{revision}"


def router_name(owner: Owner) -> str:
    return f"{owner.name}-router"


def current_revision(spec: ModelServerSpec, model_path: str, settings: Settings) -> Revision:
    return revision_of(model_path, spec.engine, spec.image or settings.serving_image)


def deployment(owner: Owner, spec: ModelServerSpec, revision: Revision, replicas: int,
               settings: Settings) -> dict[str, Any]:
    selector = {**server_selector(owner), REVISION_LABEL: revision.id}
    env = []
    if spec.auth.apiKey is not None:
        env.append({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {
            "name": spec.auth.apiKey.name, "key": spec.auth.apiKey.key}}})
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    container = {
        "name": "vllm",
        "image": spec.image or settings.serving_image,
        "command": vllm_command(spec.engine, revision.model, owner.name, spec.port),
        "env": env,
        "ports": [{"name": "http", "containerPort": spec.port}],
        "resources": container_resources(spec.resources),
        "volumeMounts": [{"name": "data", "mountPath": spec.storage.mountPath, "readOnly": True},
                         {"name": "dshm", "mountPath": "/dev/shm"}],
        # loading weights can take minutes: the startup probe allows 10 min, the others start after it
        "startupProbe": _startup_probe(spec, owner, probe),
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, deployment_name(owner, revision.id), "server", **{REVISION_LABEL: revision.id}),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            # new pods first, old ones only once the new ones are ready
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {**labels(owner, "server"), **selector},
                             "annotations": {"llm.tanuki.dev/model": revision.model}},
                "spec": {
                    "containers": [container],
                    "terminationGracePeriodSeconds": DRAIN_SECONDS + 60,
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": spec.storage.claimName,
                                                                   "readOnly": True}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.sharedMemory}},
                    ],
                    **scheduling_fields(spec.scheduling),
                },
            },
        },
    }


def _startup_probe(spec: ModelServerSpec, owner: Owner, health: dict[str, Any]) -> dict[str, Any]:
    """/health, or with smoke prompts: the prompts answered inside the pod with its own API key
    (a replica that loads but cannot answer never becomes ready, so a canary crash-loops and rolls back)."""
    prompts = spec.rollout.analysis.smokePrompts
    if not prompts:
        return {**health, "periodSeconds": 10, "failureThreshold": 60}
    command = ["python3", "-m", "tanuki_serving.smoke", "--port", str(spec.port),
               "--model", spec.engine.served_model_name or owner.name]
    for prompt in prompts:
        command += ["--prompt", prompt]
    return {"exec": {"command": command}, "periodSeconds": 10, "timeoutSeconds": 60, "failureThreshold": 60}


def router_rbac(owner: Owner) -> list[dict[str, Any]]:
    """vllm-router's service discovery watches pods in its namespace."""
    name = router_name(owner)
    subject = {"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(owner, name, "router")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata(owner, name, "router"),
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": metadata(owner, name, "router"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [subject]},
    ]


def router_deployment(owner: Owner, spec: ModelServerSpec, settings: Settings) -> dict[str, Any]:
    router = spec.router
    selector = labels(owner, "router")
    command = router_command(router, selector=server_selector(owner), namespace=owner.namespace,
                             worker_port=spec.port)
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, router_name(owner), "router"),
        "spec": {
            "replicas": router.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "serviceAccountName": router_name(owner),
                    "containers": [{
                        "name": "router",
                        "image": spec.image or settings.serving_image,
                        "command": command,
                        "ports": [{"name": "http", "containerPort": router.port},
                                  {"name": "metrics", "containerPort": router.metricsPort}],
                        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                      "limits": {"cpu": "2", "memory": "2Gi"}},
                        "readinessProbe": {**probe, "periodSeconds": 5},
                        "livenessProbe": {**probe, "periodSeconds": 10},
                        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                            "runAsUser": 1000, "capabilities": {"drop": ["ALL"]}},
                    }],
                    **scheduling_fields(spec.scheduling),
                },
            },
        },
    }


def service(owner: Owner, spec: ModelServerSpec) -> dict[str, Any]:
    """``<name>``: the OpenAI endpoint clients use, in front of the router."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, owner.name, "router"),
        "spec": {"selector": labels(owner, "router"),
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                           {"name": "metrics", "port": spec.router.metricsPort, "targetPort": "metrics"}]},
    }


def metrics_service(owner: Owner, spec: ModelServerSpec) -> dict[str, Any]:
    """Headless Service over the vLLM pods, for the ServiceMonitor to scrape each replica."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, f"{owner.name}-replicas", "server"),
        "spec": {"clusterIP": "None", "selector": server_selector(owner),
                 "ports": [{"name": "http", "port": spec.port, "targetPort": "http"}]},
    }


def service_monitor(owner: Owner, spec: ModelServerSpec) -> dict[str, Any]:
    interval = f"{spec.monitoring.intervalSeconds}s"
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(owner, owner.name, "monitoring", **spec.monitoring.labels),
        "spec": {
            "selector": {"matchLabels": {"llm.tanuki.dev/kind": "modelserver", "llm.tanuki.dev/name": owner.name}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": interval},
                          {"port": "metrics", "path": "/metrics", "interval": interval}],
        },
    }


def autoscaler(owner: Owner, spec: ModelServerSpec) -> list[dict[str, Any]]:
    """Scales the ModelServer's /scale subresource; the operator splits the total across revisions."""
    scaling = spec.autoscaling
    target = {"apiVersion": owner.api_version, "kind": "ModelServer", "name": owner.name}
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
        query = f'avg({scaling.metric}{{namespace="{owner.namespace}",model_name="{spec.engine.served_model_name or owner.name}"}})'
        return [{
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": metadata(owner, owner.name, "autoscaler"),
            "spec": {
                "scaleTargetRef": target,
                "minReplicaCount": scaling.minReplicas,
                "maxReplicaCount": scaling.maxReplicas,
                "triggers": [{"type": "prometheus", "metadata": {
                    "serverAddress": spec.autoscaling.prometheusAddress,
                    "query": query, "threshold": str(scaling.target)}}],
            },
        }]
    return []


def modelserver_manifests(owner: Owner, spec: ModelServerSpec, settings: Settings,
                          revisions: list[tuple[Revision, int]]) -> list[dict[str, Any]]:
    """Everything a ModelServer owns, given the replicas each revision should run."""
    manifests = [deployment(owner, spec, revision, replicas, settings) for revision, replicas in revisions]
    manifests += [metrics_service(owner, spec), *router_rbac(owner), router_deployment(owner, spec, settings),
                  service(owner, spec), *autoscaler(owner, spec)]
    if spec.monitoring.serviceMonitor:
        manifests.append(service_monitor(owner, spec))
    return manifests
