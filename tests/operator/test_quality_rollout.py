"""A ModelServer's quality gates against an in-memory API: each revision gets its own Service; once
the canary serves at a step, the operator creates the EvalJob (``tanuki eval gate``) that judges it
against the stable revision (or another server), owned by the ModelServer and valid as any EvalJob;
the step waits for its verdict; a regression rolls back with ``QualityRegression`` and the figures;
a failed evaluation holds the canary (``AnalysisError``) and is retried after the backoff; a pass
promotes."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from fake_kube import FakeKube
from test_serving_reconcile import SETTINGS, apply, become_ready, serving_with

from tanuki_operator.api import API_VERSION
from tanuki_operator.handlers.reconcile import Outcome, reconcile
from tanuki_operator.phases import poll_seconds
from tanuki_operator.validation import validate_spec

GATED = {"steps": [50], "pauseSeconds": 0,
         "analysis": {"quality": {"recipe": {"mode": "gate", "gate": {"perplexity": {"max_drop": 0.05}}},
                                  "retrySeconds": 30}}}
REGRESSION = {"passed": False, "reason": "QualityRegression",
              "message": "perplexity: perplexity 310 against 256 (log-likelihood per token +0.1912 nats below), "
                         "allowed 0.05 over 64 texts", "figures": {"perplexity": {"drop": 0.1912}}}


def step(kube: FakeKube, clock: float | None = None) -> tuple[dict[str, Any], Outcome]:
    current = kube.objects[(API_VERSION, "ModelServer", "ml", "debug-chat")]
    outcome = reconcile(kube, SETTINGS, "ModelServer", copy.deepcopy(current), clock=clock)
    if outcome.status:
        kube.patch_status(API_VERSION, "ModelServer", "ml", "debug-chat", outcome.status)
    return kube.objects[(API_VERSION, "ModelServer", "ml", "debug-chat")]["status"], outcome


def canary_under_evaluation(kube: FakeKube, **spec: Any) -> tuple[str, str, dict[str, Any]]:
    """Stable ``a``, canary ``b`` ready at its first step, its evaluation created: (stable, canary, status)."""
    stable = serving_with(kube, "/data/ckpt/a", rollout=GATED, **spec)
    apply(kube, "/data/ckpt/b", rollout=GATED, **spec)
    status, outcome = step(kube)
    canary = status["rollout"]["canary"]["revision"]
    assert outcome.event[1] == "CanaryStarted"
    assert status["rollout"]["canary"].get("quality") is None  # nothing to evaluate before it serves
    become_ready(kube, canary)
    step(kube)
    status, _ = step(kube)
    return stable, canary, status


def evaluation(kube: FakeKube, canary: str, attempt: int = 1) -> dict[str, Any]:
    return kube.objects[(API_VERSION, "EvalJob", "ml", f"debug-chat-q-{canary}-s0-a{attempt}")]


def test_each_revision_has_its_own_service_and_the_canary_step_waits_for_its_evaluation() -> None:
    kube = FakeKube()
    stable, canary, status = canary_under_evaluation(kube)
    for revision in (stable, canary):
        service = kube.objects[("v1", "Service", "ml", f"debug-chat-rev-{revision}")]
        assert service["spec"]["selector"]["llm.tanuki.dev/revision"] == revision
    job = evaluation(kube, canary)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ModelServer"
    assert [t["url"] for t in job["spec"]["targets"]] == [
        f"http://debug-chat-rev-{canary}.ml.svc/v1", f"http://debug-chat-rev-{stable}.ml.svc/v1"]
    assert [t["tokenizer"] for t in job["spec"]["targets"]] == ["/data/ckpt/b", "/data/ckpt/a"]
    assert job["spec"]["recipe"]["mode"] == "gate" and "judge" not in job["spec"]
    model, errors = validate_spec("EvalJob", job["spec"])
    assert errors == [] and model is not None  # the operator's own child passes the EvalJob's admission
    quality = status["rollout"]["canary"]["quality"]
    assert quality["evaluation"] == job["metadata"]["name"] and quality.get("reason") is None
    assert status["rollout"]["canary"]["step"] == 0 and "waiting for its quality gates" in status["message"]
    _, outcome = step(kube)
    assert ("EvalJob", job["metadata"]["name"]) in {(ref.kind, ref.name) for ref in outcome.upstreams}
    assert outcome.requeue_after is not None and outcome.requeue_after >= 1  # woken by the EvalJob, no busy loop


def test_a_waiting_evaluation_says_why_in_the_canary_message_and_a_server_cannot_judge_itself() -> None:
    kube = FakeKube()
    _, canary, _ = canary_under_evaluation(kube)
    evaluation(kube, canary)["status"] = {"phase": "Waiting", "message": "waiting for ModelServer/debug-judge (Pending)"}
    status, _ = step(kube)
    assert "(EvalJob/debug-chat-q-" in status["message"] and "waiting for ModelServer/debug-judge" in status["message"]

    kube = FakeKube()
    own = {**GATED, "analysis": {"quality": {**GATED["analysis"]["quality"], "against": {"modelServer": "debug-chat"}}}}
    serving_with(kube, "/data/ckpt/a", rollout=own)
    apply(kube, "/data/ckpt/b", rollout=own)
    status, _ = step(kube)
    become_ready(kube, status["rollout"]["canary"]["revision"])
    step(kube)
    status, outcome = step(kube)
    assert "against.modelServer: names this ModelServer itself" in status["message"]
    assert status["rollout"]["canary"]["step"] == 0 and kube.of_kind("EvalJob") == []


def test_a_regression_rolls_the_canary_back_with_its_figures() -> None:
    kube = FakeKube()
    stable, canary, _ = canary_under_evaluation(kube)
    evaluation(kube, canary)["status"] = {"phase": "Succeeded", "outputs": {"verdict": REGRESSION}}
    status, outcome = step(kube)
    assert outcome.event[:2] == ("Warning", "QualityRegression") and "0.1912 nats below" in outcome.event[2]
    rollout = status["rollout"]
    assert rollout.get("canary") is None and rollout["stable"]["revision"] == stable
    assert rollout["history"][-1]["result"] == "RolledBack" and "+0.1912 nats" in rollout["history"][-1]["reason"]
    assert rollout["failedRevisions"] == [canary]
    step(kube)
    assert f"debug-chat-{canary}" not in {d["metadata"]["name"] for d in kube.of_kind("Deployment")}
    assert ("v1", "Service", "ml", f"debug-chat-rev-{canary}") not in kube.objects  # goes with its revision


def test_a_pass_promotes() -> None:
    kube = FakeKube()
    _, canary, _ = canary_under_evaluation(kube)
    passed = {**REGRESSION, "passed": True, "reason": "QualityPassed", "message": "perplexity: within 0.05"}
    evaluation(kube, canary)["status"] = {"phase": "Succeeded", "outputs": {"verdict": passed}}
    status, outcome = step(kube)
    assert outcome.event[1] == "Promoted" and status["rollout"]["stable"]["revision"] == canary
    assert status["rollout"]["history"][-1]["reason"].endswith("quality: perplexity: within 0.05")


def test_a_failed_evaluation_holds_the_canary_and_is_retried_after_the_backoff() -> None:
    kube = FakeKube()
    stable, canary, _ = canary_under_evaluation(kube)
    ended = time.time()
    evaluation(kube, canary)["status"] = {
        "phase": "Failed", "message": "judge: http://judge/v1 did not answer after retries",
        "completionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ended))}
    status, outcome = step(kube, clock=ended + 1)
    assert outcome.event[:2] == ("Warning", "AnalysisError") and "did not answer" in outcome.event[2]
    assert status["rollout"]["canary"]["quality"]["reason"] == "AnalysisError"
    assert status["rollout"]["stable"]["revision"] == stable and status["rollout"]["canary"]["step"] == 0
    _, outcome = step(kube, clock=ended + 2)
    assert outcome.event is None  # the same hold is not announced again
    assert outcome.requeue_after == min(ended + 30 - (ended + 2) + 0.5, poll_seconds())  # at the backoff's end
    status, _ = step(kube, clock=ended + 31)
    retry = evaluation(kube, canary, attempt=2)
    assert status["rollout"]["canary"]["quality"] == {"step": 0, "evaluation": retry["metadata"]["name"],
                                                       "attempt": 2, "message": "", "figures": {}}


def test_against_another_server_and_a_judge_for_the_arena_gate() -> None:
    kube = FakeKube()
    quality = {"recipe": {"mode": "gate", "gate": {"arena": {"min_win_rate": 0.4}},
                          "arena": {"judge_decision": "calibrated", "seed": 3}},
               "judge": {"from": {"kind": "ModelServer", "name": "debug-judge"}},
               "against": {"modelServer": "debug-chat-bf16"}}
    gated = {**GATED, "analysis": {"quality": quality}}
    stable = serving_with(kube, "/data/ckpt/a", rollout=gated)
    apply(kube, "/data/ckpt/b", rollout=gated)
    status, _ = step(kube)
    canary = status["rollout"]["canary"]["revision"]
    become_ready(kube, canary)
    step(kube)
    step(kube)
    job = evaluation(kube, canary)
    assert job["spec"]["targets"][1] == {"name": "reference", "from": {"kind": "ModelServer", "name": "debug-chat-bf16"}}
    assert job["spec"]["judge"] == {"from": {"kind": "ModelServer", "name": "debug-judge"}}
    assert job["spec"]["recipe"]["arena"]["seed"] == 3
    model, errors = validate_spec("EvalJob", job["spec"])
    assert errors == [] and {"judge:url", "target:1:url"} <= set(model.inputs())
    assert stable != canary


def test_bad_quality_specs_are_refused_naming_the_field() -> None:
    server = copy.deepcopy(next(iter([apply(FakeKube(), "/data/ckpt/a")])))["spec"]
    for quality, field in (({"recipe": {"mode": "gate", "gate": {"arena": {}}}}, "judge"),
                           ({"recipe": {"mode": "grade"}}, "recipe.mode"),
                           ({"recipe": {"mode": "gate"}}, "gate"),
                           ({"recipe": {"mode": "gate", "gate": {"perplexity": {"max_drop": -1}}}}, "max_drop"),
                           ({"retrySeconds": 0}, "retrySeconds"),
                           ({"against": {"modelServer": "Not_A_Name"}}, "modelServer"),
                           ({"recipe": None}, "recipe"),
                           ({"latency": {}, "against": {"modelServer": "other"}}, "latency"),
                           ({"latency": {}, "when": "beforeTraffic"}, "a canary judged beforeTraffic"),
                           ({"when": "atOnce"}, "when"),
                           ({"recipe": None, "latency": {"maxRatio": 0.5}}, "maxRatio")):
        spec = {**server, "rollout": {**GATED, "analysis": {"quality": quality}}}
        model, errors = validate_spec("ModelServer", spec)
        assert model is None and any(field in str(error) for error in errors), (quality, errors)


def latency_metrics(first_token: dict[float, int], between_tokens: dict[float, int]) -> str:
    """vLLM's two latency histograms, cumulative, as its /metrics prints them."""
    lines = []
    for name, buckets in (("vllm:time_to_first_token_seconds", first_token),
                          ("vllm:inter_token_latency_seconds", between_tokens)):
        lines.append(f"# TYPE {name} histogram")
        total = 0
        for bound, count in sorted(buckets.items()):
            total += count
            lines.append(f'{name}_bucket{{le="{bound}",model_name="debug-chat"}} {total}')
        lines.append(f'{name}_bucket{{le="+Inf",model_name="debug-chat"}} {total}')
        lines.append(f'{name}_count{{model_name="debug-chat"}} {total}')
        lines.append(f'{name}_sum{{model_name="debug-chat"}} {total * 0.1}')
    return "\n".join(lines) + "\n"


