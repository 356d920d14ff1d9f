"""``tanuki demo``: the embedded default — the chain, as far as it is built, at toy scale.

Runs examples/debug-chain.yaml through the local runner (``tanuki local apply``) with the
project's own bilingual corpus: tokenizer + dense pretraining (DeepSpeed, CPU), synthetic data
from the pretrained model (vLLM in Ray Data, filtered and deduplicated), upcycling to a Mixture
of Experts, SFT on the synthetic dialogues (TRL), DPO on pairs the SFT model answers and then
judges (served as a ModelServer by the same apply), the DPO model served and graded. Prints where
the checkpoints are, a greedy sample from each, the DPO pairs and margins and the grade. Then
serves the MoE (examples/debug-serve.yaml: vLLM behind vllm-router, OpenAI API with an API key),
asks it one chat question through the router, and prints how to call it. Interactive runs keep
serving until Ctrl-C; others stop there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from tanuki_pipelines.phase import Phase


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--output-dir", default="tanuki-demo", help="where the demo writes (default tanuki-demo)")
    parser.add_argument("--nproc-per-node", type=int, default=2, help="training processes (default 2)")
    parser.add_argument("--chain", default=None, help="custom resources to run (default examples/debug-chain.yaml)")
    parser.add_argument("--no-serve", action="store_true", help="stop after training (skip serving)")
    parser.add_argument("--hold", action=argparse.BooleanOptionalAction, default=None,
                        help="keep serving until Ctrl-C (default: when stdin is a terminal)")
    return parser


def main(args: argparse.Namespace) -> int:
    import subprocess

    from tanuki_pipelines.recipes import examples_dir

    workdir = Path(args.output_dir).resolve()
    chain = Path(args.chain) if args.chain else examples_dir() / "debug-chain.yaml"
    corpus = workdir / "tanuki-data" / "corpus"  # the chain's PVC `tanuki-data`, as a directory
    cli = [sys.executable, "-m", "tanuki_pipelines.cli"]
    subprocess.run([*cli, "corpus", "--out", str(corpus)], check=True, stdout=subprocess.DEVNULL)
    _api_key(workdir)  # the chain's servers require it
    command = [*cli, "local", "apply", "-f", str(chain), "--workdir", str(workdir),
               "--nproc-per-node", str(args.nproc_per_node), "--serve-for", "0"]
    print(f"[tanuki demo] {' '.join(command[2:])}", flush=True)
    code = subprocess.run(command).returncode
    data = workdir / "tanuki-data"
    built = [data / "pretrainjob" / "debug-base" / "outputs.json", data / "upcyclejob" / "debug-moe" / "outputs.json"]
    if not all(path.is_file() for path in built):  # the stages this version has must have succeeded
        return code or 1
    pretrain = json.loads((data / "pretrainjob" / "debug-base" / "outputs.json").read_text())
    upcycled = json.loads((data / "upcyclejob" / "debug-moe" / "outputs.json").read_text())
    metrics = [json.loads(line) for line in Path(pretrain["metrics"]).read_text().splitlines()]
    print()
    print(f"dense checkpoint:  {pretrain['checkpoint']}  (HF Llama)")
    print(f"  loss {metrics[0]['loss']:.3f} → {metrics[-1]['loss']:.3f} over {pretrain['step']} steps;"
          f" curve {pretrain['loss_curve']}")
    print(f"  sample: {sample(pretrain['checkpoint'], '今日は')!r}")
    print(f"MoE checkpoint:    {upcycled['checkpoint']}  ({upcycled['architecture']}, "
          f"{upcycled['num_experts']} experts, top-{upcycled['top_k']})")
    print(f"  sample: {sample(upcycled['checkpoint'], '今日は')!r}")
    for line in later_stage_lines(data):
        print(line)
    if args.no_serve:
        return 0
    hold = sys.stdin.isatty() if args.hold is None else args.hold
    return serve(workdir, cli, hold)


def later_stage_lines(data: Path) -> list[str]:
    """One summary line per post-pretraining stage of the chain that finished."""
    def outputs(kind: str, name: str) -> dict | None:
        path = data / kind / name / "outputs.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def records(path: str) -> list[dict]:
        return [json.loads(line) for line in Path(path).read_text().splitlines()]

    lines = []
    if synth := outputs("synthjob", "debug-synth"):
        stats = json.loads(Path(synth["stats"]).read_text())
        lines.append(f"synthetic data:    {stats['filter']['input']} generated, kept {stats['kept']['rewrites']} "
                     f"rewrites and {stats['kept']['dialogues']} dialogues (dropped: "
                     f"{stats['filter']['dropped'] or 'none'}); {data / 'synthjob' / 'debug-synth'}")
    if sft := outputs("sftjob", "debug-sft"):
        lines.append(f"SFT checkpoint:    {sft['checkpoint']}  ({sft['steps']} steps on the synthetic dialogues, "
                     f"loss {sft.get('loss', float('nan')):.3f}; curve {sft.get('loss_curve')})")
    if dpo := outputs("dpojob", "debug-dpo"):
        pairs, steps = json.loads(Path(dpo["pairs_stats"]).read_text()), records(dpo["metrics"])
        lines.append(f"DPO checkpoint:    {dpo['checkpoint']}  ({pairs['kept']} of {pairs['prompts']} prompts made a "
                     f"pair, ties {pairs['tie']}; reward margin {steps[0]['rewards/margins']:.3f} → "
                     f"{steps[-1]['rewards/margins']:.3f} over {dpo['steps']} steps; curve {dpo['margins']})")
    if grade := outputs("evaljob", "debug-eval"):
        lines.append(f"evaluation:        {grade.get('top_model')} scored {grade.get('top_score')} by the SFT model "
                     f"as judge; report {grade.get('report')}")
    return lines


SERVE_FILE = "debug-serve.yaml"
STATUS_KEY = "ModelServer/debug-moe-chat"


def serve(workdir: Path, cli: list[str], hold: bool) -> int:
    """Serve the MoE through the local runner, prove the endpoint with one chat request, print how to use it."""
    import signal
    import subprocess

    from tanuki_pipelines.recipes import examples_dir

    api_key = _api_key(workdir)
    serve_file = _with_free_router_port(examples_dir() / SERVE_FILE, workdir)
    command = [*cli, "local", "apply", "-f", str(serve_file), "--workdir", str(workdir)]
    print(f"\n[tanuki demo] {' '.join(command[2:])}", flush=True)
    runner = subprocess.Popen(command, start_new_session=True)
    try:
        status = _wait_for_endpoint(workdir / ".tanuki" / "status.json", runner)
        if status.get("phase") != Phase.RUNNING:
            print(f"[tanuki demo] serving failed: {status.get('message')}", file=sys.stderr)
            return 1
        url, model = status["outputs"]["url"], status["outputs"]["model"]
        answer = _chat(url, model, api_key, "日本の首都はどこですか？")
        print(f"\nOpenAI-compatible endpoint: {url}  (model {model!r}, vLLM behind vllm-router)")
        print(f"  first answer through the router: {answer!r}")
        print("  try it:")
        print(f"    curl {url}/chat/completions -H 'Authorization: Bearer {api_key}' \\")
        print(f"      -H 'Content-Type: application/json' -d '{{\"model\": \"{model}\", "
              f"\"messages\": [{{\"role\": \"user\", \"content\": \"こんにちは\"}}], \"max_tokens\": 32}}'")
        print(f"    python -c \"from openai import OpenAI; c = OpenAI(base_url='{url}', api_key='{api_key}'); "
              f"print(c.chat.completions.create(model='{model}', messages=[{{'role': 'user', 'content': 'こんにちは'}}], "
              f"max_tokens=32).choices[0].message.content)\"")
        print(f"  load test: tanuki loadgen --base-url {url} --model {model} --api-key {api_key} --duration 20")
        if hold:
            print(f"  serving until Ctrl-C (point {serve_file}'s spec.model at another checkpoint to watch a "
                  "canary rollout)", flush=True)
            runner.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGTERM)
            runner.wait()


def _api_key(workdir: Path) -> str:
    """The Secret ``tanuki-api-key`` as the local runner reads it (a file), made on first use."""
    import secrets

    key_file = workdir / "secrets" / "tanuki-api-key" / "api-key"
    if not key_file.is_file():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(24))
    return key_file.read_text().strip()


def _with_free_router_port(path: Path, workdir: Path) -> Path:
    """The shipped file, or a copy in the workdir on a free port when its router port is taken."""
    import yaml

    from tanuki_serving.fleet import free_port, port_in_use

    resource = yaml.safe_load(path.read_text())
    shipped_port = resource["spec"]["router"]["port"]
    if not port_in_use(shipped_port):  # as the router binds it: connections in TIME_WAIT do not count
        return path
    resource["spec"]["router"]["port"] = free_port()
    copy = workdir / path.name
    copy.write_text(yaml.safe_dump(resource, sort_keys=False, allow_unicode=True))
    print(f"[tanuki demo] port {shipped_port} is taken: serving on {resource['spec']['router']['port']} ({copy})",
          flush=True)
    return copy


def _wait_for_endpoint(status_file: Path, runner: "subprocess.Popen", timeout: float = 900) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and runner.poll() is None:
        try:
            status = json.loads(status_file.read_text()).get(STATUS_KEY, {})
        except (OSError, json.JSONDecodeError):
            status = {}
        if status.get("phase") in (Phase.RUNNING, Phase.FAILED):
            return status
        time.sleep(1)
    return {"phase": Phase.FAILED, "message": f"no endpoint (runner exit code {runner.poll()})"}


def _chat(url: str, model: str, api_key: str, question: str) -> str:
    import urllib.request

    body = json.dumps({"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 24,
                       "temperature": 0}).encode()
    request = urllib.request.Request(f"{url}/chat/completions", data=body, headers={
        "Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"]


def sample(checkpoint: str, prompt: str, new_tokens: int = 24) -> str:
    """Greedy continuation with stock transformers: the export is a plain HF checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    inputs = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False, no_repeat_ngram_size=2)
    return tokenizer.decode(output[0], skip_special_tokens=True)
