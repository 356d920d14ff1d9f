"""``tanuki check``: each resource of a chain through the operator's own first reconcile, in memory:
runs, waits, done, or a certain problem (exit 2), and nothing is run or written."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from k8s_schemas import runnable_examples
from tanuki_operator.check import check

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = {r["metadata"]["name"]: r for r in runnable_examples()}


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


def test_what_succeeded_in_the_workdir_is_done_and_what_reads_it_runs(tmp_path: Path, debug_tokenizer_dir: Path) -> None:
    from preflight_fixtures import stand_in_checkpoint
    from tanuki_operator.api import API_VERSION
    from tanuki_operator.resources import NAMESPACE, manifest_of, store_of
    from tanuki_pipelines.cli import main as tanuki

    work = tmp_path / "work"
    assert tanuki(["corpus", "--out", str(work / "tanuki-data" / "corpus")]) == 0  # what the chain's PVC holds
    base, synth = EXAMPLES["debug-base"], EXAMPLES["debug-synth"]
    store = store_of(work)
    applied = store.apply(manifest_of(base, work), manager="kubectl")
    made = {"checkpoint": stand_in_checkpoint(tmp_path / "base", debug_tokenizer_dir), "tokenizer": debug_tokenizer_dir,
            "metrics": tmp_path / "metrics.jsonl"}
    store.patch_status(API_VERSION, "PretrainJob", NAMESPACE, "debug-base", {
        "phase": "Succeeded", "observedGeneration": applied["metadata"]["generation"],
        "outputs": {output: str(path) for output, path in made.items()}})
    before = (work / ".tanuki" / "objects.json").read_text()
    verdicts = {v.resource: v for v in check([base, synth], work)}
    assert verdicts["PretrainJob/debug-base"].outcome == "done"
    assert verdicts["SynthJob/debug-synth"].outcome == "runs", verdicts["SynthJob/debug-synth"].detail
    assert (work / ".tanuki" / "objects.json").read_text() == before  # the workdir is read, never written


def test_with_a_workdir_the_programs_preflights_run_on_its_files(tmp_path: Path, debug_tokenizer_dir: Path) -> None:
    """What would start now goes through its program's preflight on the paths its pod would read:
    a corpus that is not there, a checkpoint vLLM cannot serve at the asked context length."""
    from preflight_fixtures import stand_in_checkpoint
    from tanuki_operator.api import API_VERSION
    from tanuki_operator.resources import NAMESPACE, manifest_of, store_of
    from tanuki_pipelines.cli import main as tanuki_main

    work = tmp_path / "work"
    assert tanuki_main(["corpus", "--out", str(work / "tanuki-data" / "corpus")]) == 0
    base, synth = EXAMPLES["debug-base"], EXAMPLES["debug-synth"]
    store = store_of(work)
    applied = store.apply(manifest_of(base, work), manager="kubectl")
    unservable = stand_in_checkpoint(tmp_path / "base", debug_tokenizer_dir, architectures=["NoSuchForCausalLM"],
                                     max_position_embeddings=64)
    store.patch_status(API_VERSION, "PretrainJob", NAMESPACE, "debug-base", {
        "phase": "Succeeded", "observedGeneration": applied["metadata"]["generation"],
        "outputs": {"checkpoint": str(unservable), "tokenizer": str(debug_tokenizer_dir), "metrics": "m"}})
    other = copy.deepcopy(base)
    other["metadata"]["name"] = "other-base"
    other["spec"]["recipe"]["data"]["sources"][0]["path"] = "corpus/nothing.jsonl"
    verdicts = {v.resource: v for v in check([base, synth, other], work)}
    assert verdicts["PretrainJob/debug-base"].outcome == "done"
    problem = verdicts["SynthJob/debug-synth"]
    assert problem.outcome == "problem" and problem.detail.startswith("PreflightFailed")
    assert "generator.path: vLLM has no model class for architectures ['NoSuchForCausalLM']" in problem.detail
    assert "generator.max_model_len" in problem.detail and "max_position_embeddings 64" in problem.detail
    missing = verdicts["PretrainJob/other-base"]
    assert missing.outcome == "problem"
    assert f"data.sources[0] (ja).path: data source 'ja': path: no such file or directory: " \
           f"{work.resolve() / 'tanuki-data' / 'corpus' / 'nothing.jsonl'}" in missing.detail


def _server(tmp_path: Path, tokenizer: Path, engine: dict | None = None, resources: dict | None = None,
            **config: object) -> tuple[object, dict[str, str]]:
    from preflight_fixtures import stand_in_checkpoint
    from tanuki_operator.validation import validate_spec

    spec = copy.deepcopy(EXAMPLES["debug-chat"]["spec"])
    spec["engine"].update(engine or {})
    spec["resources"].update(resources or {})
    model, errors = validate_spec("ModelServer", spec)
    assert model is not None, errors
    return model, {"model": str(stand_in_checkpoint(tmp_path / "served", tokenizer, **config))}


def _broken(path: str, what: str) -> str:
    target = Path(path)
    if what == "no config":
        (target / "config.json").unlink()
    elif what == "config not JSON":
        (target / "config.json").write_text("{oops")
    elif what == "no weights":
        (target / "model.safetensors").unlink()
    elif what == "a file":
        return str(target / "config.json")
    return path


@pytest.mark.parametrize(("case", "engine", "config", "breakage", "expected"), [
    ("missing checkpoint", {}, {}, "missing", "spec.model: no such file or directory"),
    ("a file", {}, {}, "a file", "is a file, not an HF checkpoint"),
    ("no config.json", {}, {}, "no config", "has no readable config.json"),
    ("config.json not JSON", {}, {}, "config not JSON", "has no readable config.json"),
    ("no weights", {}, {}, "no weights", "no weights"),
    ("architecture vLLM lacks", {}, {"architectures": ["NoSuchForCausalLM"]}, None, "vLLM has no model class"),
    ("no architecture", {}, {"architectures": []}, None, "architectures (none listed)"),
    ("context longer than positions", {"max_model_len": 4096}, {}, None,
     "spec.engine.max_model_len: 4096 is longer than the model's max_position_embeddings 1024"),
    ("tensor parallel not dividing heads", {"tensor_parallel_size": 3}, {}, None,
     "spec.engine.tensor_parallel_size: 3 does not divide the model's 4 attention heads"),
    ("tensor parallel against KV heads", {"tensor_parallel_size": 2},
     {"num_attention_heads": 6, "num_key_value_heads": 3}, None, "3 key-value heads"),
    ("quantized experts on the CPU backend", {}, {
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 4,
        "quantization_config": {"config_groups": {"group_0": {"targets": ["Linear"]}}}}, None,
     "no quantized-MoE kernel"),
])
def test_a_model_servers_checkpoint_is_checked_against_its_engine(
        tmp_path: Path, debug_tokenizer_dir: Path, case: str, engine: dict, config: dict, breakage: str | None,
        expected: str) -> None:
    from tanuki_operator.check import program_findings

    spec, inputs = _server(tmp_path, debug_tokenizer_dir, engine, **config)
    if breakage == "missing":
        inputs["model"] = str(tmp_path / "nowhere")
    elif breakage is not None:
        inputs["model"] = _broken(inputs["model"], breakage)
    problems = program_findings("ModelServer", spec, inputs, paths_here=True).problems
    assert any(expected in problem for problem in problems), problems
    if breakage == "missing":  # on a cluster's volume: not a problem, not checked here
        unseen = program_findings("ModelServer", spec, inputs, paths_here=False)
        assert unseen.problems == [] and unseen.unknown


def test_a_servable_checkpoint_passes(tmp_path: Path, debug_tokenizer_dir: Path) -> None:
    from tanuki_operator.check import program_findings

    spec, inputs = _server(tmp_path, debug_tokenizer_dir, {"tensor_parallel_size": 2}, {"gpus": 2})
    assert program_findings("ModelServer", spec, inputs, paths_here=True).problems == []
    attention_only = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 4,
                      "quantization_config": {"config_groups": {"group_0": {"targets": ["re:.*self_attn.*"]}}}}
    spec, inputs = _server(tmp_path / "moe", debug_tokenizer_dir, **attention_only)
    assert program_findings("ModelServer", spec, inputs, paths_here=True).problems == []


def test_quality_gates_naming_the_server_itself_are_a_problem_and_one_elsewhere_is_said() -> None:
    chain = [doc for doc in yaml.safe_load_all((EXAMPLES_DIR / "debug-chain.yaml").read_text()) if doc]
    chat = next(doc for doc in chain if doc["metadata"]["name"] == "debug-chat")
    quality = chat["spec"]["rollout"]["analysis"]["quality"]
    quality["judge"]["from"]["name"] = "debug-chat"
    verdicts = {v.resource: v for v in check(chain, None)}
    verdict = verdicts["ModelServer/debug-chat"]
    assert verdict.outcome == "problem" and "quality.judge.from: names this ModelServer itself" in verdict.detail
    quality["judge"]["from"]["name"] = "debug-judge"
    quality["against"] = {"modelServer": "elsewhere"}
    verdict = {v.resource: v for v in check(chain, None)}["ModelServer/debug-chat"]
    assert verdict.outcome == "waits" and "quality.against.modelServer: ModelServer/elsewhere: not in this file" \
        in verdict.detail
