"""The local runner applies CR YAML on this machine: stages as subprocesses in lineage order."""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from k8s_schemas import runnable_examples

pytestmark = pytest.mark.slow
EXAMPLES = {r["metadata"]["name"]: r for r in runnable_examples()}


def apply(tmp_path: Path, resources: list[dict]) -> subprocess.CompletedProcess:
    """``tanuki local apply`` of ``resources`` in ``tmp_path/work``, with the Secret the examples expect."""
    chain = tmp_path / "chain.yaml"
    chain.write_text(yaml.safe_dump_all(resources))
    key = tmp_path / "work" / "secrets" / "tanuki-api-key" / "api-key"
    if not key.is_file():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_text("local-key")
    return subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "local", "apply", "-f", str(chain),
                           "--workdir", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=600)


def test_independent_stages_run_at_the_same_time_while_their_cpu_requests_fit(tmp_path: Path,
                                                                              checkpoints: dict[str, Path]) -> None:
    import shutil

    shutil.copytree(checkpoints["a"], tmp_path / "work" / "tanuki-data" / "dense")
    stages = []
    for name in ("moe-a", "moe-b"):
        stage = copy.deepcopy(EXAMPLES["debug-moe"])
        stage["metadata"]["name"] = name
        stage["spec"]["model"] = {"path": "dense"}
        stage["spec"]["resources"]["cpu"] = "1"
        stages.append(stage)
    chain = tmp_path / "chain.yaml"
    chain.write_text(yaml.safe_dump_all(stages))

    def lines_of(cpus: str, workdir: str) -> list[str]:
        result = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "local", "apply", "-f", str(chain),
                                 "--workdir", str(tmp_path / workdir), "--cpus", cpus],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert {s["phase"] for s in statuses(result).values()} == {"Succeeded"}
        return [line for line in result.stdout.splitlines() if line.startswith("[tanuki local] UpcycleJob/")
                and (": running " in line or " exited with code " in line)]  # the kubelet's, in its order

    both = lines_of("2", "work")  # 1 + 1 cores fit in 2: both start before either ends
    assert [": running " in line for line in both] == [True, True, False, False], both
    (tmp_path / "alone" / "tanuki-data").mkdir(parents=True)
    (tmp_path / "alone" / "tanuki-data" / "dense").symlink_to(tmp_path / "work" / "tanuki-data" / "dense")
    alone = lines_of("1", "alone")  # only one fits: the second starts when the first ended
    assert [": running " in line for line in alone] == [True, False, True, False], alone


def recipe_text(workdir: Path, name: str) -> str:
    """The recipe the operator rendered for a stage: its ConfigMap in the local store."""
    from tanuki_operator.resources import store_of

    return store_of(workdir).get("v1", "ConfigMap", "local", f"{name}-recipe")["data"]["recipe.yaml"]


def statuses(result: subprocess.CompletedProcess) -> dict:
    output = "\n" + result.stdout
    return json.loads(output[output.rindex("\n{") + 1:])


def test_pretrain_then_upcycle_in_lineage_order(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "corpus", "--out",
                    str(tmp_path / "work" / "tanuki-data" / "corpus")], check=True, capture_output=True)
    base = copy.deepcopy(EXAMPLES["debug-base"])
    base["spec"]["recipe"]["train"].update(steps=4, seq_len=64)
    base["spec"]["recipe"]["checkpoint"]["every_steps"] = 4
    moe = copy.deepcopy(EXAMPLES["debug-moe"])
    moe["spec"]["model"] = {"from": {"kind": "PretrainJob", "name": "debug-base"}}
    dpo = copy.deepcopy(EXAMPLES["debug-dpo"])  # its judge, a ModelServer, is not in this file
    dpo["spec"]["model"] = {"from": {"kind": "UpcycleJob", "name": "debug-moe"}}
    result = apply(tmp_path, [dpo, moe, base])  # listed out of order on purpose
    found = statuses(result)
    phases = {name: (status["phase"], status.get("reason")) for name, status in found.items()}
    assert phases == {"PretrainJob/debug-base": ("Succeeded", "JobComplete"),
                      "UpcycleJob/debug-moe": ("Succeeded", "JobComplete"),
                      "DPOJob/debug-dpo": ("Waiting", "UpstreamUnavailable")}, result.stderr[-3000:]
    assert "ModelServer/debug-judge does not exist" in found["DPOJob/debug-dpo"]["message"]
    assert result.returncode == 1  # a stage left waiting: the chain is incomplete
    data = tmp_path / "work" / "tanuki-data"
    pretrained = json.loads((data / "pretrainjob/debug-base/outputs.json").read_text())["checkpoint"]
    recipe = yaml.safe_load(recipe_text(tmp_path / "work", "debug-moe"))
    assert recipe["source"] == pretrained
    assert json.loads((data / "upcyclejob/debug-moe/checkpoint/config.json").read_text())["num_local_experts"] == 4


