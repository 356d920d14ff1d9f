"""Operator throughput: a burst of N PretrainJobs against the API emulator, each in its own process.

Three processes, so that what the operator costs is measured apart from what the API costs:
the hardened kmock emulator (tests/operator/serve_emulator.py), the real operator
(``kopf run --standalone -m tanuki_operator.main``, the command the chart runs), and this driver,
which creates N PretrainJobs as fast as the API accepts them and watches child Jobs appear.

Reported: CRs/s (N / time from the first create until the last child Job exists), per-CR latency
from its create to its child Job's ADDED event on a watch (p50, p99, max; goals p99 ≤ 5 s and
≥ 50 CRs/s), and CPU seconds per CR of the operator and of the API emulator over the same burst
(from /proc). The emulator's CPU is the in-run reference: it serves exactly the requests the
operator makes for the burst (plus the driver's creates and watch), so "operator ÷ API" says how
much the operator's own work weighs against the API round trips it causes.

The same operator and emulator take ``--rounds`` bursts in a row (fresh names each time); each
figure is the median over bursts, with its spread.

    .venv/bin/python benchmarks/operator_throughput.py [--count 500] [--rounds 3] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchkit import Report, add_common_arguments, machine_facts, percentile

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "operator"), str(REPO / "tests")]
NS = "bench"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / TICKS


def start_emulator() -> tuple[subprocess.Popen, str]:
    profile = ["--profile", os.environ["TANUKI_PROFILE_EMULATOR"]] if os.environ.get("TANUKI_PROFILE_EMULATOR") else []
    process = subprocess.Popen([sys.executable, str(REPO / "tests/operator/serve_emulator.py"), *profile],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line.startswith("READY "), line
    return process, line.split()[1]


async def run(count: int, rounds: int) -> list[dict[str, float]]:
    import aiohttp

    from k8s_schemas import runnable_examples
    from tanuki_operator.crds import all_crds

    emulator, url = start_emulator()
    operator = None
    results = []
    try:
        kubeconfig = Path(tempfile.mkdtemp()) / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "e",
            "clusters": [{"name": "e", "cluster": {"server": url}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "e", "context": {"cluster": "e", "user": "u", "namespace": NS}}]}))
        async with aiohttp.ClientSession(url) as http:
            async def post(path: str, body: dict) -> None:
                async with http.post(path, json=body) as response:
                    assert response.status == 201, await response.text()

            await post("/api/v1/namespaces", {"metadata": {"name": NS}})
            for crd in all_crds().values():
                await post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            env = {**os.environ, "KUBECONFIG": str(kubeconfig), "TANUKI_RESYNC_SECONDS": "600",
                   "TANUKI_METRICS_PORT": "0", "PYTHONWARNINGS": "ignore"}
            command = [str(Path(sys.executable).parent / "kopf"), "run", "--standalone", f"--namespace={NS}",
                       "-m", "tanuki_operator.main"]
            if os.environ.get("TANUKI_PROFILE_OPERATOR"):  # a sampling profiler over every thread (py-spy)
                command = [os.environ.get("PY_SPY", "py-spy"), "record", "-o", os.environ["TANUKI_PROFILE_OPERATOR"],
                           "-f", "raw", "--threads", "--gil", "--", *command]
            operator = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        cwd=str(REPO), start_new_session=True)
            # the debug PretrainJob reading the raw corpus: in the example it waits for debug-curate's dataset
            template = next(r for r in runnable_examples() if r["metadata"]["name"] == "debug-base")
            await _warm_up(http, post, template)
            for round_index in range(rounds):
                results.append(await burst(http, post, template, count, f"r{round_index}-", operator.pid,
                                           emulator.pid))
    finally:
        for process in (operator, emulator):
            if process is not None:
                process.send_signal(signal.SIGINT)  # (py-spy writes its profile on SIGINT)
                process.wait(timeout=60)
        if operator is not None:  # under py-spy, kopf is its child: the whole group goes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(operator.pid, signal.SIGTERM)
    return results


async def burst(http, post, template: dict, count: int, prefix: str, operator_pid: int,
                emulator_pid: int) -> dict[str, float]:
    """Create ``count`` PretrainJobs as fast as the API takes them; time until each has its child Job."""
    seen: dict[str, float] = {}
    done = asyncio.Event()

    async def watch_jobs() -> None:
        import aiohttp

        params = {"watch": "true", "labelSelector": "llm.tanuki.dev/kind=pretrainjob"}
        async with http.get(f"/apis/batch/v1/namespaces/{NS}/jobs", params=params,
                            timeout=aiohttp.ClientTimeout(total=None)) as response:
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                name = event["object"]["metadata"]["name"]
                if event["type"] == "ADDED" and name.startswith(prefix):
                    seen.setdefault(name, time.monotonic())
                    if len(seen) >= count:
                        done.set()
                        return

    watcher = asyncio.create_task(watch_jobs())
    await asyncio.sleep(0.5)
    cpu_before = cpu_seconds(operator_pid), cpu_seconds(emulator_pid)
    created: dict[str, float] = {}
    started = time.monotonic()
    for index in range(count):
        resource = copy.deepcopy(template)
        resource["metadata"]["name"] = name = f"{prefix}{index:04d}"
        await post(f"/apis/llm.tanuki.dev/v1alpha1/namespaces/{NS}/pretrainjobs", resource)
        created[name] = time.monotonic()
    posted = time.monotonic()
    try:
        await asyncio.wait_for(done.wait(), timeout=600)
    finally:
        watcher.cancel()
    finished = time.monotonic()
    cpu_after = cpu_seconds(operator_pid), cpu_seconds(emulator_pid)
    latencies = [seen[name] - created[name] for name in created if name in seen]
    return {"count": count, "children": len(seen), "seconds": finished - started, "posting": posted - started,
            "per_second": len(seen) / (finished - started), "p50": statistics.median(latencies),
            "p99": percentile(latencies, 0.99), "max": max(latencies),
            "operator_cpu_per_cr": (cpu_after[0] - cpu_before[0]) / count,
            "emulator_cpu_per_cr": (cpu_after[1] - cpu_before[1]) / count}


async def _warm_up(http, post, template: dict) -> None:
    """One CR end to end before timing: the operator has started, listed and watches everything."""
    resource = copy.deepcopy(template)
    resource["metadata"]["name"] = "warm-up"
    await post(f"/apis/llm.tanuki.dev/v1alpha1/namespaces/{NS}/pretrainjobs", resource)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with http.get(f"/apis/batch/v1/namespaces/{NS}/jobs/warm-up") as response:
            if response.status == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("the operator did not reconcile the warm-up resource within 120 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, rounds=3)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    if args.smoke:
        args.count, args.rounds = 20, 1
    facts = machine_facts({"operator (kopf)": "its own process", "API emulator": "its own process"})
    report = Report("operator_throughput", ["CRs/s", "p99 latency", "operator CPU per CR", "API CPU per CR",
                                            "operator ÷ API CPU"], facts)
    results = asyncio.run(run(args.count, args.rounds))
    print(f"{args.count} PretrainJobs per burst, {args.rounds} bursts; creating the CRs alone took "
          f"{statistics.median(r['posting'] for r in results):.1f} s (median)", flush=True)
    report.side("CRs/s", [r["per_second"] for r in results], "CRs/s (goal ≥ 50)")
    report.side("p50 latency", [r["p50"] for r in results], "s")
    report.side("p99 latency", [r["p99"] for r in results], "s (goal ≤ 5 s)")
    report.side("max latency", [r["max"] for r in results], "s")
    operator_cpu = [r["operator_cpu_per_cr"] * 1000 for r in results]
    api_cpu = [max(r["emulator_cpu_per_cr"] * 1000, 1e-6) for r in results]
    report.side("operator CPU per CR", operator_cpu, "ms")
    report.side("API CPU per CR", api_cpu, "ms")
    report.ratio("operator ÷ API CPU", operator_cpu, api_cpu, higher_is_better=False)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
