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
    text = json.dumps(outputs, indent=2, ensure_ascii=False) + "\n"
    path = output_dir / OUTPUTS_FILE
    tmp = path.with_name(f".tmp-{OUTPUTS_FILE}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    message_path = os.environ.get(MESSAGE_ENV)
    if message_path:
        compact = json.dumps(outputs, ensure_ascii=False, separators=(",", ":"))
        if len(compact.encode()) <= MESSAGE_LIMIT:
            Path(message_path).write_text(compact, encoding="utf-8")
    return path
