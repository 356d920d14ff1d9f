"""A stage's outputs: ``outputs.json`` in its output directory, and the pod's termination message.

On Kubernetes the operator reads what a stage produced (checkpoint, dataset, metrics paths) from
the container's termination message, so pipeline pods need no API access; the operator sets
``TANUKI_OUTPUTS_MESSAGE`` to the termination-message path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

OUTPUTS_FILE = "outputs.json"
MESSAGE_ENV = "TANUKI_OUTPUTS_MESSAGE"
MESSAGE_LIMIT = 4096  # bytes Kubernetes keeps of a termination message


def publish_outputs(outputs: dict[str, Any], output_dir: Path) -> Path:
    """Write ``outputs.json`` durably. Call it last, once everything it names is durable
    (``tanuki_pipelines.publish``): its presence means the stage's outputs are complete."""
    from tanuki_pipelines.publish import fault_point, write_durable

    fault_point("outputs:before-write")
    path = write_durable(output_dir / OUTPUTS_FILE, json.dumps(outputs, indent=2, ensure_ascii=False) + "\n")
    message_path = os.environ.get(MESSAGE_ENV)
    if message_path:
        compact = json.dumps(outputs, ensure_ascii=False, separators=(",", ":"))
        if len(compact.encode()) <= MESSAGE_LIMIT:
            Path(message_path).write_text(compact, encoding="utf-8")
    return path


def retract_outputs(output_dir: Path) -> None:
    """Before a stage (re)runs: an ``outputs.json`` of an earlier run would vouch for outputs this
    run is about to replace; it comes back, naming the new ones, when the run completes."""
    path = output_dir / OUTPUTS_FILE
    if path.exists():
        from tanuki_pipelines.publish import fsync_dir

        path.unlink()
        fsync_dir(output_dir)


PROGRESS_PREFIX = "[tanuki progress] "
"""Log lines starting with this carry a JSON progress record; the operator reads the last one
from the pod's log (no API access needed by the pod)."""


def format_progress(step: int, total_steps: int, tokens: int | None = None, loss: float | None = None) -> str:
    record = {"step": step, "totalSteps": total_steps, "tokens": tokens, "loss": loss}
    return PROGRESS_PREFIX + json.dumps({k: v for k, v in record.items() if v is not None})


def parse_progress(log_text: str) -> dict[str, Any] | None:
    """The last progress record in a log, with a ``summary`` for the Progress printer column."""
    for line in reversed(log_text.splitlines()):
        if line.startswith(PROGRESS_PREFIX):
            try:
                record = json.loads(line[len(PROGRESS_PREFIX):])
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                total = record.get("totalSteps")
                if isinstance(total, int) and total > 0:
                    record["summary"] = f"{100 * record['step'] // total}% ({record['step']}/{total})"
                return record
    return None
