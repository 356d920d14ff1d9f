"""What ``tanuki curate`` checks before the first stage (see ``tanuki_pipelines.preflight``)."""

from __future__ import annotations

from tanuki_pipelines.curate.config import CurateConfig
from tanuki_pipelines.preflight import Preflight


def preflight(config: CurateConfig, check: Preflight) -> None:
    check.sources("sources", config.sources)
