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


def message_from(output_dir: Path) -> bool:
    """A finished stage's ``outputs.json`` as this container's termination message (where a process
    other than the stage's own reports it: a RayJob's submitter, the program ran on the Ray head).
    False when the stage published none (it did not finish)."""
    path = output_dir / OUTPUTS_FILE
    message_path = os.environ.get(MESSAGE_ENV)
    if not path.is_file():
        return False
    compact = json.dumps(json.loads(path.read_text()), ensure_ascii=False, separators=(",", ":"))
    if message_path and len(compact.encode()) <= MESSAGE_LIMIT:
        Path(message_path).write_text(compact, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    """``python3 -m tanuki_pipelines.outputs --message-from DIR``: exit 1 if DIR has no outputs."""
    import argparse

    parser = argparse.ArgumentParser(description=message_from.__doc__)
    parser.add_argument("--message-from", type=Path, required=True, help="the stage's output directory")
    args = parser.parse_args(argv)
    if message_from(args.message_from):
        return 0
    print(f"{args.message_from / OUTPUTS_FILE}: missing; the stage did not finish", flush=True)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
