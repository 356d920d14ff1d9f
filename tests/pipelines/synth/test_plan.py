"""Planning: documents with their broken lines counted, seeded spans and styles, dialogues'
personas, stable shards; and the round logic of one shard over a recording generator."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tanuki_common.errors import BadInputError
from tanuki_pipelines.config import DataSource
from tanuki_pipelines.synth.config import REWRITE_STYLES, SynthConfig
from tanuki_pipelines.synth.generation import Generation, Request, run_shard
from tanuki_pipelines.synth.plan import Problems, personas, read_documents, shards, span, work_items
from tanuki_pipelines.synth.prompts import STYLES, shipped


def test_every_style_has_a_prompt_and_the_shipped_lists_are_large() -> None:
    assert set(STYLES) == set(REWRITE_STYLES) and len(STYLES) == 25
    assert len(shipped("occupations")) >= 200 and len(shipped("personalities")) >= 100
    assert len(set(shipped("occupations"))) == len(shipped("occupations"))
    assert {"演繹的推論", "帰納的推論", "定量的推論", "計画立案"} <= set(shipped("tasks"))


def test_unknown_styles_and_a_missing_endpoint_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown styles.*haiku"):
        SynthConfig(styles=["qa", "haiku"])
    with pytest.raises(ValueError, match="endpoint: required"):
        SynthConfig(engine="endpoint")


def test_process_mode_runs_exactly_one_engine() -> None:
    assert SynthConfig.model_validate({"ray": {"mode": "process"}}).ray.workers == 1
    with pytest.raises(ValueError, match="workers: mode process runs one engine"):
        SynthConfig.model_validate({"ray": {"mode": "process", "workers": 2}})


@pytest.mark.parametrize(("ray", "address", "in_process"), [
    ({}, None, True),  # auto, one worker: Ray would only cost
    ({"workers": 2}, None, False),
    ({}, "auto", False),  # a cluster's address is Ray
    ({"mode": "process"}, None, True),
    ({"mode": "local"}, None, False),
    ({"mode": "cluster", "workers": 8}, "auto", False),
])
def test_where_the_engine_runs(ray: dict, address: str | None, in_process: bool) -> None:
    from tanuki_pipelines.synth.config import RayConfig
    from tanuki_pipelines.synth.engine_job import runs_in_process

    assert runs_in_process(RayConfig.model_validate(ray), address) is in_process


def test_documents_skip_broken_lines_with_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "一つ目", "id": "x1"}\n\n{oops\n[1]\n{"body": "no text"}\n{"text": "二つ目"}\n')
    problems = Problems()
    documents = read_documents([DataSource(name="ja", path=path)], problems)
    assert [(d.id, d.text) for d in documents] == [("x1", "一つ目"), ("ja:6", "二つ目")]
    assert problems.as_dict() == {"not JSON": {"count": 1, "first": [f"{path}:3"]},
                                  "not a JSON object": {"count": 1, "first": [f"{path}:4"]},
                                  "no text in 'text'": {"count": 1, "first": [f"{path}:5"]}}


def test_a_document_list_that_yields_nothing_exits_2_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n{broken\n")
    with pytest.raises(BadInputError, match="empty.jsonl yielded no documents"):
        read_documents([DataSource(name="ja", path=path)], Problems())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"documents": [{"name": "ja", "path": str(path)}], "engine": "endpoint",
                                      "endpoint": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}}))
    done = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "synth", "--config", str(recipe),
                           "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    # the program's preflight reads the first records before anything is planned
    assert done.returncode == 2 and "documents[0] (ja).path: " in done.stderr
    assert "empty.jsonl:2: not JSON" in done.stderr


def test_an_unreachable_endpoint_fails_fast_with_its_url(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "東京は日本の首都です。"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"documents": [{"name": "ja", "path": str(path)}], "engine": "endpoint",
                                      "endpoint": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}}))
    done = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "synth", "--config", str(recipe),
                           "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "http://127.0.0.1:9/v1 did not answer" in done.stderr, done.stderr[-2000:]


def test_spans_are_whole_short_texts_or_seeded_windows_of_long_ones() -> None:
    text = "".join(chr(0x3042 + i % 80) for i in range(5000))
    assert span("短い", random.Random(0), 400, 2000) == "短い"
    window = span(text, random.Random(1), 400, 2000)
    assert 400 <= len(window) <= 2000 and window in text
    assert window == span(text, random.Random(1), 400, 2000)


def test_work_items_and_shards_are_the_same_on_every_run(tmp_path: Path) -> None:
    from tanuki_pipelines.synth.plan import Document

    config = SynthConfig(rewrites_per_document=3, dialogues={"count": 5, "turns": 3}, shard_size=4, seed=7)
    documents = [Document(f"d{i}", f"文書{i}" * 10) for i in range(4)]
    items = work_items(config, documents, personas(config, Problems()))
    again = work_items(config, documents, personas(config, Problems()))
    assert items == again and len(items) == 4 * 3 + 5
    for document in documents:
        styles = [item["style"] for item in items if item.get("source_id") == document.id]
        assert len(set(styles)) == 3 and set(styles) <= set(REWRITE_STYLES)
    talks = [item for item in items if item["kind"] == "dialogue"]
    assert all(len(item["followups"]) == 2 and item["persona"] in shipped("occupations") for item in talks)
    assert [len(shard) for shard in shards(items, 4)] == [4, 4, 4, 4, 1]
    other_seed = work_items(config.model_copy(update={"seed": 8}), documents, personas(config, Problems()))
    assert [i.get("style") for i in other_seed] != [i.get("style") for i in items]


def test_a_persona_hub_file_replaces_the_occupations(tmp_path: Path) -> None:
    path = tmp_path / "personas.jsonl"
    path.write_text(json.dumps({"persona": "宇宙好きの小学生"}, ensure_ascii=False) + "\n{bad\n")
    config = SynthConfig(dialogues={"count": 2, "persona_file": str(path)})
    problems = Problems()
    assert personas(config, problems) == ["宇宙好きの小学生"] and problems.counts["not JSON"] == 1


class Recorder:
    """Answers every request with a numbered text and remembers what it was asked."""

    def __init__(self) -> None:
        self.rounds: list[list[Request]] = []

    def __call__(self, requests: list[Request]) -> list[Generation]:
        self.rounds.append(requests)
        return [Generation(f"出力{len(self.rounds)}-{i}", 3) for i in range(len(requests))]


def test_one_shard_runs_in_rounds_with_the_recipe_sampling() -> None:
    from tanuki_pipelines.synth.plan import Document

    config = SynthConfig(rewrites_per_document=2, dialogues={"count": 2, "turns": 3}, rewrite={"translate": True})
    items = work_items(config, [Document("d0", "東京は日本の首都です。")], ["教師"])
    recorder = Recorder()
    records = run_shard(items, config, recorder)
    # rewrites + questions, translations, then one round per answer turn
    assert [len(batch) for batch in recorder.rounds] == [4, 2, 2, 2, 2]
    rewrite_request, question_request = recorder.rounds[0][0], recorder.rounds[0][2]
    assert (rewrite_request.temperature, rewrite_request.repetition_penalty, rewrite_request.max_tokens) == (0.1, 1.2, 2048)
    assert (question_request.temperature, question_request.top_k) == (0.7, 50)
    assert all(request.temperature == 0.01 for batch in recorder.rounds[2:] for request in batch)
    assert "見出しは付けず" in rewrite_request.messages[0]["content"]
    assert "東京は日本の首都です。" in rewrite_request.messages[0]["content"]
    rewrite, dialogue = records[0], records[2]
    assert rewrite["text"] == "出力1-0\n\n出力2-0" and rewrite["generated_tokens"] == 6
    assert rewrite["sampling"]["temperature"] == 0.1 and rewrite["source_id"] == "d0"
    roles = [message["role"] for message in dialogue["messages"]]
    assert roles == ["user", "assistant"] * 3
    assert dialogue["messages"][2]["content"] == items[2]["followups"][0]
    assert dialogue["persona"] == "教師" and dialogue["generated_tokens"] == 4 * 3
    final_round = recorder.rounds[-1][0].messages
    assert final_round[0]["role"] == "system" and len(final_round) == 1 + 5  # the answerer sees the whole dialogue


def test_ray_waits_for_room_for_one_engine_then_gives_up_naming_what_is_missing() -> None:
    from tanuki_pipelines.synth.ray_engine import engine_resources, wait_for_room

    config = SynthConfig(generator={"tensor_parallel_size": 2})
    assert engine_resources(config.generator, config.ray, on_gpu=True) == {"CPU": 1, "GPU": 2.0}
    assert engine_resources(config.generator, config.ray, on_gpu=False) == {"CPU": 1}
    seen = iter([{"CPU": 4.0}, {"CPU": 4.0, "GPU": 2.0}])  # a GPU worker joins on the second look
    wait_for_room({"CPU": 1, "GPU": 2.0}, 60, lambda: next(seen), sleep=lambda _: None)
    with pytest.raises(BadInputError, match=r"no node can run a vLLM engine after 0 s: one needs .*'GPU': 2.0"):
        wait_for_room({"CPU": 1, "GPU": 2.0}, 0, lambda: {"CPU": 4.0}, sleep=lambda _: None)


@pytest.mark.parametrize(("node_cpus", "engines", "cpus_per_engine", "asked", "threads"), [
    (2, 1, 1.0, None, 2),     # one engine on a 2-core machine gets both cores, whatever Ray reserved
    (2, 1, 0.5, None, 2),
    (16, 4, 1.0, None, 4),    # four engines share a node evenly
    (16, 4, 8.0, None, 8),    # a node holds only two engines of 8 CPUs: each gets half
    (3, 2, 1.0, None, 1),
    (1, 3, 0.25, None, 1),    # never below one thread
    (16, 4, 1.0, 3, 3),       # the recipe decides when it says
])
def test_a_cpu_engine_takes_its_share_of_the_node_not_what_ray_reserved(node_cpus: float, engines: int,
                                                                        cpus_per_engine: float, asked: int | None,
                                                                        threads: int) -> None:
    from tanuki_pipelines.synth.ray_engine import cpu_engine_threads

    assert cpu_engine_threads(node_cpus, engines, cpus_per_engine, asked) == threads


def test_chat_prompts_are_counted_in_tokens_of_the_template(debug_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    from tanuki_pipelines.synth.engines import chat_prompt_tokens

    tokenizer = AutoTokenizer.from_pretrained(debug_tokenizer_dir)
    messages = [{"role": "user", "content": "東京は日本の首都です。" * 20}]
    templated = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert chat_prompt_tokens(tokenizer, messages) == len(tokenizer(templated, add_special_tokens=False)["input_ids"])
    assert chat_prompt_tokens(tokenizer, messages) > 20 * 3  # ids, not the two keys of a BatchEncoding