def serve_latencies(kube: FakeKube, revision: str, text: str) -> None:
    for pod in kube.of_kind("Pod"):
        if pod["metadata"]["labels"].get("llm.tanuki.dev/revision") == revision:
            kube.metrics["ml", pod["metadata"]["name"]] = text


LATENCY_ONLY = {"steps": [50], "pauseSeconds": 10,
                "analysis": {"quality": {"recipe": None, "latency": {"maxRatio": 1.5, "minRequests": 10}}}}
QUICK = latency_metrics({0.1: 28, 0.2: 2}, {0.02: 300, 0.05: 10})


def canary_with_latency_window(kube: FakeKube) -> tuple[str, str, float]:
    stable = serving_with(kube, "/data/ckpt/a", rollout=LATENCY_ONLY)
    serve_latencies(kube, stable, latency_metrics({0.1: 3}, {0.02: 30}))  # served before the window
    apply(kube, "/data/ckpt/b", rollout=LATENCY_ONLY)
    status, _ = step(kube)
    canary = status["rollout"]["canary"]["revision"]
    become_ready(kube, canary)
    status, _ = step(kube)
    since = status["rollout"]["canary"]["healthySince"]
    status, _ = step(kube, clock=since + 1)
    assert status["rollout"]["canary"]["latencyWindow"]["since"] == since
    assert kube.of_kind("EvalJob") == []  # latency alone: no evaluation
    return stable, canary, since


