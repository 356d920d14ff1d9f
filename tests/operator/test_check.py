"""``tanuki check``: each resource of a chain through the operator's own first reconcile, in memory:
runs, waits, done, or a certain problem (exit 2), and nothing is run or written."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from k8s_schemas import example_resources
from tanuki_operator.check import check

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = {r["metadata"]["name"]: r for r in example_resources()}


def tanuki(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES_DIR.glob("*.yaml")))
def test_every_shipped_example_passes(example: str) -> None:
    resources = [doc for doc in yaml.safe_load_all((EXAMPLES_DIR / example).read_text()) if doc]
    verdicts = check(resources, None)
    assert [v for v in verdicts if v.outcome == "problem"] == []
    assert {v.outcome for v in verdicts} <= {"runs", "waits", "unknown"}
    # a server of the chain's model, applied after it (debug-serve), reads what only a cluster may have
    assert all("not in this file" in v.detail for v in verdicts if v.outcome == "unknown")


def test_a_broken_chain_lists_each_problem_and_exits_2(tmp_path: Path) -> None:
    base = copy.deepcopy(EXAMPLES["debug-base"])
    base["spec"]["nodes"] = 0
    orphan = copy.deepcopy(EXAMPLES["debug-moe"])
    orphan["spec"]["model"]["from"]["name"] = "nobody"
    server = copy.deepcopy(EXAMPLES["debug-judge"])
    stranger = {"apiVersion": "llm.tanuki.dev/v1alpha1", "kind": "TrainJob", "metadata": {"name": "x"}, "spec": {}}
    chain = tmp_path / "chain.yaml"
    chain.write_text(yaml.safe_dump_all([base, orphan, server, stranger]))
    work = tmp_path / "work"
    result = tanuki("check", "-f", str(chain), "--workdir", str(work))
    assert result.returncode == 2, result.stdout + result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "problem" in rows["PretrainJob/debug-base"] and "spec.nodes" in rows["PretrainJob/debug-base"]
    assert "UpstreamUnavailable" in rows["UpcycleJob/debug-moe"] and "PretrainJob/nobody does not exist" in rows[
        "UpcycleJob/debug-moe"]
    assert "SecretMissing: spec.auth.apiKey: no Secret tanuki-api-key" in rows["ModelServer/debug-judge"]
    assert 'no matches for kind "TrainJob"' in rows["TrainJob/x"]
    assert not work.exists()  # nothing written, nothing run

    key = work / "secrets" / "tanuki-api-key" / "api-key"  # the Secret, as the local runner reads it
    key.parent.mkdir(parents=True)
    key.write_text("k")
    again = tanuki("local", "apply", "-f", str(chain), "--workdir", str(work), "--dry-run")
    rows = {line.split()[0]: line for line in again.stdout.splitlines()[1:]}
    # its Secret is there now: what is left is its upstream, which exists nowhere
    assert again.returncode == 2 and "UpstreamUnavailable: SFTJob/debug-sft does not exist" in rows[
        "ModelServer/debug-judge"]
    assert not (work / ".tanuki").exists()


def test_what_succeeded_in_the_workdir_is_done_and_what_reads_it_runs(tmp_path: Path) -> None:
    from tanuki_operator.api import API_VERSION
    from tanuki_operator.resources import NAMESPACE, manifest_of, store_of
    from tanuki_operator.stages import STAGES

    work = tmp_path / "work"
    base, synth = EXAMPLES["debug-base"], EXAMPLES["debug-synth"]
    store = store_of(work)
    applied = store.apply(manifest_of(base, work), manager="kubectl")
    store.patch_status(API_VERSION, "PretrainJob", NAMESPACE, "debug-base", {
        "phase": "Succeeded", "observedGeneration": applied["metadata"]["generation"],
        "outputs": {str(output): f"/data/{output}" for output in STAGES["PretrainJob"].outputs}})
    before = (work / ".tanuki" / "objects.json").read_text()
    verdicts = {v.resource: v for v in check([base, synth], work)}
    assert verdicts["PretrainJob/debug-base"].outcome == "done"
    assert verdicts["SynthJob/debug-synth"].outcome == "runs"
    assert (work / ".tanuki" / "objects.json").read_text() == before  # the workdir is read, never written
