"""ModelServer → vLLM Deployments (one per revision: stable, canary), the vllm-router front door,
Service, autoscaler and ServiceMonitor (pure).

Every revision is its own Deployment ``<name>-<revision>``; the router discovers all ready vLLM
pods of the ModelServer by label, so the traffic share of a canary is its share of the replicas.
The autoscaler scales the ModelServer itself through its /scale subresource; the operator splits
that total across the revisions.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tanuki_operator.api.common import API_VERSION, SecretKeyRef
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.render.common import (
    WRITABLE,
    Owner,
    Settings,
    container_resources,
    container_security_context,
    labels,
    metadata,
    network_policy,
    pod_security_context,
    scheduling_fields,
    writable_env,
)
from tanuki_serving.launch import router_command, vllm_command
from tanuki_serving.rollout import Revision, RevisionRef

REVISION_LABEL = "llm.tanuki.dev/revision"
DRAIN_SECONDS = 15
"""preStop pause: the router notices a terminating pod before vLLM stops taking requests."""
KEY_DIR = "/var/run/secrets/tanuki/api-key"
"""Where the API key Secret is mounted in vLLM pods (read by tanuki_serving.serve and the smoke probe)."""
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_PORT = 80
"""The port of the ``<name>`` Service, the OpenAI endpoint clients use."""


def server_selector(owner: Owner) -> dict[str, str]:
    """Every vLLM pod of the ModelServer, whatever its revision (router discovery, /scale, metrics)."""
    return {"llm.tanuki.dev/kind": "modelserver", "llm.tanuki.dev/name": owner.name,
            "app.kubernetes.io/component": "server"}


TRAFFIC_LABEL = "llm.tanuki.dev/traffic"
"""On the pods of a server whose canaries are judged before traffic: ``held`` from the pod template,
``on`` once the operator admits the pod to the router's pool (never part of a Deployment's selector,
so setting it on a pod neither orphans nor replaces it)."""


def admits_pods(spec: ModelServerSpec) -> bool:
    """Whether the operator admits this server's pods to the router rather than every ready pod
    taking traffic: when a revision may be judged before it takes any (``when: beforeTraffic``, or
    absolute bars that judge a first revision)."""
    quality = spec.rollout.analysis.quality
    return quality is not None and (quality.before_traffic() or quality.judges_first())


def router_selector(owner: Owner, spec: ModelServerSpec) -> dict[str, str]:
    """The pods vllm-router routes to: every vLLM pod of the server, or only the admitted ones."""
    return {**server_selector(owner), **({TRAFFIC_LABEL: "on"} if admits_pods(spec) else {})}


def selector_string(owner: Owner) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(server_selector(owner).items()))


def deployment_name(owner: Owner, revision: str) -> str:
    return f"{owner.name}-{revision}"


def revision_service_name(owner: Owner, revision: str) -> str:
    return f"{owner.name}-rev-{revision}"


def revision_service(owner: Owner, spec: ModelServerSpec, revision: str) -> dict[str, Any]:
    """``<name>-rev-<revision>``: one revision's own endpoint, bypassing the router's traffic split
    (what the quality gates evaluate). It lives and goes with the revision's Deployment."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, revision_service_name(owner, revision), "server", **{REVISION_LABEL: revision}),
        "spec": {"selector": {**server_selector(owner), REVISION_LABEL: revision},
                 "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}]},
    }


QUALITY_LABEL = "llm.tanuki.dev/quality-of"
"""On a quality evaluation (EvalJob): the ModelServer whose canary it judges."""


def quality_evaluation_name(owner: Owner, canary: str, step: int, attempt: int) -> str:
    return f"{owner.name}-q-{canary}-s{step}-a{attempt}"


def api_key_field(key: SecretKeyRef | None) -> dict[str, Any]:
    """An EvalJob target's ``apiKey`` for a Secret key, or nothing."""
    return {"apiKey": key.model_dump()} if key is not None else {}


