"""``tanuki demo``: the embedded default — the whole chain at toy scale.

Runs examples/debug-chain.yaml through the local runner (``tanuki local apply``) with the
project's own bilingual corpus: tokenizer + dense pretraining (DeepSpeed, CPU) on human text,
synthetic data from that model (vLLM in Ray Data, filtered and deduplicated), continued
pretraining with the synthetic share ramping up, upcycling to a Mixture of Experts and its
continued pretraining, SFT on the synthetic dialogues (TRL), DPO on pairs the SFT model answers
and then judges (served as a ModelServer by the same apply), the chat server (the SFT model while
DPO trains, then the DPO model rolled out over it as a canary), and an arena of SFT vs DPO. The one
apply keeps its servers up: the demo prints what each stage made, writes the report, asks the DPO
model one chat question through vllm-router and prints how to call it. Interactive runs keep
serving until Ctrl-C; others stop there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

from tanuki_operator.api.phase import Phase


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--output-dir", default="tanuki-demo", help="where the demo writes (default tanuki-demo)")
    parser.add_argument("--chain", default=None, help="custom resources to run (default examples/debug-chain.yaml)")
    parser.add_argument("--no-serve", action="store_true", help="stop after training (skip serving)")
    parser.add_argument("--hold", action=argparse.BooleanOptionalAction, default=None,
                        help="keep serving until Ctrl-C (default: when stdin is a terminal)")
    return parser


SERVING_LINE = "[tanuki local] serving;"
"""What the local runner prints once every stage ran and its servers are up."""


def main(args: argparse.Namespace) -> int:
    import signal
    import subprocess
    import threading

    from tanuki_pipelines.recipes import examples_dir

    workdir = Path(args.output_dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    shipped = Path(args.chain) if args.chain else examples_dir() / "debug-chain.yaml"
    chain = shipped  # a router port that is taken: its Service listens elsewhere, the status says where
    corpus = workdir / "tanuki-data" / "corpus"  # the chain's PVC `tanuki-data`, as a directory
    cli = [sys.executable, "-m", "tanuki_pipelines.cli"]
    subprocess.run([*cli, "corpus", "--out", str(corpus)], check=True, stdout=subprocess.DEVNULL)
    api_key = _api_key(workdir)  # the chain's servers require it
    command = [*cli, "local", "apply", "-f", str(chain), "--workdir", str(workdir),
               *(["--serve-for", "0"] if args.no_serve else [])]
    print(f"[tanuki demo] {' '.join(command[2:])}", flush=True)
    # one apply runs every stage, then keeps its ModelServers up (until we stop it)
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        serving = _echo_until(runner, SERVING_LINE)
        data = workdir / "tanuki-data"
        if stage_outputs(data, "pretrainjob", "debug-base") is not None:
            print()
            for line in summary_lines(data):
                print(line)
            report = subprocess.run([*cli, "report", "--workdir", str(workdir)], capture_output=True, text=True)
            if report.returncode == 0:
                print(f"report:            {report.stdout.strip()}  (lineage, statuses, curves, pairs, ratings)")
        incomplete = _incomplete_stages(chain, workdir)
        if incomplete:
            print(f"[tanuki demo] did not succeed: {', '.join(incomplete)}", file=sys.stderr)
        if not serving:
            return runner.wait() or (1 if incomplete else 0)
        threading.Thread(target=_echo_until, args=(runner, None), daemon=True).start()  # keep its pipe drained
        hold = sys.stdin.isatty() if args.hold is None else args.hold
        return _try_endpoint(workdir, api_key, hold, runner) or (1 if incomplete else 0)
    except KeyboardInterrupt:
        return 0
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGTERM)
            runner.wait()


def _echo_until(runner: subprocess.Popen[str], marker: str | None) -> bool:
    """Pass the runner's output through until a line starts with ``marker`` (True) or it ends (False)."""
    assert runner.stdout is not None, "the runner is started with stdout=PIPE"
    for line in runner.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if marker is not None and line.startswith(marker):
            return True
    return False


def _incomplete_stages(chain: Path, workdir: Path) -> list[str]:
    """The chain's batch stages whose stored phase is not Succeeded."""
    import yaml

    from tanuki_operator.local import is_server
    from tanuki_operator.local import statuses as stored_statuses

    statuses = stored_statuses(workdir)
    keys = [f"{d['kind']}/{d['metadata']['name']}" for d in yaml.safe_load_all(chain.read_text())
            if d and not is_server(d.get("kind"))]
    return [key for key in keys if (statuses.get(key) or {}).get("phase") != Phase.SUCCEEDED]


def stage_outputs(data: Path, kind: str, name: str) -> dict[str, Any] | None:
    """``outputs.json`` of a finished stage under the demo's data directory, or None."""
    path = data / kind / name / "outputs.json"
    return json.loads(path.read_text()) if path.is_file() else None


