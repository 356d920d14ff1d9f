"""Training metrics: MFU estimate, ``metrics.jsonl`` records, the loss-curve PNG."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Dense bf16 peak TFLOP/s per device (vendor datasheets, without sparsity).
GPU_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 125.0,
    "L4": 121.0,
}
# fp32 FLOPs per cycle per core with two AVX2 FMA units (8 lanes × 2 ops × 2 units).
CPU_FLOPS_PER_CYCLE = 32
CPU_ASSUMED_HZ = 2.5e9


def peak_tflops_per_device(device_name: str | None, configured: float | None, local_world: int) -> float:
    """Configured value, else the GPU table, else a CPU estimate split over local processes."""
    if configured:
        return configured
    if device_name:
        for key, value in GPU_PEAK_TFLOPS.items():
            if key in device_name.upper():
                return value
    cores = len(os.sched_getaffinity(0))
    return cores * CPU_FLOPS_PER_CYCLE * CPU_ASSUMED_HZ / 1e12 / max(1, local_world)


def mfu(tokens_per_second_per_device: float, flops_per_token: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation: achieved training FLOP/s over the device's peak."""
    return tokens_per_second_per_device * flops_per_token / (peak_tflops * 1e12)


class MetricsLog:
    """Append-only ``metrics.jsonl``; a resumed run first drops records past its resume step."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        kept = [record for record in read_metrics(path) if record["step"] <= resume_step]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(record) + "\n" for record in kept))
        tmp.replace(path)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a torn last line from a killed run
    return records


def plot_loss(records: list[dict[str, Any]], path: Path, title: str = "tanuki pretrain") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot([r["step"] for r in records], [r["loss"] for r in records], label="cross-entropy")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
