"""``tanuki report`` and ``tanuki local get``: pure pieces on hand-made statuses, and a page whose
every link points at a file that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tanuki_operator.lineage import referenced
from tanuki_operator.local import status_table
from tanuki_operator.report import depths, line_chart, lineage_graph, render_page


def test_referenced_finds_every_from_in_a_raw_spec() -> None:
    spec = {"model": {"from": {"kind": "SFTJob", "name": "sft"}}, "judge": {"from": {"kind": "ModelServer", "name": "j"}},
            "sourcesFrom": [{"source": "synth", "from": {"kind": "SynthJob", "name": "s"}}], "prompts": {"path": "p"}}
    assert referenced(spec) == ["SFTJob/sft", "ModelServer/j", "SynthJob/s"]
    assert referenced({"model": {"from": "not a reference"}}) == []


def test_a_line_chart_has_one_point_per_record_and_a_heading() -> None:
    svg = line_chart({"loss": [(1, 3.0), (2, 2.5), (3, 2.0)], "aux": [(1, 1.0), (3, 0.5)]}, "loss")
    polylines = re.findall(r'points="([^"]+)"', svg)
    assert [len(points.split()) for points in polylines] == [3, 2]
    assert ">loss</text>" in svg and line_chart({}, "empty") == ""


STATUSES = {
    "ModelServer/chat": {"phase": "Running", "upstream": ["DPOJob/dpo"], "outputs": {"url": "http://127.0.0.1:1/v1",
                                                                                      "model": "chat"}},
    "DPOJob/dpo": {"phase": "Succeeded", "upstream": ["SFTJob/sft", "ModelServer/judge"],
                   "startTime": "2026-12-01T10:00:00Z", "completionTime": "2026-12-01T10:00:42Z",
                   "conditions": [{"type": "Ready", "status": "True", "reason": "JobComplete"}]},
    "SFTJob/sft": {"phase": "Succeeded", "upstream": ["PretrainJob/base"]},
    "PretrainJob/base": {"phase": "Succeeded", "upstream": []},
    "ModelServer/judge": {"phase": "Running", "upstream": ["SFTJob/sft"]},
}


def test_lineage_depths_and_one_arrow_per_edge() -> None:
    assert depths(STATUSES) == {"PretrainJob/base": 0, "SFTJob/sft": 1, "ModelServer/judge": 2, "DPOJob/dpo": 3,
                                "ModelServer/chat": 4}
    svg = lineage_graph(STATUSES)
    assert svg.count("marker-end") == 5 and svg.count("<rect") == 5


def test_local_get_prints_a_kubectl_like_table() -> None:
    from datetime import UTC, datetime

    def stamp(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    now = 1000.0
    statuses = {"PretrainJob/base": {
        "phase": "Succeeded", "message": "done", "startTime": stamp(320.0), "completionTime": stamp(400.0),
        "conditions": [{"type": "Valid", "status": "True", "reason": "SpecValid"},
                       {"type": "Ready", "status": "True", "reason": "JobComplete", "lastTransitionTime": stamp(400.0)}],
        "outputs": {"checkpoint": "/data/base/checkpoint"}}}
    lines = status_table(statuses, wide=False, now=now).splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "PROGRESS", "REASON", "WALL", "AGE"]
    assert lines[1].split() == ["pretrainjob/base", "Succeeded", "JobComplete", "80s", "10m"]
    assert status_table(statuses, wide=True, now=now).splitlines()[1].split()[-2:] == ["/data/base/checkpoint", "done"]
    running = {"SFTJob/sft": {"phase": "Running", "startTime": stamp(970.0), "conditions": [
        {"type": "Ready", "status": "False", "reason": "PodsActive", "lastTransitionTime": stamp(990.0)}],
        "progress": {"step": 8, "totalSteps": 20, "etaSeconds": 30}}}
    assert status_table(running, wide=False, now=now).splitlines()[1].split() == [
        "sftjob/sft", "Running", "8/20", "PodsActive", "30s", "10s"]
    refused = {"SFTJob/sft": {"phase": "Succeeded", "message": "finished", "conditions": [
        {"type": "Valid", "status": "False", "reason": "ImmutableFieldChanged", "message": "spec.recipe.lr: cannot change"},
        {"type": "Ready", "status": "True", "reason": "JobComplete"}]}}
    assert status_table(refused, wide=True, now=now).splitlines()[1].split()[:3] == [
        "sftjob/sft", "Succeeded", "ImmutableFieldChanged"]
    assert "spec.recipe.lr" in status_table(refused, wide=True, now=now)


def test_the_page_shows_every_stage_and_links_only_existing_files(tmp_path: Path) -> None:
    out = tmp_path / "tanuki-data" / "dpojob" / "dpo"
    out.mkdir(parents=True)
    (out / "metrics.jsonl").write_text("".join(json.dumps({"step": step, "loss": 0.7 - step / 10,
                                                           "rewards/margins": step / 5, "rewards/chosen": step / 10,
                                                           "rewards/rejected": -step / 10}) + "\n" for step in range(1, 5)))
    (out / "pairs_stats.json").write_text(json.dumps({"prompts": 24, "kept": 14, "tie": 10}))
    (out / "checkpoint").mkdir()
    statuses = {**STATUSES, "DPOJob/dpo": {**STATUSES["DPOJob/dpo"], "outputs": {
        "checkpoint": str(out / "checkpoint"), "metrics": str(out / "metrics.jsonl"),
        "pairs_stats": str(out / "pairs_stats.json"), "report": str(out / "missing.html")}}}
    page = render_page(tmp_path, statuses, 0.0)
    for key in STATUSES:
        assert key in page
    assert "DPO rewards" in page and "<td>14</td>" in page and "http://127.0.0.1:1/v1" in page
    assert "<td>42 s</td>" in page and "<td>JobComplete</td>" in page  # wall time and reason of the status
    links = re.findall(r'href="file://([^"]+)"', page)
    assert links and all(Path(link).exists() for link in links)
    assert "missing.html" not in "".join(links)


def test_an_arena_that_one_model_always_won_shows_records_not_ratings(tmp_path: Path) -> None:
    from tanuki_pipelines.eval.ratings import Battle, leaderboard

    out = tmp_path / "evaljob" / "arena"
    out.mkdir(parents=True)
    board = leaderboard([Battle("dpo", "sft", "model_a")] * 12, rounds=20)
    (out / "leaderboard.json").write_text(json.dumps(board))
    page = render_page(tmp_path, {"EvalJob/arena": {"phase": "Succeeded", "upstream": [], "outputs": {
        "report": str(out / "index.html")}}}, 0.0)
    assert "<td>not estimable</td><td>never lost (12–0)</td>" in page
    assert "<td>not estimable</td><td>never won (0–12)</td>" in page and "its record shows instead" in page