def test_invalid_and_orphaned_resources_are_reported(tmp_path: Path) -> None:
    bad = copy.deepcopy(EXAMPLES["debug-base"])
    bad["spec"]["nodes"] = 0
    orphan = copy.deepcopy(EXAMPLES["debug-moe"])
    orphan["spec"]["model"]["from"]["name"] = "nobody"
    result = apply(tmp_path, [bad, orphan])
    assert result.returncode == 1
    found = statuses(result)
    assert found["PretrainJob/debug-base"]["phase"] == "ValidationFailed"
    assert "spec.nodes" in found["PretrainJob/debug-base"]["message"]
    # as in a cluster: a missing upstream keeps the resource Waiting, with the reason
    assert (found["UpcycleJob/debug-moe"]["phase"], found["UpcycleJob/debug-moe"]["reason"]) == (
        "Waiting", "UpstreamUnavailable")
    assert "PretrainJob/nobody does not exist" in found["UpcycleJob/debug-moe"]["message"]


def test_reapply_skips_what_succeeded_refuses_a_changed_spec_and_delete_forgets(
        tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    import shutil

    shutil.copytree(checkpoints["a"], tmp_path / "work" / "tanuki-data" / "dense")
    moe = copy.deepcopy(EXAMPLES["debug-moe"])
    moe["spec"]["model"] = {"path": "dense"}
    assert apply(tmp_path, [moe]).returncode == 0
    again = apply(tmp_path, [moe])
    assert again.returncode == 0 and "running" not in again.stdout  # unchanged and succeeded: not run again
    assert "UpcycleJob/debug-moe: unchanged, already succeeded" in again.stdout
    assert statuses(again)["UpcycleJob/debug-moe"]["phase"] == "Succeeded"
    moe["spec"]["recipe"]["noise_std"] = 0.01
    refused = apply(tmp_path, [moe])
    assert refused.returncode == 1 and "running" not in refused.stdout
    status = statuses(refused)["UpcycleJob/debug-moe"]
    assert status["reason"] == "ImmutableFieldChanged" and "spec.recipe.noise_std" in status["message"]
    chain = tmp_path / "chain.yaml"
    forgotten = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "local", "delete", "-f", str(chain),
                                "--workdir", str(tmp_path / "work")], capture_output=True, text=True, timeout=60)
    assert forgotten.returncode == 0 and "UpcycleJob/debug-moe: deleted" in forgotten.stdout
    assert not (tmp_path / "work" / "tanuki-data" / "upcyclejob" / "debug-moe").exists()
    rerun = apply(tmp_path, [moe])
    assert rerun.returncode == 0 and statuses(rerun)["UpcycleJob/debug-moe"]["phase"] == "Succeeded"


def test_a_server_whose_upstream_failed_is_reported_waiting_without_holding_the_runner(tmp_path: Path) -> None:
    dpo = copy.deepcopy(EXAMPLES["debug-dpo"])  # no such checkpoint: the stage fails (exit 2)
    dpo["spec"]["model"] = {"path": "models/none"}
    dpo["spec"]["judge"] = {"url": "http://127.0.0.1:9/v1", "model": "judge"}
    server = copy.deepcopy(EXAMPLES["debug-chat"])
    chain = tmp_path / "chain.yaml"
    chain.write_text(yaml.safe_dump_all([dpo, server]))
    key = tmp_path / "work" / "secrets" / "tanuki-api-key" / "api-key"  # the server's Secret is there
    key.parent.mkdir(parents=True)
    key.write_text("local-key")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "local", "apply", "-f", str(chain),
                             "--workdir", str(tmp_path / "work"), "--ready-timeout", "600"],
                            capture_output=True, text=True, timeout=300)
    assert time.monotonic() - started < 120  # not the 600 s ready timeout
    found = statuses(result)
    server_status = found["ModelServer/debug-chat"]
    assert (server_status["phase"], server_status["reason"]) == ("Waiting", "UpstreamUnavailable")
    assert "DPOJob/debug-dpo is Failed" in server_status["message"]