def test_a_slower_canary_is_rolled_back_on_latency_over_the_same_window() -> None:
    kube = FakeKube()
    stable, canary, since = canary_with_latency_window(kube)
    serve_latencies(kube, stable, latency_metrics({0.1: 3 + 28, 0.2: 2}, {0.02: 330, 0.05: 10}))
    serve_latencies(kube, canary, latency_metrics({0.1: 5, 0.4: 25}, {0.02: 310}))
    status, _ = step(kube, clock=since + 5)
    assert status["rollout"]["canary"]["step"] == 0  # the pause (the window) is not over
    status, outcome = step(kube, clock=since + 11)
    assert outcome.event[:2] == ("Warning", "QualityRegression"), outcome.event
    assert "p95 time to first token" in outcome.event[2] and status["rollout"].get("canary") is None


def test_a_canary_as_fast_as_the_stable_is_promoted_and_too_little_traffic_holds_it() -> None:
    kube = FakeKube()
    stable, canary, since = canary_with_latency_window(kube)
    serve_latencies(kube, canary, latency_metrics({0.1: 4}, {0.02: 40}))
    status, outcome = step(kube, clock=since + 11)
    assert outcome.event[:2] == ("Warning", "AnalysisError") and "4 canary and 0 stable requests" in outcome.event[2]
    serve_latencies(kube, stable, latency_metrics({0.1: 3 + 28, 0.2: 2}, {0.02: 330, 0.05: 10}))
    serve_latencies(kube, canary, QUICK)
    status, outcome = step(kube, clock=since + 12)
    assert outcome.event[1] == "Promoted" and status["rollout"]["stable"]["revision"] == canary
    assert "latency: p95 time to first token" in status["rollout"]["history"][-1]["reason"]