def quality_evaluation(owner: Owner, spec: ModelServerSpec, canary: RevisionRef, canary_url: str,
                       reference: dict[str, Any] | None, step: int, attempt: int) -> dict[str, Any]:
    """The EvalJob that judges the canary at ``step`` against ``reference`` (an EvalJob target:
    a revision's own URL, or another ModelServer), or with no reference a first revision against
    the gates' absolute bars: ``tanuki eval gate``, owned by the ModelServer, writing to the
    server's storage."""
    quality = spec.rollout.analysis.quality
    assert quality is not None and quality.recipe is not None, "rendered only for a quality recipe"
    served = spec.engine.served_model_name or owner.name
    target = {"name": "canary", "url": canary_url, "model": served, "tokenizer": canary.model,
              **api_key_field(spec.auth.apiKey)}
    evaluation = {
        "targets": [target, *([{"name": "reference", **reference}] if reference is not None else [])],
        "storage": {"claimName": spec.storage.claimName, "mountPath": spec.storage.mountPath},
        "recipe": quality.recipe.model_dump(mode="json", exclude={"targets"}),
        "resources": quality.resources.model_dump(mode="json", exclude_none=True),
    }
    if quality.judge is not None:
        evaluation["judge"] = quality.judge.model_dump(mode="json", by_alias=True, exclude_none=True)
    if spec.scheduling.nodeSelector or spec.scheduling.tolerations or spec.scheduling.priorityClassName:
        evaluation["scheduling"] = spec.scheduling.model_dump(mode="json", exclude_none=True)
    name = quality_evaluation_name(owner, canary.revision, step, attempt)
    return {"apiVersion": API_VERSION, "kind": "EvalJob",
            "metadata": metadata(owner, name, "quality", **{QUALITY_LABEL: owner.name}),
            "spec": evaluation}


def router_name(owner: Owner) -> str:
    return f"{owner.name}-router"


def _key_file(spec: ModelServerSpec) -> str | None:
    return f"{KEY_DIR}/{spec.auth.apiKey.key}" if spec.auth.apiKey is not None else None


def server_command(owner: Owner, spec: ModelServerSpec, model_path: str) -> list[str]:
    """vLLM's OpenAI server; with an API key, through ``tanuki_serving.serve``, which reads the
    key from the mounted Secret file."""
    command = vllm_command(spec.engine, model_path, owner.name, spec.port)
    key_file = _key_file(spec)
    if key_file is None:
        return command
    return ["python3", "-m", "tanuki_serving.serve", "--api-key-file", key_file, "--", *command[3:]]


def pod_template(owner: Owner, spec: ModelServerSpec, model_path: str, settings: Settings) -> dict[str, Any]:
    """What every replica of a revision runs (before the revision label is added); its hash is
    the revision, so anything that changes a replica rolls out as a canary."""
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    mounts = [{"name": "data", "mountPath": spec.storage.mountPath, "readOnly": True},
              {"name": "dshm", "mountPath": "/dev/shm"}, {"name": "tmp", "mountPath": WRITABLE}]
    volumes = [
        {"name": "data", "persistentVolumeClaim": {"claimName": spec.storage.claimName, "readOnly": True}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.sharedMemory}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if spec.auth.apiKey is not None:
        mounts.append({"name": "api-key", "mountPath": KEY_DIR, "readOnly": True})
        volumes.append({"name": "api-key", "secret": {"secretName": spec.auth.apiKey.name, "defaultMode": 0o440,
                                                      "items": [{"key": spec.auth.apiKey.key,
                                                                 "path": spec.auth.apiKey.key}]}})
    container = {
        "name": "vllm",
        "image": spec.image or settings.serving_image,
        "command": server_command(owner, spec, model_path),
        "env": [*writable_env(), {"name": "VLLM_NO_USAGE_STATS", "value": "1"}, {"name": "DO_NOT_TRACK", "value": "1"}],
        "ports": [{"name": "http", "containerPort": spec.port}],
        "resources": container_resources(spec.resources),
        "volumeMounts": mounts,
        # loading weights can take minutes: the startup probe allows 10 min (looking often, so a replica
        # takes traffic soon after it loaded), the others start after it
        "startupProbe": _startup_probe(spec, owner, probe),
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        # a replica that cannot load its model says why in its pod status (the operator reports it)
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
    }
    return {
        "metadata": {"labels": {**labels(owner, "server"), **server_selector(owner),
                                **({TRAFFIC_LABEL: "held"} if admits_pods(spec) else {})},
                     "annotations": {"llm.tanuki.dev/model": model_path}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(),
            "containers": [container],
            "terminationGracePeriodSeconds": DRAIN_SECONDS + 60,
            "volumes": volumes,
            **scheduling_fields(spec.scheduling),
        },
    }


def revision_of_template(template: dict[str, Any], model_path: str) -> Revision:
    payload = json.dumps(template, sort_keys=True, ensure_ascii=False)
    return Revision(hashlib.sha256(payload.encode()).hexdigest()[:10], model_path)


def current_revision(owner: Owner, spec: ModelServerSpec, model_path: str, settings: Settings) -> Revision:
    """The revision the spec asks for now, serving ``model_path``."""
    return revision_of_template(pod_template(owner, spec, model_path, settings), model_path)


def deployment(owner: Owner, revision: Revision, template: dict[str, Any], replicas: int) -> dict[str, Any]:
    selector = {**server_selector(owner), REVISION_LABEL: revision.id}
    pod = json.loads(json.dumps(template))
    pod["metadata"]["labels"][REVISION_LABEL] = revision.id
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, deployment_name(owner, revision.id), "server", **{REVISION_LABEL: revision.id}),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            # new pods first, old ones only once the new ones are ready
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": pod,
        },
    }


