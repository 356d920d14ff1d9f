"""The chart's Grafana dashboard and prometheus-adapter rules.

The dashboard (charts/tanuki/dashboards/modelserver.json) is checked statically: it parses, is
identified, and every panel queries only metrics that really exist (vLLM, vllm-router and the
operator's own). Rendering checks that the dashboard ConfigMap carries the Grafana sidecar label
and the file verbatim, and that the prometheus-adapter rules expose exactly the Pods custom
metrics the operator's HPAs ask for. Built-in kinds are validated by test_chart.py for the default
and ci values.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from k8s_tools import helm_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tanuki"
CI_VALUES = CHART / "ci" / "ci-values.yaml"
DASHBOARD = CHART / "dashboards" / "modelserver.json"
RELEASE, NAMESPACE = "tanuki", "tanuki-system"

VLLM_METRICS = {
    "vllm:request_success_total",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:e2e_request_latency_seconds_bucket",
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
    "vllm:generation_tokens_total",
    "http_requests_total",  # vLLM's API server (prometheus-fastapi-instrumentator)
}
ROUTER_METRICS = {
    "vllm_router_requests_total",
    "vllm_router_active_workers",
    "vllm_router_worker_health",
    "vllm_router_generate_duration_seconds_bucket",
}
OPERATOR_METRICS = {
    "tanuki_modelserver_replicas",
    "tanuki_modelserver_traffic_share",
    "tanuki_modelserver_rollouts_total",
    "tanuki_modelserver_canary_step",
}
ALLOWED_METRICS = VLLM_METRICS | ROUTER_METRICS | OPERATOR_METRICS
# The vLLM gauges the operator's HPA can scale on, and the custom-metric names it asks for.
ADAPTER_METRICS = {"vllm:num_requests_waiting": "vllm_num_requests_waiting",
                   "vllm:kv_cache_usage_perc": "vllm_kv_cache_usage_perc"}

PROMQL_FUNCTIONS = {"sum", "avg", "max", "min", "count", "rate", "irate", "increase", "round",
                    "histogram_quantile", "clamp_min", "clamp_max", "label_replace", "abs"}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset"}


# ---------------------------------------------------------------- helpers

def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=60)


@functools.cache
def render(values: Path | None = None, *overrides: str) -> tuple[dict[str, Any], ...]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *overrides]
    if values is not None:
        args += ["--values", str(values)]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def config_maps(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "ConfigMap"}


@functools.cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def query_panels() -> list[dict[str, Any]]:
    """Every panel but rows, nested rows' panels included."""
    found = []
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: the identifiers left once strings, label
    matchers, ranges, grouping clauses, functions and keywords are taken out."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    stripped = re.sub(r"\{[^}]*\}", " ", stripped)
    stripped = re.sub(r"\[[^\]]*\]", " ", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ",
                      stripped)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", stripped):
        token = match.group(0)
        if stripped[match.end():].lstrip().startswith("("):
            assert token in PROMQL_FUNCTIONS, f"unexpected PromQL function {token!r} in {expr}"
        elif token not in PROMQL_KEYWORDS:
            names.add(token)
    return names


# ---------------------------------------------------------------- the dashboard JSON

def test_dashboard_is_identified() -> None:
    board = dashboard()
    assert board["uid"] == "tanuki-modelserver"
    assert board["title"] == "tanuki / ModelServer"
    assert board["schemaVersion"] == 39
    assert board["id"] is None  # provisioned: Grafana assigns the id