def test_an_interrupted_chain_resumes_the_stage_it_stopped_in_and_redoes_nothing(tmp_path: Path) -> None:
    """SIGTERM to the runner mid-stage (it stops the stage), then SIGKILL of anything left: the
    rerun skips the finished stage and resumes the interrupted one from its checkpoint."""
    import os
    import signal

    from tanuki_operator.local import statuses as stored

    subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "corpus", "--out",
                    str(tmp_path / "work" / "tanuki-data" / "corpus")], check=True, capture_output=True)
    base = copy.deepcopy(EXAMPLES["debug-base"])
    base["spec"]["recipe"]["train"].update(steps=2, seq_len=64, warmup_steps=1)
    base["spec"]["recipe"]["checkpoint"]["every_steps"] = 2
    late = copy.deepcopy(EXAMPLES["debug-base"])
    late["metadata"]["name"] = "late"
    late["spec"]["initFrom"] = {"from": {"kind": "PretrainJob", "name": "debug-base"}}
    late["spec"]["recipe"]["tokenizer"] = {"path": "pretrainjob/debug-base/tokenizer"}
    late["spec"]["recipe"]["train"].update(steps=40, seq_len=64, warmup_steps=1)
    late["spec"]["recipe"]["checkpoint"] = {"every_steps": 2, "keep_last": 2}
    chain = tmp_path / "chain.yaml"
    chain.write_text(yaml.safe_dump_all([base, late]))
    command = [sys.executable, "-m", "tanuki_pipelines.cli", "local", "apply", "-f", str(chain),
               "--workdir", str(tmp_path / "work")]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:  # the second stage is running and has a checkpoint
        status = stored(tmp_path / "work").get("PretrainJob/late", {})
        if status.get("phase") == "Running" and (status.get("progress") or {}).get("step", 0) >= 6:
            break
        assert runner.poll() is None, runner.stdout.read()[-3000:]
        time.sleep(0.5)
    else:
        raise AssertionError(f"the second stage never got going: {stored(tmp_path / 'work')}")
    os.kill(runner.pid, signal.SIGTERM)
    try:
        runner.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)  # whatever the runner left behind
    stopped_at = stored(tmp_path / "work")["PretrainJob/late"]["progress"]["step"]
    assert stopped_at < 40
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    found = statuses(rerun)
    assert "PretrainJob/debug-base: unchanged, already succeeded" in rerun.stdout
    assert found["PretrainJob/late"]["phase"] == "Succeeded"
    assert "resumed from" in rerun.stdout + rerun.stderr
    metrics = (tmp_path / "work" / "tanuki-data" / "pretrainjob" / "late" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in metrics] == list(range(1, 41))  # no step twice, none missing


def test_a_tokenize_job_on_ray_runs_locally_on_ray_data_and_publishes_its_store(tmp_path: Path,
                                                                               debug_tokenizer_dir: Path) -> None:
    """spec.ray renders a KubeRay RayJob; the local kubelet runs its entrypoint as the driver pod on
    the head's template, Ray started in it, and its termination message carries the outputs."""
    import shutil

    subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "corpus", "--out",
                    str(tmp_path / "work" / "tanuki-data" / "corpus")], check=True, capture_output=True)
    shutil.copytree(debug_tokenizer_dir, tmp_path / "work" / "tanuki-data" / "tokenizer")
    tokens = copy.deepcopy(EXAMPLES["debug-tokens"])
    tokens["spec"].pop("sourcesFrom")
    tokens["spec"]["tokenizer"] = {"path": "tokenizer"}
    tokens["spec"]["recipe"]["sources"] = tokens["spec"]["recipe"]["sources"][:2]
    tokens["spec"]["ray"] = {"workers": 1}
    result = apply(tmp_path, [tokens])
    found = statuses(result)["TokenizeJob/debug-tokens"]
    assert found["phase"] == "Succeeded", result.stdout[-4000:] + result.stderr[-2000:]
    outputs = json.loads((tmp_path / "work" / "tanuki-data" / "tokenizejob" / "debug-tokens" / "outputs.json")
                         .read_text())
    from tanuki_operator.local import statuses as stored

    assert stored(tmp_path / "work")["TokenizeJob/debug-tokens"]["outputs"]["tokens"] == outputs["tokens"]
    assert "--ray-address auto" in result.stdout  # the RayJob's entrypoint, run by the driver pod
    stats = json.loads((Path(outputs["tokens"]) / "stats.json").read_text())
    assert set(stats["sources"]) == {"ja", "en"} and stats["tokens"] > 0
