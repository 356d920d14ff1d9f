"""Pure parts of ``tanuki quantize``: refusals before calibration, recipes, text split, gate decision."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tanuki_common.errors import BadInputError
from tanuki_pipelines.cli import main as tanuki
from tanuki_pipelines.config import load_recipe
from tanuki_pipelines.quantize.config import QuantizeConfig
from tanuki_pipelines.quantize.gate import Quality, Scores, compare, gate_failure
from tanuki_pipelines.quantize.plan import (
    ATTENTION_TARGET,
    EXPERTS_PATTERN,
    ROUTER_PATTERN,
    build_recipe,
    check_scheme,
    ignore_list,
)
from tanuki_pipelines.quantize.texts import dataset_files, read_texts, split_texts
from tanuki_pipelines.recipes import recipes_dir

DENSE = {"hidden_size": 128, "intermediate_size": 384, "num_attention_heads": 4, "num_hidden_layers": 2}
MOE = {**DENSE, "num_local_experts": 4}
CALIBRATION = {"calibration": {"path": "/data/calibration.jsonl"}}


def config(**fields: object) -> QuantizeConfig:
    return QuantizeConfig.model_validate({**CALIBRATION, **fields})


def refusal(model: dict, on_gpu: bool = False, **fields: object) -> str:
    with pytest.raises(BadInputError) as raised:
        check_scheme(config(**fields), model, on_gpu)
    return str(raised.value)


def test_w4a16_in_float32_on_cpu_names_dtype_and_bfloat16() -> None:
    message = refusal(DENSE, scheme="W4A16", dtype="float32")
    assert message.startswith("dtype:") and "bfloat16" in message
    check_scheme(config(scheme="W4A16", dtype="float32"), DENSE, on_gpu=True)


def test_w8a8_in_float32_on_cpu_is_refused() -> None:
    assert "dtype: W8A8" in refusal(DENSE, scheme="W8A8", dtype="float32")


def test_widths_not_divisible_by_the_group_name_the_width_and_an_alternative() -> None:
    message = refusal({**DENSE, "intermediate_size": 344}, scheme="W4A16")
    assert "scheme: W4A16" in message and "intermediate_size is 344" in message and "W8A8" in message
    check_scheme(config(scheme="W8A8"), {**DENSE, "intermediate_size": 344}, on_gpu=True)


@pytest.mark.parametrize(("fields", "failing"), [
    ({"intermediate_size": 512}, None),
    ({"intermediate_size": 528}, None),  # 2 × 528 = 1056: a multiple of 32
    ({"intermediate_size": 520}, "gate_up_proj is 1040 × 128"),  # the reported failure: 1040 = 32 × 32 + 16
    ({"intermediate_size": 344}, "gate_up_proj is 688 × 128"),
    ({"intermediate_size": 516}, None),  # N 1032 is not a multiple of 16: oneDNN takes it
    ({"hidden_size": 144, "intermediate_size": 520}, None),  # every K is off 32 or N off 16: oneDNN
    ({"hidden_size": 144, "intermediate_size": 512}, "down_proj is 144 × 512"),
    ({"hidden_size": 112, "num_attention_heads": 2, "head_dim": 64, "intermediate_size": 512},
     "o_proj is 112 × 128"),
    ({"num_attention_heads": 3, "num_key_value_heads": 1, "head_dim": 16}, "qkv_proj is 80 × 128"),
])
def test_w8a8_on_cpu_refuses_the_widths_vllms_int8_packing_cannot_take(fields: dict, failing: str | None) -> None:
    model = {**DENSE, "num_key_value_heads": 2, **fields}
    if failing is None:
        check_scheme(config(scheme="W8A8"), model, on_gpu=False)
    else:
        message = refusal(model, scheme="W8A8")
        assert message.startswith("scheme: W8A8 on the CPU backend") and failing in message
        assert "intermediate_size 512" in message
        check_scheme(config(scheme="W8A8"), model, on_gpu=True)


def test_w4a16_on_an_x86_cpu_without_avx512_is_refused() -> None:
    with pytest.raises(BadInputError, match="scheme: W4A16 on this CPU: .* no 4-bit weight GEMM"):
        check_scheme(config(scheme="W4A16"), DENSE, on_gpu=False, cpu_flags=frozenset({"avx2", "fma"}))
    check_scheme(config(scheme="W4A16"), DENSE, on_gpu=False, cpu_flags=frozenset({"avx2", "avx512f"}))
    check_scheme(config(scheme="W4A16"), DENSE, on_gpu=True, cpu_flags=frozenset({"avx2"}))
    check_scheme(config(scheme="W4A16"), DENSE, on_gpu=False)  # a node not known here: the pod decides


def test_w8a8_of_an_moe_with_unquantized_experts_checks_only_attention() -> None:
    check_scheme(config(scheme="W8A8"), {**MOE, "num_key_value_heads": 2, "intermediate_size": 520}, on_gpu=False)


def test_quantized_experts_on_cpu_are_refused_but_not_on_a_gpu() -> None:
    assert "quantize_experts:" in refusal(MOE, scheme="W8A8", quantize_experts=True)
    check_scheme(config(scheme="W8A8", quantize_experts=True), MOE, on_gpu=True)
    assert "no experts" in refusal(DENSE, on_gpu=True, quantize_experts=True)


def test_fp8_needs_a_gpu() -> None:
    assert refusal(DENSE, scheme="FP8").startswith("scheme: FP8 needs a GPU")
    check_scheme(config(scheme="FP8"), DENSE, on_gpu=True)


def test_unknown_gguf_type_lists_the_known_ones() -> None:
    message = refusal(DENSE, scheme="GGUF", gguf_type="q3_xyz")
    assert message.startswith("gguf_type:") and "q4_k_m" in message and "q8_0" in message
    assert "gguf_type: only used with scheme GGUF" in refusal(DENSE, scheme="W8A8", gguf_type="f16")


def test_missing_calibration_path_is_refused() -> None:
    with pytest.raises(BadInputError, match="calibration.path"):
        check_scheme(QuantizeConfig(scheme="W8A8"), DENSE, on_gpu=False)


def test_cli_refuses_before_loading_anything(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(DENSE))  # no weights: calibration would fail
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"source": str(model), "scheme": "W4A16", "dtype": "float32", "device": "cpu",
                                  **CALIBRATION}))
    assert tanuki(["quantize", "--config", str(recipe), "--output-dir", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out" / "checkpoint").exists()
    recipe.write_text(json.dumps({"scheme": "W8A8", **CALIBRATION}))
    assert tanuki(["quantize", "--config", str(recipe), "--output-dir", str(tmp_path / "out")]) == 2  # no source


def test_recipes() -> None:
    w8a8 = build_recipe(config(scheme="W8A8"), moe=False)
    assert [name for name, _ in w8a8] == ["SmoothQuantModifier", "GPTQModifier"]
    assert w8a8[1][1] == {"targets": "Linear", "scheme": "W8A8", "ignore": ["lm_head"]}
    assert build_recipe(config(scheme="W4A16"), moe=False) == [
        ("GPTQModifier", {"targets": "Linear", "scheme": "W4A16", "ignore": ["lm_head"]})]
    assert build_recipe(config(scheme="FP8"), moe=False)[0][1]["scheme"] == "FP8_DYNAMIC"
    moe = build_recipe(config(scheme="W4A16"), moe=True)[0][1]
    assert moe["targets"] == [ATTENTION_TARGET] and ROUTER_PATTERN in moe["ignore"] and EXPERTS_PATTERN in moe["ignore"]
    experts = build_recipe(config(scheme="W4A16", quantize_experts=True), moe=True)[0][1]
    assert experts["targets"] == "Linear" and ROUTER_PATTERN in experts["ignore"]
    assert EXPERTS_PATTERN not in experts["ignore"]
    assert ignore_list(config(ignore=["lm_head", "lm_head"]), moe=False) == ["lm_head"]


def test_texts_from_text_messages_and_a_job_directory(tmp_path: Path) -> None:
    data = tmp_path / "job" / "dataset.jsonl"
    data.parent.mkdir()
    data.write_text("\n".join(json.dumps(r) for r in [
        {"text": "一つ目"}, {"messages": [{"role": "user", "content": "こんにちは"}]}, {"other": 1}, {"text": "三つ目"}]))
    (tmp_path / "job" / "outputs.json").write_text(json.dumps({"dataset": str(data)}))
    assert dataset_files(tmp_path / "job") == [data]

    def render(messages: list[dict[str, str]]) -> str:
        return "|".join(m["content"] for m in messages)

    assert read_texts(tmp_path / "job", render) == ["一つ目", "こんにちは", "三つ目"]
    with pytest.raises(BadInputError, match="calibration.path"):
        read_texts(tmp_path / "missing.jsonl", render)


def test_split_is_seeded_and_disjoint() -> None:
    texts = [f"t{i}" for i in range(20)]
    calibration, held = split_texts(texts, num_calibration=512, num_held_out=4, seed=0)
    assert len(held) == 4 and len(calibration) == 16 and not set(held) & set(calibration)
    assert split_texts(texts, 512, 4, seed=0) == (calibration, held)
    assert split_texts(texts, 512, 4, seed=1) != (calibration, held)
    assert len(split_texts(texts, 3, 100, seed=0)[1]) == 10  # at most half held out


def test_quality_figures_and_gate_decision() -> None:
    source = [Scores(argmax=[1, 2, 3, 4], logprobs=[-1.0, -2.0, -1.0, -2.0])]
    quantized = [Scores(argmax=[1, 2, 3, 9], logprobs=[-1.1, -2.0, -1.0, -2.5])]
    quality = compare(source, quantized)
    assert quality.agreement == 0.75 and quality.positions == 4
    assert quality.max_abs_dlogprob == pytest.approx(0.5) and quality.mean_abs_dlogprob == pytest.approx(0.15)
    assert quality.source_perplexity == pytest.approx(4.4817, rel=1e-4)
    assert gate_failure(quality, 0.75) is None
    message = gate_failure(quality, 0.95)
    assert message and message.startswith("gate.threshold:") and "0.7500 < 0.95" in message and "0.5000" in message
    with pytest.raises(ValueError):
        compare(source, [Scores(argmax=[1], logprobs=[-1.0])])
    assert isinstance(quality, Quality)


@pytest.mark.parametrize("name", ["debug", "tanuki-8b", "tanuki-8x8b"])
def test_shipped_quantize_recipes_load(name: str) -> None:
    paths = sorted((recipes_dir() / name).glob("quantize*.yaml"))
    assert paths
    for path in paths:
        load_recipe(QuantizeConfig, path)


def test_converter_is_found_where_configured_or_the_refusal_says_where_to_put_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tanuki_pipelines.quantize.gguf import LLAMA_CPP_ENV, converter_path

    monkeypatch.setenv(LLAMA_CPP_ENV, str(tmp_path / "elsewhere"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    with pytest.raises(BadInputError, match="llama_cpp_dir: no convert_hf_to_gguf.py"):
        converter_path(tmp_path)
    (tmp_path / "convert_hf_to_gguf.py").write_text("")
    assert converter_path(tmp_path) == tmp_path / "convert_hf_to_gguf.py"