BEFORE_TRAFFIC = {**GATED, "analysis": {"quality": {**GATED["analysis"]["quality"], "when": "beforeTraffic"}}}


def traffic_of(kube: FakeKube, revision: str) -> list[str | None]:
    """The traffic label of each pod of a revision (what vllm-router's selector asks for)."""
    return [pod["metadata"]["labels"].get("llm.tanuki.dev/traffic") for pod in kube.of_kind("Pod")
            if pod["metadata"]["labels"]["llm.tanuki.dev/revision"] == revision]


@pytest.mark.parametrize("verdict", ["passes", "regresses"])
def test_a_canary_judged_before_traffic_enters_the_router_pool_only_once_it_passed(verdict: str) -> None:
    kube = FakeKube()
    stable = serving_with(kube, "/data/ckpt/a", rollout=BEFORE_TRAFFIC)
    router = kube.objects[("apps/v1", "Deployment", "ml", "debug-chat-router")]
    assert "llm.tanuki.dev/traffic=on" in router["spec"]["template"]["spec"]["containers"][0]["command"]
    assert traffic_of(kube, stable) == ["on"]  # the first revision is admitted as soon as its pod exists
    apply(kube, "/data/ckpt/b", rollout=BEFORE_TRAFFIC)
    status, outcome = step(kube)
    canary = status["rollout"]["canary"]["revision"]
    assert outcome.event[1] == "CanaryStarted" and status["rollout"]["canary"]["held"]
    assert status["rollout"]["trafficShare"] == {"stable": 100, "canary": 0, "retiring": 0}
    become_ready(kube, canary)
    step(kube)
    status, _ = step(kube)
    assert traffic_of(kube, canary) == ["held"] and "out of traffic, waiting for its quality gates" in status["message"]
    assert evaluation(kube, canary)["spec"]["targets"][0]["url"] == f"http://debug-chat-rev-{canary}.ml.svc/v1"
    if verdict == "regresses":
        evaluation(kube, canary)["status"] = {"phase": "Succeeded", "outputs": {"verdict": REGRESSION}}
        status, outcome = step(kube)
        assert outcome.event[:2] == ("Warning", "QualityRegression") and status["rollout"].get("canary") is None
        assert traffic_of(kube, canary) == ["held"]  # rolled back having served no user request
        return
    passed = {**REGRESSION, "passed": True, "reason": "QualityPassed", "message": "perplexity: within 0.05"}
    evaluation(kube, canary)["status"] = {"phase": "Succeeded", "outputs": {"verdict": passed}}
    status, outcome = step(kube)
    assert outcome.event[1] == "CanaryAdmitted" and not status["rollout"]["canary"]["held"]
    assert traffic_of(kube, canary) == ["on"] and status["rollout"]["trafficShare"]["canary"] == 50
    status, outcome = step(kube)
    assert outcome.event[1] == "Promoted" and status["rollout"]["stable"]["revision"] == canary
    assert [job["metadata"]["name"] for job in kube.of_kind("EvalJob")] == [f"debug-chat-q-{canary}-s0-a1"]