def test_dashboard_template_variables() -> None:
    variables = {var["name"]: var for var in dashboard()["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "modelserver"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "modelserver"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    assert variables["namespace"]["definition"] == \
        "label_values(vllm:num_requests_waiting, namespace)"
    modelserver = variables["modelserver"]["definition"]
    assert re.fullmatch(r"label_values\(vllm:num_requests_waiting(\{.*\})?, model_name\)",
                        modelserver), modelserver


def test_every_panel_queries_prometheus_and_is_described() -> None:
    panels = query_panels()
    assert len(panels) >= 15
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        title = panel["title"]
        assert panel["type"] in {"timeseries", "stat"}, title
        assert panel["description"].strip(), f"{title} has no description"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["targets"], f"{title} has no targets"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), title
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{title} has an empty query"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, title


def test_metric_name_extraction() -> None:
    """Canary for the check below: an invented or misspelled name is seen."""
    cases = {
        'sum by (le) (rate(vllm:typo_bucket{model_name=~"$m"}[$__rate_interval]))':
            {"vllm:typo_bucket"},
        'sum by (pod) (rate(a_total{status="5xx"}[1m]) and on (pod) b{x="y"})': {"a_total", "b"},
        "histogram_quantile(0.99, sum by (le) (rate(c_bucket[5m])))": {"c_bucket"},
    }
    for expr, names in cases.items():
        assert metric_names(expr) == names, expr


def test_dashboard_uses_only_real_metric_names() -> None:
    used: set[str] = set()
    for panel in query_panels():
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']}"
            assert names <= ALLOWED_METRICS, f"{panel['title']}: unknown {names - ALLOWED_METRICS}"
            used |= names
    for var in dashboard()["templating"]["list"][1:]:
        inner = re.fullmatch(r"label_values\((.*), \w+\)", var["definition"])
        assert inner and metric_names(inner.group(1)) <= ALLOWED_METRICS, var["definition"]
    assert used == ALLOWED_METRICS, f"no panel shows {ALLOWED_METRICS - used}"


def test_dashboard_panels_filter_by_the_variables() -> None:
    for panel in query_panels():
        for target in panel["targets"]:
            expr = target["expr"]
            assert 'namespace=~"$namespace"' in expr, (panel["title"], expr)
            if metric_names(expr) & (VLLM_METRICS - {"http_requests_total"}):
                assert 'model_name=~"$modelserver"' in expr, (panel["title"], expr)
            if metric_names(expr) & OPERATOR_METRICS:
                assert 'name=~"$modelserver"' in expr, (panel["title"], expr)


def test_dashboard_rollout_panels() -> None:
    by_title = {panel["title"]: panel for panel in query_panels()}
    state = by_title["Rollout state"]
    assert state["type"] == "stat"
    (target,) = state["targets"]
    assert metric_names(target["expr"]) == {"tanuki_modelserver_canary_step"}
    mapped = [m["options"] for m in state["fieldConfig"]["defaults"]["mappings"]
              if m["type"] == "value"]
    assert any("-1" in options for options in mapped), "no text for -1 (no canary)"

    rollouts = [panel for panel in query_panels()
                if "tanuki_modelserver_rollouts_total" in panel["targets"][0]["expr"]]
    assert len(rollouts) == 1
    assert rollouts[0]["type"] == "stat"
    assert "increase(" in rollouts[0]["targets"][0]["expr"]
    assert "by (result)" in rollouts[0]["targets"][0]["expr"]

    units = {panel["title"]: panel["fieldConfig"]["defaults"]["unit"] for panel in query_panels()}
    assert units["KV-cache usage"] == "percentunit"
    assert units["Traffic share by track"] == "percent"


# ---------------------------------------------------------------- the dashboard ConfigMap

def test_default_render_ships_the_dashboard() -> None:
    maps = config_maps(render())
    dashboards = maps[f"{RELEASE}-dashboards"]
    assert dashboards["metadata"]["namespace"] == NAMESPACE
    labels = dashboards["metadata"]["labels"]
    assert labels["grafana_dashboard"] == "1"
    assert labels["app.kubernetes.io/instance"] == RELEASE
    assert "annotations" not in dashboards["metadata"]
    assert set(dashboards["data"]) == {"modelserver.json"}
    assert json.loads(dashboards["data"]["modelserver.json"]) == dashboard()
    # a ConfigMap holds at most 1 MiB
    assert sum(len(text.encode()) for text in dashboards["data"].values()) < 1 << 20


def test_dashboard_label_and_annotations_are_configurable() -> None:
    dashboards = config_maps(render(CI_VALUES))[f"{RELEASE}-tanuki-op-dashboards"]
    labels = dashboards["metadata"]["labels"]
    assert labels["tanuki.dev/grafana-dashboard"] == "true"
    assert "grafana_dashboard" not in labels
    assert dashboards["metadata"]["annotations"] == {"grafana_folder": "tanuki"}
    assert json.loads(dashboards["data"]["modelserver.json"])["uid"] == "tanuki-modelserver"


def test_dashboards_disabled_renders_no_configmap() -> None:
    docs = render(None, "--set", "dashboards.enabled=false")
    assert not any(name.endswith("-dashboards") for name in config_maps(docs))
    assert docs  # the rest of the chart still renders


# ---------------------------------------------------------------- prometheus-adapter rules

def adapter_rules(docs: tuple[dict[str, Any], ...], name: str) -> list[dict[str, Any]]:
    config = yaml.safe_load(config_maps(docs)[name]["data"]["config.yaml"])
    assert set(config) == {"rules"}
    return config["rules"]


def test_adapter_rules_are_off_by_default() -> None:
    assert "tanuki-prometheus-adapter-rules" not in config_maps(render())
    assert list(config_maps(render())) == [f"{RELEASE}-dashboards"]


def test_ci_render_ships_adapter_rules() -> None:
    docs = render(CI_VALUES)
    adapter = config_maps(docs)["tanuki-adapter-rules"]  # prometheusAdapter.rules.configMapName
    assert adapter["metadata"]["namespace"] == "monitoring"  # prometheusAdapter.rules.namespace
    rules = adapter_rules(docs, "tanuki-adapter-rules")
    exposed = {}
    for rule in rules:
        series = re.fullmatch(r"([a-z_:]+)\{(.*)\}", rule["seriesQuery"])
        assert series, rule["seriesQuery"]
        assert {'namespace!=""', 'pod!=""'} <= set(series.group(2).split(","))
        assert rule["resources"] == {"overrides": {"namespace": {"resource": "namespace"},
                                                   "pod": {"resource": "pod"}}}
        assert re.fullmatch(rule["name"]["matches"], series.group(1))
        assert rule["metricsQuery"] == "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"
        exposed[series.group(1)] = rule["name"]["as"]
    assert exposed == ADAPTER_METRICS


def test_adapter_rules_default_name_and_namespace() -> None:
    docs = render(None, "--set", "prometheusAdapter.rules.enabled=true")
    adapter = config_maps(docs)["tanuki-prometheus-adapter-rules"]
    assert adapter["metadata"]["namespace"] == NAMESPACE
    assert {rule["name"]["as"] for rule in adapter_rules(docs, "tanuki-prometheus-adapter-rules")} \
        == set(ADAPTER_METRICS.values())


def test_adapter_metric_names_match_the_operator_hpa() -> None:
    """The custom metrics exposed are exactly those the operator's HPAs request."""
    from tanuki_operator.api.modelserver import Autoscaling
    from tanuki_operator.render.common import Owner
    from tanuki_operator.render.serving import autoscaler

    metrics = typing.get_args(Autoscaling.model_fields["metric"].annotation)
    assert set(metrics) == set(ADAPTER_METRICS)
    owner = Owner(kind="ModelServer", name="chat", namespace="llm-serve", uid="u-1")
    for metric in metrics:
        spec = SimpleNamespace(autoscaling=Autoscaling(engine="hpa", metric=metric))
        (hpa,) = autoscaler(owner, spec)  # type: ignore[arg-type]
        (requested,) = hpa["spec"]["metrics"]
        assert requested["type"] == "Pods"
        assert requested["pods"]["metric"]["name"] == ADAPTER_METRICS[metric]


# ---------------------------------------------------------------- values schema

@pytest.mark.parametrize("override, message", [
    (["--set", "dashboards.bogus=1"], "bogus"),
    (["--set", "dashboards.enabled=yes"], "dashboards/enabled"),
    (["--set", "dashboards.label=bad label"], "dashboards/label"),
    (["--set", "prometheusAdapter.rules.bogus=1"], "bogus"),
    (["--set", "prometheusAdapter.rules.configMapName=Bad_Name"], "configMapName"),
    (["--set", "prometheusAdapter.rules.namespace=Bad_NS"], "namespace"),
], ids=["unknown-dashboards-key", "enabled-type", "label-key", "unknown-adapter-key",
        "configmap-name", "adapter-namespace"])
def test_schema_rejects_bad_values(override: list[str], message: str) -> None:
    result = helm("template", RELEASE, str(CHART), *override)
    assert result.returncode != 0, f"helm accepted {override}"
    assert message in result.stderr, result.stderr
