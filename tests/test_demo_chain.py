"""What the README's first command left in ``tanuki-demo/`` (CI runs it before the tests): every
stage of the debug chain succeeded, each consumed its upstream's output (the tokenizer, the dense
run and the token store read the curated corpus, the token store holds the
synthetic documents and the late phases train on it, the late-phase mix holds synthetic sequences,
the SFT data is the SynthJob's dialogues, DPO trained the SFT model), and the report links only
files that exist. Skipped where the demo has not run in this checkout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tanuki_operator.local import is_server

DEMO = Path(__file__).resolve().parents[1] / "tanuki-demo"
CHAIN = Path(__file__).resolve().parents[1] / "examples" / "debug-chain.yaml"

pytestmark = pytest.mark.skipif(not (DEMO / ".tanuki" / "objects.json").is_file(),
                                reason="the README's first command (tanuki demo) has not run in this checkout")


def statuses() -> dict:
    from tanuki_operator.local import statuses as stored

    return stored(DEMO)


def recipe(kind: str, name: str) -> dict:
    """The recipe the operator rendered for the stage (its ConfigMap in the local store)."""
    from tanuki_operator.resources import store_of

    return yaml.safe_load(store_of(DEMO).get("v1", "ConfigMap", "local", f"{name}-recipe")["data"]["recipe.yaml"])


def outputs(kind: str, name: str) -> dict:
    return statuses()[f"{kind}/{name}"]["outputs"]


def test_every_stage_of_the_chain_succeeded() -> None:
    found = statuses()
    declared = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(CHAIN.read_text()) if d]
    for kind, name in declared:
        if not is_server(kind):  # servers (ModelServer, Arena) stop with the runner: they never "succeed"
            assert found[f"{kind}/{name}"]["phase"] == "Succeeded", (kind, name, found.get(f"{kind}/{name}"))
        assert Path(next(iter(v for k, v in (found[f"{kind}/{name}"].get("outputs") or {}).items()
                              if k in ("checkpoint", "dataset", "tokens", "report")), DEMO)).exists()


def test_each_stage_consumed_its_upstream() -> None:
    curated = outputs("CurateJob", "debug-curate")
    base = recipe("PretrainJob", "debug-base")
    for sources in (base["data"]["sources"], base["tokenizer"]["train"]["sources"]):
        assert {s["name"]: s["path"] for s in sources} == {"ja": f"{curated['dataset']}/ja", "en": f"{curated['dataset']}/en"}
    stats = json.loads(Path(curated["stats"]).read_text())
    assert 0 < stats["documents_out"] < stats["documents_in"]  # the shipped corpus has near duplicates
    synth = outputs("SynthJob", "debug-synth")
    tokens = recipe("TokenizeJob", "debug-tokens")
    assert {s["name"]: s["path"] for s in tokens["sources"]}["ja"] == f"{curated['dataset']}/ja"
    assert {s["name"]: s["path"] for s in tokens["sources"]}["synth"] == synth["dataset"]
    assert tokens["tokenizer"] == outputs("PretrainJob", "debug-base")["tokenizer"]
    store = outputs("TokenizeJob", "debug-tokens")["tokens"]
    assert json.loads((Path(store) / "stats.json").read_text())["sources"]["synth"]["tokens"] > 0
    late = recipe("PretrainJob", "debug-late")
    assert late["data"]["store"] == store and recipe("PretrainJob", "debug-moe-cpt")["data"]["store"] == store
    assert outputs("PretrainJob", "debug-late")["tokenizer"] == outputs("TokenizeJob", "debug-tokens")["tokenizer"]
    assert late["init_from"] == outputs("PretrainJob", "debug-base")["checkpoint"]
    mixed = [json.loads(line)["mix"]["synth"] for line in Path(outputs("PretrainJob", "debug-late")["metrics"])
             .read_text().splitlines()]
    assert sum(mixed) > 0 and mixed[-1] >= mixed[0]  # synthetic sequences, more of them late
    assert recipe("UpcycleJob", "debug-moe")["source"] == outputs("PretrainJob", "debug-late")["checkpoint"]
    assert recipe("PretrainJob", "debug-moe-cpt")["init_from"] == outputs("UpcycleJob", "debug-moe")["checkpoint"]
    assert "expert_load" in json.loads(Path(outputs("PretrainJob", "debug-moe-cpt")["metrics"]).read_text()
                                       .splitlines()[-1])
    sft = recipe("SFTJob", "debug-sft")
    assert sft["dataset"] == synth["dialogues"] and sft["model"] == outputs("PretrainJob", "debug-moe-cpt")["checkpoint"]
    dpo = recipe("DPOJob", "debug-dpo")
    assert dpo["model"] == outputs("SFTJob", "debug-sft")["checkpoint"]
    assert json.loads(Path(outputs("DPOJob", "debug-dpo")["pairs_stats"]).read_text())["kept"] > 0
    margins = [json.loads(line)["rewards/margins"] for line in
               Path(outputs("DPOJob", "debug-dpo")["metrics"]).read_text().splitlines()]
    assert margins[-1] > margins[0]
    assert {t["name"] for t in recipe("EvalJob", "debug-eval")["targets"]} == {"sft", "dpo"}


def test_the_report_links_only_files_that_exist() -> None:
    page = (DEMO / "report" / "index.html").read_text()
    links = re.findall(r'href="file://([^"]+)"', page)
    assert links and all(Path(link).exists() for link in links)
    for name in ("debug-base", "debug-late", "debug-moe-cpt", "debug-dpo", "debug-eval"):
        assert name in page


def test_dpo_was_judged_by_the_server_the_same_apply_ran_and_its_key_stayed_out_of_files() -> None:
    judge = recipe("DPOJob", "debug-dpo")["pairs"]["judge"]
    served = statuses()["ModelServer/debug-judge"]["outputs"]
    assert (judge["base_url"], judge["model"], judge["api_key_env"]) == (served["url"], served["model"], "JUDGE_API_KEY")
    assert served["checkpoint"] == outputs("SFTJob", "debug-sft")["checkpoint"]
    key = (DEMO / "secrets" / "tanuki-api-key" / "api-key").read_text().strip()
    assert key not in (DEMO / ".tanuki" / "objects.json").read_text()  # no spec, recipe, env or status holds it
    assert not [path for path in (DEMO / ".tanuki" / "pods").rglob("*") if path.is_file()
                and key in path.read_text(errors="replace")]


def test_the_chat_server_rolled_the_dpo_model_out_over_the_sft_one_before_the_arena_began() -> None:
    from datetime import datetime

    found = statuses()
    rollout = found["ModelServer/debug-chat"]["rollout"]
    dpo = outputs("DPOJob", "debug-dpo")["checkpoint"]
    promoted = [record for record in rollout["history"] if record["result"] == "Promoted"]
    # a promotion needs a stable revision to replace: the SFT model (spec.initialModel) served first
    assert [record["model"] for record in promoted] == [dpo] and rollout["stable"]["model"] == dpo
    assert "quality: arena: canary won" in promoted[0]["reason"]  # judged not clearly worse than the SFT model
    arena = found["EvalJob/debug-eval"]
    assert datetime.fromisoformat(promoted[0]["time"]) <= datetime.fromisoformat(arena["startTime"])


def test_the_dpo_model_was_quantized_passed_its_gate_and_served() -> None:
    quantized = outputs("QuantizeJob", "debug-dpo-w8a8")
    assert recipe("QuantizeJob", "debug-dpo-w8a8")["source"] == outputs("DPOJob", "debug-dpo")["checkpoint"]
    quality = json.loads(Path(quantized["quality"]).read_text())
    assert quality["passed"] and quality["agreement"] >= quality["threshold"] == 0.95
    assert quantized["size_bytes"] < quantized["source_size_bytes"]
    config = json.loads((Path(quantized["checkpoint"]) / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    served = statuses()["ModelServer/debug-chat-w8a8"]
    assert served["outputs"]["checkpoint"] == quantized["checkpoint"]
    # it rolled out over the unquantized model once its held-out perplexity matched debug-chat's
    promoted = [record for record in served["rollout"]["history"] if record["result"] == "Promoted"]
    assert [record["model"] for record in promoted] == [quantized["checkpoint"]]
    # judged once, before it took traffic (when: beforeTraffic), then stepped on health and promoted
    assert "quality (before traffic): perplexity:" in promoted[0]["reason"], promoted


def test_every_stage_published_what_the_registry_says_its_kind_publishes() -> None:
    from tanuki_operator.stages import STAGES

    for key, status in statuses().items():
        kind = key.split("/")[0]
        missing = {str(output) for output in STAGES[kind].outputs} - set(status.get("outputs") or {})
        assert not missing, f"{key} did not publish {sorted(missing)}"
