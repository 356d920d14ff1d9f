"""Policy scan: the chart and every manifest the operator renders pass checkov's Kubernetes checks
(Pod Security "restricted" style: non-root UID ≥ 10000, no privilege escalation, no capabilities,
read-only root filesystem, seccomp, probes, resources, NetworkPolicies, no secrets in env vars,
no automounted tokens), except the checks listed with their reason in ``checkov_tool.ACCEPTED``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from checkov_tool import failed_checks
from k8s_tools import helm_binary

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # installs checkov into its own cached environment on first use


def describe(failures: list[dict]) -> str:
    return "\n".join(f"{f['check_id']} {f['check_name']}: {f['resource']}" for f in failures)


@pytest.mark.parametrize("values", [None, REPO / "charts/tanuki/ci/ci-values.yaml"], ids=["default", "ci"])
def test_chart_passes_checkov(values: Path | None, tmp_path: Path) -> None:
    args = [str(helm_binary()), "template", "tanuki", str(REPO / "charts/tanuki"), "--namespace", "tanuki-system"]
    if values is not None:
        args += ["--values", str(values)]
    rendered = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    path = tmp_path / "chart.yaml"
    path.write_text(rendered)
    failures = failed_checks(path)
    assert failures == [], describe(failures)


def test_rendered_children_of_every_example_pass_checkov(tmp_path: Path) -> None:
    from tanuki_operator.render_cli import render_file, to_yaml

    documents = []
    for example in sorted((REPO / "examples").glob("*.yaml")):
        resources = [doc for doc in yaml.safe_load_all(example.read_text()) if doc]
        rendered, errors = render_file(resources, "ml", {})
        assert errors == []
        documents += rendered
    for setup in sorted((REPO / "examples" / "cluster").glob("*.yaml")):  # what a namespace needs first,
        for doc in yaml.safe_load_all(setup.read_text()):                 # applied with kubectl -n ml
            if doc:
                doc["metadata"]["namespace"] = "ml"
                documents.append(doc)
    assert sum(1 for d in documents if isinstance(d, dict) and d["kind"] in ("Job", "Deployment")) >= 6
    path = tmp_path / "rendered.yaml"
    path.write_text(to_yaml(documents))
    failures = failed_checks(path)
    assert failures == [], describe(failures)


def test_the_cluster_setup_examples_are_valid_kubernetes_objects() -> None:
    from k8s_schemas import validate_builtin

    documents = [doc for setup in sorted((REPO / "examples" / "cluster").glob("*.yaml"))
                 for doc in yaml.safe_load_all(setup.read_text()) if doc]
    assert {doc["kind"] for doc in documents} >= {"PersistentVolumeClaim", "Job"}
    for document in documents:
        validate_builtin(document)
    claims = {doc["metadata"]["name"] for doc in documents if doc["kind"] == "PersistentVolumeClaim"}
    assert claims == {r["spec"]["storage"]["claimName"] for r in yaml.safe_load_all(
        (REPO / "examples" / "debug-chain.yaml").read_text()) if r}
