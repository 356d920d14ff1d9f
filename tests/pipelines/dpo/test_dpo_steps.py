"""DPO's inputs and steps without a server: prompts and ready pairs checked line by line, the
answer runner's retries on identical samples, prompt cutting, TRL arguments, and an unreachable
judge failing fast with its URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tanuki_common.errors import BadInputError
from tanuki_pipelines.dpo.config import DPOConfig
from tanuki_pipelines.dpo.generate import answer_shard, judge_answers, prompt_messages, read_prompts, read_ready_pairs
from tanuki_pipelines.dpo.train import cut_prompt, trl_arguments
from tanuki_pipelines.synth.engines import chat_prompt_tokens
from tanuki_pipelines.synth.generation import Generation, Request


@pytest.mark.parametrize(("record", "problem"), [
    ({"prompt": "日本の首都は?"}, None),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}, None),
    ({"prompt": "  "}, "empty prompt"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     "messages do not end in a user turn"),
    ({"messages": [{"role": "robot", "content": "q"}]}, "unknown role 'robot'"),
    ({"text": "q"}, "no prompt and no messages"),
])
def test_prompt_records(record: dict, problem: str | None) -> None:
    assert prompt_messages(record)[1] == problem


def test_prompts_and_ready_pairs_count_bad_lines(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "一"}\n{"prompt": ""}\nnope\n{"id": "x", "prompt": "二"}\n')
    items, problems = read_prompts(prompts)
    assert [item["id"] for item in items] == ["prompt:1", "x"]
    assert problems.as_dict() == {"empty prompt": {"count": 1, "first": ["prompts.jsonl:2"]},
                                  "not JSON": {"count": 1, "first": ["prompts.jsonl:3"]}}
    ready = tmp_path / "pairs.jsonl"
    ready.write_text('{"prompt": "q", "chosen": "good", "rejected": "bad"}\n{"prompt": "q", "chosen": "good"}\n')
    pairs, problems = read_ready_pairs(ready)
    assert pairs == [{"id": "pair:1", "prompt": [{"role": "user", "content": "q"}], "chosen": "good",
                      "rejected": "bad"}]
    assert problems.counts["no chosen/rejected text"] == 1
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(BadInputError, match="empty.jsonl has no usable prompt"):
        read_prompts(empty)


class Policy:
    """Answers prompt ``same`` identically until the temperature reaches ``distinct_at``."""

    def __init__(self, distinct_at: float) -> None:
        self.distinct_at, self.temperatures = distinct_at, []

    def __call__(self, requests: list[Request]) -> list[Generation]:
        self.temperatures.append(requests[0].temperature)
        out = []
        for index, request in enumerate(requests):
            same = request.messages[-1]["content"] == "same" and request.temperature < self.distinct_at - 1e-9
            out.append(Generation("同じ答え" if same else f"答え{index}", 2))
        return out


def test_identical_answers_are_retried_hotter_and_given_up_at_the_cap() -> None:
    config = DPOConfig(pairs={"temperature": 1.0, "temperature_step": 0.1, "max_temperature": 1.3})
    items = [{"id": "a", "messages": [{"role": "user", "content": "same"}]},
             {"id": "b", "messages": [{"role": "user", "content": "other"}]}]
    policy = Policy(distinct_at=1.2)
    records = answer_shard(items, config.model_dump_json(), policy)
    assert policy.temperatures == [1.0, 1.1, 1.2]  # only the identical prompt is asked again
    assert (records[0]["temperature"], records[0]["tries"], records[0].get("identical")) == (1.2, 3, None)
    assert records[1]["tries"] == 1 and records[1]["answers"] == ["答え2", "答え3"]
    stubborn = answer_shard(items[:1], config.model_dump_json(), Policy(distinct_at=9.0))
    assert stubborn[0]["identical"] is True and stubborn[0]["tries"] == 4


def test_prompts_are_cut_from_the_front_of_the_last_turn(debug_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(debug_tokenizer_dir)
    long = [{"role": "user", "content": "前置き" * 200 + "最後の質問です。"}]
    cut = cut_prompt(long, tokenizer, 40)
    assert cut is not None and cut[-1]["content"].endswith("最後の質問です。")
    assert chat_prompt_tokens(tokenizer, cut) <= 40
    assert cut_prompt([{"role": "user", "content": "短い"}], tokenizer, 40) == [{"role": "user", "content": "短い"}]
    assert cut_prompt([{"role": "system", "content": "長い" * 100}, {"role": "user", "content": "q"}], tokenizer, 10) is None


def test_trl_arguments_follow_the_recipe() -> None:
    config = DPOConfig(beta=0.01, loss_type="ipo", train={"lr": 5e-7, "zero_stage": 3})
    arguments = trl_arguments(config, Path("/out"), on_gpu=False)
    assert (arguments["beta"], arguments["loss_type"], arguments["learning_rate"]) == (0.01, ["ipo"], 5e-7)
    assert arguments["deepspeed"]["zero_optimization"]["stage"] == 3 and arguments["bf16"] is False


def test_an_unreachable_judge_fails_fast_naming_its_url(tmp_path: Path) -> None:
    config = DPOConfig(pairs={"judge": {"base_url": "http://127.0.0.1:9/v1", "model": "j", "api_key_env": "NO_KEY"}})
    answers = [{"id": "a", "messages": [{"role": "user", "content": "q"}], "answers": ["x", "y"]}]
    with pytest.raises(BadInputError, match=r"http://127.0.0.1:9/v1 did not answer"):
        judge_answers(answers, config, tmp_path)
    assert json.loads(json.dumps(config.pairs.judge.model_dump()))["api_key_env"] == "NO_KEY"