def records(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def loss_change(steps: list[dict[str, Any]], window: int = 5) -> str:
    """Mean loss of the first and of the last ``window`` steps (single steps are noisy at this size)."""
    first, last = steps[:window], steps[-window:]
    return (f"{sum(s['loss'] for s in first) / len(first):.3f} → {sum(s['loss'] for s in last) / len(last):.3f} "
            f"(mean of the first and last {min(window, len(steps))} steps)")


def summary_lines(data: Path) -> list[str]:
    """One paragraph per stage of the chain that finished: where its output is and what it did."""
    outputs = partial(stage_outputs, data)
    lines = []
    if curated := outputs("curatejob", "debug-curate"):
        stats = json.loads(Path(curated["stats"]).read_text())
        removed = ", ".join(f"{row['step']} {row['removed']}" for row in stats["steps"] if row["removed"]) or "none"
        lines.append(f"curated corpus:    {curated['dataset']}  (kept {stats['documents_out']} of {stats['documents_in']} "
                     f"documents, {stats['documents_out'] / max(stats['documents_in'], 1):.0%}; removed: {removed}; "
                     f"funnel {curated.get('funnel', '-')})")
    if dense := outputs("pretrainjob", "debug-base"):
        steps = records(dense["metrics"])
        lines += [f"dense checkpoint:  {dense['checkpoint']}  (HF Llama, human text only)",
                  f"  loss {loss_change(steps)} over {dense['step']} steps; curve {dense['loss_curve']}",
                  f"  sample: {sample(dense['checkpoint'], '今日は')!r}"]
    if synth := outputs("synthjob", "debug-synth"):
        stats = json.loads(Path(synth["stats"]).read_text())
        lines.append(f"synthetic data:    {stats['filter']['input']} generated, kept {stats['kept']['rewrites']} "
                     f"rewrites and {stats['kept']['dialogues']} dialogues (dropped: "
                     f"{stats['filter']['dropped'] or 'none'}); {data / 'synthjob' / 'debug-synth'}")
    if tokens := outputs("tokenizejob", "debug-tokens"):
        stats = json.loads((Path(tokens["tokens"]) / "stats.json").read_text())
        per_source = ", ".join(f"{name} {source['tokens']:,}" for name, source in stats["sources"].items())
        lines.append(f"token store:       {tokens['tokens']}  ({stats['tokens']:,} tokens: {per_source}; "
                     "Megatron-LM indexed datasets, read by the late phases)")
    if late := outputs("pretrainjob", "debug-late"):
        steps = records(late["metrics"])
        mixed = [step["mix"].get("synth", 0) / max(sum(step["mix"].values()), 1) for step in steps]
        lines.append(f"late phase:        {late['checkpoint']}  (continued {late['step']} steps, synthetic share of "
                     f"the batch {mixed[0]:.0%} → {mixed[-1]:.0%}; loss {loss_change(steps)})")
    if moe := outputs("upcyclejob", "debug-moe"):
        lines.append(f"MoE checkpoint:    {moe['checkpoint']}  ({moe['architecture']}, {moe['num_experts']} experts, "
                     f"top-{moe['top_k']})")
    if continued := outputs("pretrainjob", "debug-moe-cpt"):
        steps = records(continued["metrics"])
        lines += [f"MoE continued:     {continued['checkpoint']}  ({continued['step']} steps, loss "
                  f"{loss_change(steps)}, router aux loss {steps[-1].get('aux_loss', float('nan')):.3f})",
                  f"  sample: {sample(continued['checkpoint'], '今日は')!r}"]
    if sft := outputs("sftjob", "debug-sft"):
        lines.append(f"SFT checkpoint:    {sft['checkpoint']}  ({sft['steps']} steps on the synthetic dialogues, "
                     f"loss {sft.get('loss', float('nan')):.3f}; curve {sft.get('loss_curve')})")
    if dpo := outputs("dpojob", "debug-dpo"):
        pairs, steps = json.loads(Path(dpo["pairs_stats"]).read_text()), records(dpo["metrics"])
        lines.append(f"DPO checkpoint:    {dpo['checkpoint']}  ({pairs['kept']} of {pairs['prompts']} prompts made a "
                     f"pair, ties {pairs['tie']}; reward margin {steps[0]['rewards/margins']:.3f} → "
                     f"{steps[-1]['rewards/margins']:.3f} over {dpo['steps']} steps; curve {dpo['margins']})")
    if quantized := outputs("quantizejob", "debug-dpo-w8a8"):
        quality = json.loads(Path(quantized["quality"]).read_text())
        lines.append(f"quantized:         {quantized['checkpoint']}  ({quantized['scheme']}, "
                     f"{quantized['size_bytes'] / quantized['source_size_bytes']:.0%} of the DPO model's size; "
                     f"next-token agreement {quality['agreement']:.3f}, perplexity {quality['source_perplexity']:.2f} → "
                     f"{quality['quantized_perplexity']:.2f})")
    if evaluated := outputs("evaljob", "debug-eval"):
        lines.append(f"evaluation:        {evaluated.get('mode')}: top {evaluated.get('top_model')} "
                     f"({evaluated.get('top_score')}); report {evaluated.get('report')}")
    return lines


ENDPOINT = "ModelServer/debug-chat"
"""The chain's chat server (the DPO model): the demo's endpoint."""
QUANTIZED_ENDPOINT = "ModelServer/debug-chat-w8a8"
"""The chain's server of the quantized DPO model (proved with one request as well)."""


def _try_endpoint(workdir: Path, api_key: str, hold: bool, runner: subprocess.Popen[str]) -> int:
    """Prove the chat endpoint (and the quantized model's, when the chain serves one) with one request
    through the router each, and print how to use it."""
    from tanuki_operator.local import statuses as stored_statuses

    statuses = stored_statuses(workdir)
    servers = [ENDPOINT, *([QUANTIZED_ENDPOINT] if QUANTIZED_ENDPOINT in statuses else [])]
    for name in servers:
        if statuses.get(name, {}).get("phase") != Phase.RUNNING:
            print(f"[tanuki demo] {name} is not serving: {statuses.get(name, {}).get('message')}", file=sys.stderr)
            return 1
    answers = {name: _chat(statuses[name]["outputs"]["url"], statuses[name]["outputs"]["model"], api_key,
                           "日本の首都はどこですか？") for name in servers}
    url, model = statuses[ENDPOINT]["outputs"]["url"], statuses[ENDPOINT]["outputs"]["model"]
    print(f"\nOpenAI-compatible endpoint: {url}  (model {model!r}: the DPO model, vLLM behind vllm-router)")
    print(f"  first answer through the router: {answers[ENDPOINT]!r}")
    if QUANTIZED_ENDPOINT in answers:
        print(f"  the quantized DPO model at {statuses[QUANTIZED_ENDPOINT]['outputs']['url']} answered: "
              f"{answers[QUANTIZED_ENDPOINT]!r}")
    print("  try it:")
    print(f"    curl {url}/chat/completions -H 'Authorization: Bearer {api_key}' \\")
    print(f"      -H 'Content-Type: application/json' -d '{{\"model\": \"{model}\", "
          f"\"messages\": [{{\"role\": \"user\", \"content\": \"こんにちは\"}}], \"max_tokens\": 32}}'")
    print(f"    python -c \"from openai import OpenAI; c = OpenAI(base_url='{url}', api_key='{api_key}'); "
          f"print(c.chat.completions.create(model='{model}', messages=[{{'role': 'user', 'content': 'こんにちは'}}], "
          f"max_tokens=32).choices[0].message.content)\"")
    print(f"  load test: tanuki loadgen --base-url {url} --model {model} --api-key {api_key} --duration 20")
    for key, status in sorted(statuses.items()):
        if key.startswith("Arena/") and status.get("phase") == Phase.RUNNING:
            print(f"  arena: {status['outputs']['url']}/  (ask, read two anonymous answers, vote; "
                  f"ratings at /leaderboard)")
    print(f"  statuses: tanuki local get --workdir {workdir}")
    if hold:
        print("  serving until Ctrl-C (edit the chain's ModelServer debug-chat spec.model to watch a canary rollout)",
              flush=True)
        runner.wait()
    return 0


def _api_key(workdir: Path) -> str:
    """The Secret ``tanuki-api-key`` as the local runner reads it (a file), made on first use."""
    import secrets

    key_file = workdir / "secrets" / "tanuki-api-key" / "api-key"
    if not key_file.is_file():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(24))
    return key_file.read_text().strip()


def _chat(url: str, model: str, api_key: str, question: str) -> str:
    import httpx

    body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 24, "temperature": 0}
    response = httpx.post(f"{url}/chat/completions", json=body, headers={"Authorization": f"Bearer {api_key}"},
                          timeout=120)
    response.raise_for_status()
    answer: str = response.json()["choices"][0]["message"]["content"]  # OpenAI chat completion
    return answer


def sample(checkpoint: str, prompt: str, new_tokens: int = 24) -> str:
    """Greedy continuation with stock transformers: the export is a plain HF checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers: unannotated
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    inputs = tokenizer(prompt, return_tensors="pt")
    # transformers annotates generate's self as a protocol its own auto-model return type does not satisfy
    output = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False,  # type: ignore[misc]
                            no_repeat_ngram_size=2)
    text = tokenizer.decode(output[0], skip_special_tokens=True)
    assert isinstance(text, str), "one sequence decodes to one string"
    return text