def ready_reason(status: dict[str, Any]) -> str:
    return next(c["reason"] for c in status["conditions"] if c["type"] == "Ready")


BARRED = {**GATED, "analysis": {"quality": {**GATED["analysis"]["quality"], "recipe": {
    "mode": "gate", "gate": {"perplexity": {"max_drop": 0.05, "max_perplexity": 300}}}}}}


@pytest.mark.parametrize("verdict", ["reaches", "below"])
def test_a_first_revision_is_judged_alone_against_the_bar_before_it_takes_traffic(verdict: str) -> None:
    kube = FakeKube()
    apply(kube, "/data/ckpt/a", rollout=BARRED)
    status, _ = step(kube)
    first = status["rollout"]["stable"]["revision"]
    assert status["phase"] == "Pending" and status["rollout"]["admission"] == {
        "step": 0, "evaluation": "", "attempt": 1, "reason": None, "message": "", "figures": {}}
    assert kube.of_kind("EvalJob") == []  # judged once a replica serves
    become_ready(kube, first)
    status, _ = step(kube)
    job = evaluation(kube, first)
    assert [target["name"] for target in job["spec"]["targets"]] == ["canary"]  # alone: no reference
    assert job["spec"]["targets"][0]["url"] == f"http://debug-chat-rev-{first}.ml.svc/v1"
    model, errors = validate_spec("EvalJob", job["spec"])
    assert errors == [] and model is not None
    assert traffic_of(kube, first) == ["held"] and ready_reason(status) == "AwaitingQuality"
    assert status["rollout"]["trafficShare"] == {"stable": 0, "canary": 0, "retiring": 0}
    if verdict == "below":
        below = {**REGRESSION, "message": "perplexity: perplexity 410, bar 300 over 64 texts"}
        job["status"] = {"phase": "Succeeded", "outputs": {"verdict": below}}
        status, outcome = step(kube)
        assert outcome.event[:2] == ("Warning", "QualityRegression") and "bar 300" in outcome.event[2]
        assert (status["phase"], ready_reason(status)) == ("Pending", "QualityRegression")
        assert traffic_of(kube, first) == ["held"] and status["rollout"]["failedRevisions"] == [first]
        _, outcome = step(kube)
        assert outcome.event is None and len(kube.of_kind("EvalJob")) == 1  # said once, not judged again
        return
    passed = {**REGRESSION, "passed": True, "reason": "QualityPassed", "message": "perplexity: 250, bar 300"}
    job["status"] = {"phase": "Succeeded", "outputs": {"verdict": passed}}
    status, outcome = step(kube)
    assert [event[1] for event in outcome.events] == ["Running", "Admitted"]
    assert status["rollout"].get("admission") is None
    assert traffic_of(kube, first) == ["on"] and status["phase"] == "Running"