def revision_deployment(owner: Owner, spec: ModelServerSpec, model_path: str, replicas: int,
                        settings: Settings) -> dict[str, Any]:
    """The Deployment of the revision serving ``model_path`` under the current spec."""
    template = pod_template(owner, spec, model_path, settings)
    return deployment(owner, revision_of_template(template, model_path), template, replicas)


def _startup_probe(spec: ModelServerSpec, owner: Owner, health: dict[str, Any]) -> dict[str, Any]:
    """/health, or with smoke prompts: the prompts answered inside the pod with its own API key
    (a replica that loads but cannot answer never becomes ready, so a canary crash-loops and rolls back)."""
    prompts = spec.rollout.analysis.smokePrompts
    if not prompts:
        return {**health, "periodSeconds": 2, "failureThreshold": 300}
    command = ["python3", "-m", "tanuki_serving.smoke", "--port", str(spec.port),
               "--model", spec.engine.served_model_name or owner.name]
    if (key_file := _key_file(spec)) is not None:
        command += ["--api-key-file", key_file]
    for prompt in prompts:
        command += ["--prompt", prompt]
    return {"exec": {"command": command}, "periodSeconds": 5, "timeoutSeconds": 60, "failureThreshold": 120}


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
    command = router_command(router, selector=router_selector(owner, spec), namespace=owner.namespace,
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
                    # service discovery needs the token: projected explicitly instead of automounted
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "volumes": [{"name": "token", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace",
                                                    "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
                        {"name": "tmp", "emptyDir": {}}],
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
                        "volumeMounts": [{"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
                                         {"name": "tmp", "mountPath": WRITABLE}],
                        "securityContext": container_security_context(),
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
                 "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"},
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
        model_name = spec.engine.served_model_name or owner.name
        query = f'avg({scaling.metric}{{namespace="{owner.namespace}",model_name="{model_name}"}})'
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


def network_policies(owner: Owner, spec: ModelServerSpec, settings: Settings) -> list[dict[str, Any]]:
    """vLLM replicas take requests only from their router (and scrapes from the monitoring
    namespace, and with quality gates the evaluations' pods); the router takes requests from
    anywhere on its port (it is the endpoint)."""
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.monitoring_namespace}}}
    router_pods = {"podSelector": {"matchLabels": labels(owner, "router")}}
    peers = [router_pods, monitoring]
    if spec.rollout.analysis.quality is not None:  # the quality gates ask each revision directly
        peers.append({"podSelector": {"matchLabels": {"llm.tanuki.dev/kind": "evaljob"}}})
    return [
        network_policy(owner, server_selector(owner), [
            {"from": peers, "ports": [{"protocol": "TCP", "port": spec.port}]}], "server"),
        network_policy(owner, labels(owner, "router"), [
            {"ports": [{"protocol": "TCP", "port": spec.router.port}]},
            {"from": [monitoring], "ports": [{"protocol": "TCP", "port": spec.router.metricsPort}]}], "router"),
    ]


def shared_manifests(owner: Owner, spec: ModelServerSpec, settings: Settings) -> list[dict[str, Any]]:
    """Everything a ModelServer owns besides its revision Deployments: applied in place on every change."""
    manifests = [metrics_service(owner, spec), *router_rbac(owner), router_deployment(owner, spec, settings),
                 service(owner, spec), *autoscaler(owner, spec)]
    if spec.monitoring.serviceMonitor:
        manifests.append(service_monitor(owner, spec))
    if settings.network_policies:
        manifests += network_policies(owner, spec, settings)
    return manifests


def modelserver_manifests(owner: Owner, spec: ModelServerSpec, settings: Settings, model_path: str) -> list[dict[str, Any]]:
    """The steady state: one revision serving ``model_path`` with all the replicas, its own
    Service, and the rest."""
    revision = revision_deployment(owner, spec, model_path, spec.total_replicas(), settings)
    return [revision, revision_service(owner, spec, revision["metadata"]["labels"][REVISION_LABEL]),
            *shared_manifests(owner, spec, settings)]
