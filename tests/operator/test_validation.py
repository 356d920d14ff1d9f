"""Spec validation: examples pass; every invalid spec is a ValidationFailed naming a field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fake_kube import FakeKube
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k8s_schemas import example_resources, runnable_examples
from tanuki_operator.handlers.reconcile import reconcile
from tanuki_operator.render import Settings
from tanuki_operator.validation import validate_spec

EXAMPLES = runnable_examples()


@pytest.mark.parametrize("resource", example_resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_examples_are_valid(resource: dict[str, Any]) -> None:
    model, errors = validate_spec(resource["kind"], resource["spec"])
    assert errors == [] and model is not None


def test_relative_recipe_paths_resolve_against_the_mount() -> None:
    resource = next(r for r in EXAMPLES if r["metadata"]["name"] == "debug-base")
    model, _ = validate_spec("PretrainJob", resource["spec"])
    assert str(model.recipe.data.sources[0].path) == "/data/corpus/ja.jsonl"


@pytest.mark.parametrize(
    ("kind", "patch", "field"),
    [
        ("PretrainJob", {"nodes": 0}, "spec.nodes"),
        ("PretrainJob", {"resources": {"cpu": "lots"}}, "spec.resources.cpu"),
        ("PretrainJob", {"storage": {}}, "spec.storage.claimName"),
        ("PretrainJob", {"sourcesFrom": [{"source": "nope", "from": {"kind": "SynthJob", "name": "s"}}]}, "spec"),
        ("ModelServer", {"auth": {"required": True}}, "spec.auth"),
        ("ModelServer", {"autoscaling": {"minReplicas": 3, "maxReplicas": 1}}, "spec.autoscaling"),
        ("UpcycleJob", {"recipe": {"num_experts": 2, "top_k": 4}}, "spec.recipe"),
        ("UpcycleJob", {"model": {"path": "a", "from": {"kind": "PretrainJob", "name": "b"}}}, "spec.model"),
        ("EvalJob", {"target": {"from": {"kind": "SFTJob", "name": "x"}}}, "spec.target"),
        ("SynthJob", {"endpoint": {"url": "http://gen/v1", "model": "g"}}, "spec"),  # and a model
        ("SynthJob", {"recipe": {"styles": ["haiku"]}}, "spec.recipe.styles"),
        ("DPOJob", {"judge": None}, "spec"),  # generating pairs needs a judge
        ("DPOJob", {"nodes": 2}, "spec"),  # one pod
        ("DPOJob", {"judge": {"from": {"kind": "SFTJob", "name": "x"}}}, "spec.judge"),
        ("QuantizeJob", {"recipe": {"scheme": "W2A16"}}, "spec.recipe.scheme"),
        ("QuantizeJob", {"recipe": {"gate": {"threshold": 1.5}}}, "spec.recipe.gate.threshold"),
    ],
)
def test_invalid_field_is_named(kind: str, patch: dict, field: str) -> None:
    resource = next(r for r in EXAMPLES if r["kind"] == kind)
    model, errors = validate_spec(kind, {**resource["spec"], **patch})
    assert model is None and errors
    assert any(error.field.startswith(field) for error in errors), errors


def ref(kind: str) -> dict[str, Any]:
    return {"from": {"kind": kind, "name": "upstream"}}


@pytest.mark.parametrize(
    ("kind", "patch", "field", "reads"),
    [
        ("SFTJob", {"dataset": ref("PretrainJob")}, "spec.dataset.from.kind", "dialogues"),
        ("SFTJob", {"dataset": ref("DPOJob")}, "spec.dataset.from.kind", "dialogues"),
        ("SFTJob", {"model": ref("SynthJob")}, "spec.model.from.kind", "checkpoint"),
        ("UpcycleJob", {"model": ref("EvalJob")}, "spec.model.from.kind", "checkpoint"),
        ("DPOJob", {"prompts": ref("SFTJob")}, "spec.prompts.from.kind", "dataset"),
        ("QuantizeJob", {"calibration": ref("PretrainJob")}, "spec.calibration.from.kind", "dataset"),
        ("ModelServer", {"model": ref("SynthJob")}, "spec.model.from.kind", "checkpoint"),
        ("ModelServer", {"initialModel": ref("EvalJob")}, "spec.initialModel.from.kind", "checkpoint"),
        ("PretrainJob", {"initFrom": ref("SynthJob")}, "spec.initFrom.from.kind", "checkpoint"),
        ("PretrainJob", {"sourcesFrom": [{"source": "ja", "from": {"kind": "QuantizeJob", "name": "q"}}]},
         "spec.sourcesFrom[0].from.kind", "dataset"),
        ("PretrainJob", {"tokens": ref("SynthJob")}, "spec.tokens.from.kind", "tokens"),
        ("TokenizeJob", {"tokenizer": ref("SFTJob")}, "spec.tokenizer.from.kind", "tokenizer"),
    ],
)
def test_a_from_naming_a_kind_that_cannot_publish_what_the_field_reads_is_refused(
        kind: str, patch: dict, field: str, reads: str) -> None:
    resource = next(r for r in EXAMPLES if r["kind"] == kind)
    model, errors = validate_spec(kind, {**resource["spec"], **patch})
    assert model is None
    assert [error.field for error in errors] == [field]
    upstream = (patch.get("sourcesFrom") or [patch[field.split(".")[1]]])[0]["from"]["kind"]
    assert f"{upstream} publishes no {reads}" in errors[0].message


@pytest.mark.parametrize("kind", ["SFTJob", "DPOJob", "QuantizeJob", "UpcycleJob", "ModelServer"])
def test_every_kind_that_publishes_a_checkpoint_is_a_valid_model_source(kind: str) -> None:
    from tanuki_operator.stages import STAGES

    resource = next(r for r in EXAMPLES if r["kind"] == kind)
    publishers = [k for k, stage in STAGES.items() if "checkpoint" in stage.outputs]
    assert {"PretrainJob", "UpcycleJob", "SFTJob", "DPOJob", "QuantizeJob", "ModelServer"} == set(publishers)
    for publisher in publishers:
        model, errors = validate_spec(kind, {**resource["spec"], "model": ref(publisher)})
        assert errors == [] and model is not None, (publisher, errors)


def test_a_synth_job_on_an_endpoint_gets_its_url_model_and_key_file() -> None:
    resource = next(r for r in EXAMPLES if r["kind"] == "SynthJob")
    spec = {key: value for key, value in resource["spec"].items() if key != "model"}
    spec["endpoint"] = {"from": {"kind": "ModelServer", "name": "gen"}, "apiKey": {"name": "gen-key", "key": "k"}}
    model, errors = validate_spec("SynthJob", spec)
    assert errors == []
    recipe = model.stage_recipe({"generator:url": "http://gen.ml.svc/v1", "generator:model": "gen-model"})
    assert recipe["engine"] == "endpoint"
    assert recipe["endpoint"] == {"base_url": "http://gen.ml.svc/v1", "model": "gen-model",
                                  "api_key_env": "GENERATOR_API_KEY"}
    assert set(model.secrets()) == {"GENERATOR_API_KEY"}
    from tanuki_pipelines.synth.config import SynthConfig

    SynthConfig.model_validate(recipe)  # what the pod's program reads


def test_a_dpo_job_gets_its_judge_from_a_model_server_and_its_key_as_a_file() -> None:
    resource = next(r for r in EXAMPLES if r["metadata"]["name"] == "debug-dpo")
    model, errors = validate_spec("DPOJob", resource["spec"])
    assert errors == []
    assert set(model.inputs()) == {"model", "prompts", "judge:url", "judge:model"}
    recipe = model.stage_recipe({"model": "/data/sft/checkpoint", "prompts": "/data/corpus/prompts.jsonl",
                                 "judge:url": "http://debug-judge.ml.svc/v1", "judge:model": "debug-judge"})
    assert recipe["pairs"]["judge"]["base_url"] == "http://debug-judge.ml.svc/v1"
    assert (recipe["pairs"]["judge"]["model"], recipe["pairs"]["judge"]["api_key_env"]) == ("debug-judge", "JUDGE_API_KEY")
    assert recipe["pairs"]["judge_decision"] == "calibrated"
    assert set(model.secrets()) == {"JUDGE_API_KEY"}
    from tanuki_pipelines.dpo.config import DPOConfig

    DPOConfig.model_validate(recipe)  # what the pod's program reads
    ready = {**resource["spec"], "judge": None, "recipe": {"generate": False}}
    model, errors = validate_spec("DPOJob", ready)  # ready pairs: no judge, no secret
    assert errors == [] and set(model.inputs()) == {"model", "prompts"} and model.secrets() == {}


def test_a_gate_eval_job_compares_two_targets_and_needs_a_judge_only_for_judged_gates() -> None:
    targets = [{"from": {"kind": "ModelServer", "name": "canary"}}, {"url": "http://stable/v1", "model": "m"}]
    spec = {"targets": targets, "storage": {"claimName": "data"},
            "recipe": {"mode": "gate", "gate": {"perplexity": {"max_drop": 0.1}}}}
    model, errors = validate_spec("EvalJob", spec)
    assert errors == [] and model is not None
    assert "judge:url" not in model.inputs() and model.secrets() == {}
    recipe = model.stage_recipe({"target:0:url": "http://canary.ml.svc/v1", "target:0:model": "canary",
                                 "target:1:url": "http://stable/v1"})
    assert [t["base_url"] for t in recipe["targets"]] == ["http://canary.ml.svc/v1", "http://stable/v1"]
    from tanuki_pipelines.eval.config import EvalConfig

    assert EvalConfig.model_validate(recipe).gate.perplexity.max_drop == 0.1  # what the pod's program reads
    _, errors = validate_spec("EvalJob", {**spec, "recipe": {"mode": "gate", "gate": {"arena": {}}}})
    assert any("judge" in str(error) for error in errors), errors
    _, errors = validate_spec("EvalJob", {**spec, "targets": targets[:1]})
    assert any("targets" in str(error) for error in errors), errors
    _, errors = validate_spec("EvalJob", {**spec, "recipe": {"mode": "gate"}})
    assert any("gate" in str(error) for error in errors), errors
    _, errors = validate_spec("EvalJob", {key: value for key, value in spec.items() if key != "recipe"})
    assert any("judge" in str(error) for error in errors), errors  # grading (the default mode) needs its judge


def test_a_quantize_job_reads_its_checkpoint_and_a_synth_jobs_dataset_in_its_own_image() -> None:
    from tanuki_operator.render import Owner, render
    from tanuki_operator.stages import STAGES
    from tanuki_pipelines.quantize.config import QuantizeConfig

    resource = next(r for r in EXAMPLES if r["metadata"]["name"] == "debug-dpo-w8a8")
    model, errors = validate_spec("QuantizeJob", resource["spec"])
    assert errors == []
    assert {role: item.output for role, item in model.inputs().items()} == {"model": "checkpoint", "calibration": "dataset"}
    recipe = model.stage_recipe({"model": "/data/dpojob/debug-dpo/checkpoint",
                                 "calibration": "/data/synthjob/debug-synth/dataset.jsonl"})
    config = QuantizeConfig.model_validate(recipe)  # what the pod's program reads
    assert (str(config.source), str(config.calibration.path)) == ("/data/dpojob/debug-dpo/checkpoint",
                                                                  "/data/synthjob/debug-synth/dataset.jsonl")
    assert (config.scheme, config.calibration.num_samples) == ("W8A8", 16)
    settings = Settings(quantize_image="registry.example/tanuki-quantize:1")
    owner = Owner(kind="QuantizeJob", name="debug-dpo-w8a8", namespace="ml", uid="u")
    inputs = {"model": "/data/dpojob/debug-dpo/checkpoint", "calibration": "/data/synthjob/debug-synth/dataset.jsonl"}
    job = next(m for m in render(STAGES["QuantizeJob"], owner, model, inputs, settings) if m["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/tanuki-quantize:1" and container["command"][:2] == ["tanuki", "quantize"]


def test_non_object_spec() -> None:
    assert validate_spec("PretrainJob", ["not", "a", "dict"])[1][0].field == "spec"
    assert validate_spec("Bogus", {})[1][0].field == "kind"


# ---- fuzz: 1,000 generated invalid specs -----------------------------------------------------

def paths(node: Any, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    found = [(prefix, node)]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def set_at(tree: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def dotted(path: tuple) -> str:
    text = "spec"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


@st.composite
def invalid_specs(draw: st.DrawFn) -> tuple[str, dict, str]:
    """An example spec with one mutation that no field accepts: an object where a scalar must
    be, or a key with an object value inside a mapping (extra field / non-scalar map value)."""
    resource = draw(st.sampled_from(EXAMPLES))
    spec = copy.deepcopy(resource["spec"])
    nodes = paths(spec)
    leaves = [(p, v) for p, v in nodes if p and not isinstance(v, (dict, list))]
    mappings = [(p, v) for p, v in nodes if isinstance(v, dict)]
    junk = {"bogus": [draw(st.integers())]}
    if leaves and draw(st.booleans()):
        path, _ = draw(st.sampled_from(leaves))
        set_at(spec, path, junk)
        return resource["kind"], spec, dotted(path)
    path, mapping = draw(st.sampled_from(mappings))
    key = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12).filter(
        lambda k: k not in mapping))
    mapping[key] = junk
    return resource["kind"], spec, dotted(path)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invalid_specs())
def test_fuzzed_invalid_specs_fail_naming_a_field(case: tuple[str, dict, str]) -> None:
    kind, spec, mutated = case
    model, errors = validate_spec(kind, spec)
    assert model is None and errors, f"accepted an invalid spec (mutated {mutated})"
    for error in errors:
        assert error.field.startswith("spec") and error.message
    # the error points at the mutated place or at one of its parents (a model-level check)
    assert any(mutated.startswith(error.field) or error.field.startswith(mutated) for error in errors), (
        mutated, errors)
    # and the reconciler turns it into a terminal ValidationFailed without raising or creating anything
    kube = FakeKube()
    body = {"apiVersion": "llm.tanuki.dev/v1alpha1", "kind": kind, "spec": spec,
            "metadata": {"name": "fuzzed", "namespace": "ml", "uid": "u", "generation": 1}}
    outcome = reconcile(kube, Settings(), kind, body)
    assert outcome.status["phase"] == "ValidationFailed" and outcome.status["message"]
    assert not [call for call in kube.calls if call[0] == "create"]


def test_a_pretrain_job_on_a_token_store_takes_its_sources_and_tokenizer_from_it() -> None:
    late = next(r for r in EXAMPLES if r["metadata"]["name"] == "debug-late")["spec"]
    model, errors = validate_spec("PretrainJob", late)
    assert not errors and model is not None
    no_store = {key: value for key, value in late.items() if key != "tokens"}
    _, errors = validate_spec("PretrainJob", no_store)  # neither a tokenizer nor source paths then
    assert any("tokenizer" in error.message and "spec.tokens" in error.message for error in errors), errors
    bound = {**late, "sourcesFrom": [{"source": "synth", "from": {"kind": "SynthJob", "name": "s"}}]}
    _, errors = validate_spec("PretrainJob", bound)
    assert any("sourcesFrom: not used with a token store" in error.message for error in errors), errors


def test_a_tokenize_job_source_needs_a_path_or_a_binding() -> None:
    tokens = next(r for r in EXAMPLES if r["metadata"]["name"] == "debug-tokens")["spec"]
    _, errors = validate_spec("TokenizeJob", {**tokens, "sourcesFrom": []})
    assert any("['synth'] have neither a path nor a sourcesFrom binding" in error.message for error in errors), errors


@pytest.mark.parametrize(("kind", "patch", "named"), [
    ("QuantizeJob", {"recipe": {"scheme": "FP8", "calibration": {"path": "c.jsonl"}}}, "recipe.scheme: FP8 needs a GPU"),
    ("QuantizeJob", {"recipe": {"device": "cuda", "calibration": {"path": "c.jsonl"}}}, "recipe.device: cuda"),
    ("ModelServer", {"engine": {"tensor_parallel_size": 2}, "resources": {"gpus": 1}},
     "engine.tensor_parallel_size: 2 × pipeline_parallel_size 1 needs 2 GPUs per replica but resources.gpus is 1"),
])
def test_what_the_requested_hardware_cannot_run_is_refused_at_the_first_look(kind: str, patch: dict,
                                                                             named: str) -> None:
    resource = next(r for r in EXAMPLES if r["kind"] == kind)
    spec = {**resource["spec"], **patch, "resources": {**resource["spec"].get("resources", {}), "gpus": 0,
                                                      **patch.get("resources", {})}}
    model, errors = validate_spec(kind, spec)
    assert model is None and any(named in error.message for error in errors), errors
    spec["resources"]["gpus"] = 2
    assert validate_spec(kind, spec)[1] == []


def test_a_source_bound_to_a_curate_jobs_subset_reads_that_sources_directory() -> None:
    from tanuki_operator.lineage import resolve

    base = next(r for r in example_resources() if r["metadata"]["name"] == "debug-base")["spec"]
    model, errors = validate_spec("PretrainJob", base)
    assert model is not None, errors
    resolution = resolve(model, model.storage, lambda kind, name: {"phase": "Succeeded",
                                                                   "outputs": {"dataset": "/data/curatejob/c/data"}})
    recipe = model.stage_recipe(resolution.inputs)
    for sources in (recipe["data"]["sources"], recipe["tokenizer"]["train"]["sources"]):
        assert {s["name"]: s["path"] for s in sources} == {"ja": "/data/curatejob/c/data/ja",
                                                           "en": "/data/curatejob/c/data/en"}
    _, errors = validate_spec("PretrainJob", {**base, "sourcesFrom": [
        {"source": "ja", "from": {"kind": "CurateJob", "name": "c"}, "subset": "../etc"}]})
    assert any(error.field.startswith("spec.sourcesFrom[0].subset") for error in errors), errors


def test_a_curate_job_reading_a_kind_without_a_dataset_is_refused() -> None:
    curate = next(r for r in example_resources() if r["kind"] == "CurateJob")["spec"]
    spec = {**curate, "sourcesFrom": [{"source": "ja", "from": {"kind": "UpcycleJob", "name": "m"}}]}
    _, errors = validate_spec("CurateJob", spec)
    assert any("UpcycleJob publishes no dataset" in error.message for error in errors), errors
    unbound = {**curate, "recipe": {**curate["recipe"], "sources": [{"name": "ja"}]}}
    _, errors = validate_spec("CurateJob", unbound)
    assert any("['ja'] have neither a path nor a sourcesFrom binding" in error.message for error in errors), errors
