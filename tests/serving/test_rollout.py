"""The rollout state machine (pure): replica split, steps, pause, promotion, rollback rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tanuki_common.quality import GateVerdict
from tanuki_serving.config import EngineConfig, RolloutPolicy
from tanuki_serving.rollout import (
    CanaryHealth,
    QualityCheck,
    QualityStatus,
    Revision,
    RolloutState,
    decide,
    next_check,
    revision_of,
    split_replicas,
    targets,
    traffic_share,
)

A, B, C = Revision("aaaa", "/ckpt/a"), Revision("bbbb", "/ckpt/b"), Revision("cccc", "/ckpt/c")
READY = CanaryHealth(ready=True)


@given(total=st.integers(1, 64), share=st.integers(1, 99))
def test_split_keeps_capacity_and_both_tracks(total: int, share: int) -> None:
    stable, canary = split_replicas(total, share)
    assert stable >= 1 and canary >= 1 and stable + canary >= total
    if total >= 4:  # enough replicas to express the share to within one replica
        assert abs(canary / (stable + canary) - share / 100) <= 1 / (stable + canary)


def serving_a() -> RolloutState:
    return decide(None, A, RolloutPolicy(), None, now=0).state


def test_first_revision_serves_directly_then_a_new_one_is_a_canary() -> None:
    policy = RolloutPolicy(steps=[25, 50], pauseSeconds=10)
    state = serving_a()
    assert targets(state, policy, 4) == {"aaaa": 4}
    decision = decide(state, B, policy, None, now=100)
    assert decision.event[1] == "CanaryStarted"
    assert targets(decision.state, policy, 4) == {"aaaa": 3, "bbbb": 1}
    assert traffic_share(decision.state, policy, 4).model_dump() == {"stable": 75, "canary": 25, "retiring": 0}


def test_steps_wait_for_readiness_and_the_pause_then_promote() -> None:
    policy = RolloutPolicy(steps=[25, 50], pauseSeconds=10)
    state = decide(serving_a(), B, policy, None, now=100).state
    state = decide(state, B, policy, CanaryHealth(ready=False), now=105).state
    assert state.canary.step == 0 and state.canary.healthySince is None
    state = decide(state, B, policy, READY, now=110).state
    assert state.canary.healthySince == 110
    assert decide(state, B, policy, READY, now=119).state.canary.step == 0  # still pausing
    stepped = decide(state, B, policy, READY, now=120)
    assert stepped.event[1] == "CanaryStep" and stepped.state.canary.step == 1
    state = decide(stepped.state, B, policy, READY, now=121).state
    promoted = decide(state, B, policy, READY, now=131, total=4)
    assert promoted.event[1] == "Promoted"
    assert promoted.state.stable == B.ref() and promoted.state.canary is None
    assert [h.result for h in promoted.state.history] == ["Promoted"]
    # the old revision keeps its 2 replicas until the promoted one runs all 4
    assert targets(promoted.state, policy, 4) == {"bbbb": 4, "aaaa": 2}
    assert traffic_share(promoted.state, policy, 4).model_dump() == {"stable": 67, "canary": 0, "retiring": 33}
    scaling = decide(promoted.state, B, policy, None, now=132, total=4, stable_complete=False)
    assert scaling.state.retiring.revision == "aaaa"
    done = decide(scaling.state, B, policy, None, now=140, total=4, stable_complete=True)
    assert done.state.retiring is None and targets(done.state, policy, 4) == {"bbbb": 4}


@pytest.mark.parametrize("health, reason", [
    (CanaryHealth(ready=False, failure="vLLM exited with code 1"), "exited"),
    (CanaryHealth(ready=True, smoke_failure="'hi' → HTTP 500"), "smoke prompt failed"),
    (CanaryHealth(ready=True, requests=100, errors=5), "error rate 5.0%"),
])
def test_a_failing_canary_is_rolled_back_and_not_retried(health: CanaryHealth, reason: str) -> None:
    policy = RolloutPolicy(analysis={"maxErrorRate": 0.01})
    state = decide(serving_a(), C, policy, None, now=0).state
    rolled = decide(state, C, policy, health, now=1)
    assert rolled.event[:2] == ("Warning", "RolledBack") and reason in rolled.message
    assert rolled.state.stable == A.ref() and rolled.state.canary is None
    assert rolled.state.failedRevisions == ["cccc"]
    again = decide(rolled.state, C, policy, None, now=2)
    assert again.state.canary is None and "was rolled back" in again.message
    assert decide(again.state, B, policy, None, now=3).state.canary.revision == "bbbb"  # a new one may go


def test_errors_below_min_requests_do_not_count_and_a_slow_start_times_out() -> None:
    policy = RolloutPolicy(pauseSeconds=100, analysis={"minRequests": 50, "readyTimeoutSeconds": 60})
    state = decide(serving_a(), B, policy, None, now=0).state
    assert decide(state, B, policy, CanaryHealth(ready=True, requests=10, errors=5), now=1).state.canary
    timed_out = decide(state, B, policy, CanaryHealth(ready=False), now=61)
    assert timed_out.event[1] == "RolledBack" and "readyTimeoutSeconds" in timed_out.message


def test_hold_instead_of_rollback_and_superseding() -> None:
    held = RolloutPolicy(autoRollback=False)
    state = decide(serving_a(), B, held, None, now=0).state
    decision = decide(state, B, held, CanaryHealth(ready=False, failure="crash"), now=1)
    assert decision.state.canary.revision == "bbbb" and "held" in decision.message
    newer = decide(decision.state, C, held, None, now=2)  # a newer checkpoint replaces the canary
    assert newer.state.canary.revision == "cccc"
    assert newer.state.history[-1].result == "Superseded"
    back = decide(newer.state, A, held, None, now=3)  # back to the stable one: the canary goes
    assert back.state.canary is None and back.state.stable == A.ref()


def test_revision_changes_with_checkpoint_engine_and_image() -> None:
    engine = EngineConfig()
    base = revision_of("/ckpt/a", engine, "img:1")
    assert base == revision_of("/ckpt/a", EngineConfig(), "img:1")
    assert len({base.id, revision_of("/ckpt/b", engine, "img:1").id,
                revision_of("/ckpt/a", EngineConfig(max_model_len=2048), "img:1").id,
                revision_of("/ckpt/a", engine, "img:2").id}) == 4


@pytest.mark.parametrize("steps", [[], [0], [100], [50, 25], [50, 50]])
def test_bad_steps_name_the_field(steps: list[int]) -> None:
    with pytest.raises(ValidationError, match="steps"):
        RolloutPolicy(steps=steps)


def test_next_check_is_the_end_of_the_pause_or_the_ready_timeout() -> None:
    policy = RolloutPolicy(steps=[50], pauseSeconds=30, analysis={"readyTimeoutSeconds": 600})
    assert next_check(serving_a(), policy, now=0) is None  # nothing rolling out: only events move it
    state = decide(serving_a(), B, policy, None, now=100).state
    assert next_check(state, policy, now=100) == 600  # starting: the ready timeout is the deadline
    state = decide(state, B, policy, READY, now=110).state
    assert next_check(state, policy, now=115) == 25  # healthy: the pause ends at 140


def test_state_round_trips_through_json_like_a_status() -> None:
    state = decide(decide(serving_a(), B, RolloutPolicy(), None, now=5).state, B, RolloutPolicy(), READY, now=6).state
    stored = state.model_dump(mode="json")
    assert stored["canary"]["healthySince"] == 6 and stored["stable"] == {"revision": "aaaa", "model": "/ckpt/a"}
    assert RolloutState.model_validate(stored) == state


PASSED = GateVerdict("all", True, "perplexity: within 0.05")
WORSE = GateVerdict("all", False, "perplexity: 0.31 nats below, allowed 0.05")
NO_EVIDENCE = GateVerdict("all", None, "perplexity: the evaluation failed: judge unreachable")


def gated(verdict: GateVerdict | None, attempt: int = 1) -> QualityCheck:
    return QualityCheck(evaluation="srv-q-bbbb-s0", attempt=attempt, verdict=verdict,
                        figures={"perplexity": {"drop": 0.31}} if verdict else {})


@pytest.mark.parametrize(("verdict", "outcome"), [
    (None, "waits"), (PASSED, "steps"), (WORSE, "rolls back"), (NO_EVIDENCE, "holds")])
def test_a_step_with_quality_gates_ends_only_on_a_passing_verdict(verdict: GateVerdict | None, outcome: str) -> None:
    policy = RolloutPolicy(steps=[25, 50], pauseSeconds=10)
    state = decide(serving_a(), B, policy, None, now=100).state
    state = decide(state, B, policy, READY, now=110, quality=gated(None)).state
    decision = decide(state, B, policy, READY, now=125, quality=gated(verdict))  # the pause is over
    canary = decision.state.canary
    if outcome == "waits":
        assert canary.step == 0 and "waiting for its quality gates (srv-q-bbbb-s0)" in decision.message
        assert canary.quality.reason is None and decision.event is None
    elif outcome == "steps":
        assert canary.step == 1 and canary.quality is None and decision.event[1] == "CanaryStep"
    elif outcome == "rolls back":
        assert canary is None and decision.event[:2] == ("Warning", "QualityRegression")
        assert "0.31 nats below" in decision.event[2] and decision.state.failedRevisions == ["bbbb"]
        record = decision.state.history[-1]
        assert (record.result, record.reason) == ("RolledBack", f"quality gate failed: {WORSE.message}")
    else:
        assert canary.step == 0 and canary.quality.reason == "AnalysisError"
        assert decision.event[:2] == ("Warning", "AnalysisError") and "judge unreachable" in decision.message
        again = decide(decision.state, B, policy, READY, now=126, quality=gated(verdict))
        assert again.event is None  # the same verdict is not announced twice
        assert decide(again.state, B, policy, READY, now=127, quality=gated(verdict, attempt=2)).event is not None


def test_a_worse_canary_is_rolled_back_without_waiting_for_the_pause_and_held_without_auto_rollback() -> None:
    policy = RolloutPolicy(steps=[50], pauseSeconds=600)
    state = decide(serving_a(), B, policy, None, now=100).state
    decision = decide(state, B, policy, READY, now=110, quality=gated(WORSE))
    assert decision.state.canary is None and decision.state.stable.revision == "aaaa"
    held = decide(state, B, policy.model_copy(update={"autoRollback": False}), READY, now=110, quality=gated(WORSE))
    assert held.state.canary.revision == "bbbb" and "held" in held.message
    assert held.state.canary.quality.figures == {"perplexity": {"drop": 0.31}}


def test_the_promotion_record_keeps_the_quality_verdict() -> None:
    policy = RolloutPolicy(steps=[50], pauseSeconds=0)
    state = decide(serving_a(), B, policy, None, now=100).state
    promoted = decide(state, B, policy, READY, now=110, quality=gated(PASSED))
    assert promoted.state.stable.revision == "bbbb"
    assert promoted.state.history[-1].reason.endswith("quality: perplexity: within 0.05")


def test_a_canary_judged_before_traffic_takes_none_until_it_passes_then_steps_without_more_gates() -> None:
    policy = RolloutPolicy(steps=[25, 50], pauseSeconds=10)
    started = decide(serving_a(), B, policy, None, now=100, before_traffic=True)
    assert started.state.canary.held and "out of traffic" in started.message
    # one replica to judge, out of the pool: the stable keeps all its replicas and all the traffic
    assert targets(started.state, policy, 4) == {"aaaa": 4, "bbbb": 1}
    assert traffic_share(started.state, policy, 4).model_dump() == {"stable": 100, "canary": 0, "retiring": 0}
    assert "out of traffic" in decide(started.state, B, policy, CanaryHealth(ready=False), now=101).message
    waiting = decide(started.state, B, policy, READY, now=102, quality=gated(None))
    assert waiting.state.canary.held and "healthy out of traffic, waiting" in waiting.message
    assert next_check(waiting.state, policy, 102) == 0.0  # no pause to sit out: the evaluation decides
    admitted = decide(waiting.state, B, policy, READY, now=103, quality=gated(PASSED))  # the pause is not waited
    canary = admitted.state.canary
    assert admitted.event[1] == "CanaryAdmitted" and not canary.held and canary.step == 0
    assert (canary.stepStartedAt, canary.healthySince) == (103, None) and canary.quality.reason == "QualityPassed"
    assert traffic_share(admitted.state, policy, 4).model_dump() == {"stable": 75, "canary": 25, "retiring": 0}
    # then the steps run on health alone (the caller gives no more quality checks)
    state = decide(admitted.state, B, policy, READY, now=104).state
    stepped = decide(state, B, policy, READY, now=114)
    assert stepped.event[1] == "CanaryStep" and stepped.state.canary.quality.reason == "QualityPassed"
    state = decide(stepped.state, B, policy, READY, now=115).state
    promoted = decide(state, B, policy, READY, now=125)
    assert promoted.event[1] == "Promoted"
    assert promoted.state.history[-1].reason.endswith("quality (before traffic): perplexity: within 0.05")


def test_a_canary_worse_before_traffic_is_rolled_back_having_served_no_one() -> None:
    policy = RolloutPolicy(steps=[50], pauseSeconds=600)
    state = decide(serving_a(), B, policy, None, now=100, before_traffic=True).state
    decision = decide(state, B, policy, READY, now=110, quality=gated(WORSE))
    assert decision.state.canary is None and decision.event[:2] == ("Warning", "QualityRegression")
    assert decision.state.history[-1].result == "RolledBack" and decision.state.failedRevisions == ["bbbb"]
    held = decide(state, B, policy, READY, now=110, quality=gated(NO_EVIDENCE))
    assert held.state.canary.held and held.event[:2] == ("Warning", "AnalysisError")
    assert "held out of traffic: no evidence" in held.message


def test_a_first_revision_with_a_bar_takes_no_traffic_until_it_reaches_it() -> None:
    policy = RolloutPolicy(steps=[50], pauseSeconds=10)
    first = decide(None, A, policy, None, now=0, judge_first=True)
    state = first.state
    assert state.stable.revision == "aaaa" and state.admission is not None and "out of traffic" in first.message
    assert targets(state, policy, 4) == {"aaaa": 1}  # judged on one replica
    assert traffic_share(state, policy, 4).model_dump() == {"stable": 0, "canary": 0, "retiring": 0}
    waiting = decide(state, A, policy, None, now=1, quality=QualityCheck())
    assert "waiting for its quality bars (starting once it is ready)" in waiting.message and waiting.event is None
    assert decide(state, B, policy, None, now=1, quality=QualityCheck()).state.canary is None  # nothing to canary over
    held = decide(waiting.state, A, policy, None, now=2, quality=gated(NO_EVIDENCE))
    assert held.event[:2] == ("Warning", "AnalysisError") and held.state.admission.reason == "AnalysisError"
    assert decide(held.state, A, policy, None, now=3, quality=gated(NO_EVIDENCE)).event is None  # said once
    below = decide(waiting.state, A, policy, None, now=2, quality=gated(WORSE))
    assert below.event[:2] == ("Warning", "QualityRegression") and below.state.failedRevisions == ["aaaa"]
    assert below.state.admission.figures == {"perplexity": {"drop": 0.31}} and "takes no traffic" in below.message
    assert decide(below.state, A, policy, None, now=3, quality=gated(WORSE)).state.admission is not None
    replaced = decide(below.state, B, policy, None, now=4, judge_first=True)  # a new spec: judged afresh
    assert replaced.state.stable.revision == "bbbb" and replaced.state.admission == QualityStatus(step=0)
    assert replaced.state.history[-1].result == "Superseded"
    passed = decide(waiting.state, A, policy, None, now=2, quality=gated(PASSED))
    assert passed.event[1] == "Admitted" and passed.state.admission is None
    assert targets(passed.state, policy, 4) == {"aaaa": 4}
    assert decide(None, A, policy, None, now=0).state.admission is None  # no bar: it serves at once
