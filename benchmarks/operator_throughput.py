"""Operator throughput: N PretrainJobs created at once against the API emulator.

Runs the real operator (kopf, our handlers, the kubernetes client) against the hardened kmock
emulator from tests/operator, creates N PretrainJobs as fast as the API accepts them, and
measures, per CR, the time from its creation to the creation of its child Job. Prints p50/p99
latency and CRs/s (N / time until the last child Job exists).

    .venv/bin/python benchmarks/operator_throughput.py [--count 500]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "operator"), str(REPO / "tests")]
NS = "bench"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def run(count: int) -> None:
    import kmock

    from emulator import HardenedEmulator  # tests/operator/emulator.py
    from k8s_schemas import example_resources

    os.environ.setdefault("TANUKI_POLL_SECONDS", "30")
    # kmock re-scans its request history on every request: keep a window, or the emulator (not
    # the operator) becomes the bottleneck of a 500-CR run.
    async with HardenedEmulator(request_history=1) as emulator, kmock.Server(emulator, host="127.0.0.1"):
        kubeconfig = Path(tempfile.mkdtemp()) / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "e",
            "clusters": [{"name": "e", "cluster": {"server": str(emulator.url).rstrip("/")}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "e", "context": {"cluster": "e", "user": "u", "namespace": NS}}]}))
        os.environ["KUBECONFIG"] = str(kubeconfig)
        import kopf
        from kopf.testing import KopfRunner

        import tanuki_operator.main  # noqa: F401
        from tanuki_operator.crds import all_crds

        async def post(path: str, body: dict) -> None:
            async with emulator.post(path, json=body) as response:
                assert response.status == 201, await response.text()

        await post("/api/v1/namespaces", {"metadata": {"name": NS}})
        for crd in all_crds().values():
            await post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        template = next(r for r in example_resources() if r["metadata"]["name"] == "debug-base")
        runner = KopfRunner(["run", "--standalone", f"--namespace={NS}", "-m", "tanuki_operator.main"],
                            registry=kopf.get_default_registry(), timeout=60)
        runner.__enter__()
        await asyncio.sleep(2)  # let kopf discover the CRDs and start watching

        created: dict[str, float] = {}
        started = time.monotonic()
        for index in range(count):
            resource = copy.deepcopy(template)
            resource["metadata"]["name"] = name = f"job-{index:04d}"
            await post(f"/apis/llm.tanuki.dev/v1alpha1/namespaces/{NS}/pretrainjobs", resource)
            created[name] = time.monotonic()
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 600
        while len(seen) < count and time.monotonic() < deadline:
            async with emulator.get(f"/apis/batch/v1/namespaces/{NS}/jobs") as response:
                items = (await response.json())["items"]
            now = time.monotonic()
            for item in items:
                seen.setdefault(item["metadata"]["name"], now)
            await asyncio.sleep(0.1)
        finished = time.monotonic()
        await emulator.close_watches()
        await asyncio.to_thread(runner.__exit__, None, None, None)

    latencies = [seen[name] - created[name] for name in created if name in seen]
    print(f"{count} PretrainJobs → {len(seen)} child Jobs in {finished - started:.1f} s "
          f"({len(seen) / (finished - started):.1f} CRs/s)")
    print(f"per-CR latency (CR created → child Job exists): p50 {statistics.median(latencies):.2f} s, "
          f"p99 {percentile(latencies, 0.99):.2f} s, max {max(latencies):.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
