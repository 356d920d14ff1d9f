"""The custom resources of group ``llm.tanuki.dev``: pydantic models, the one source of truth.

The kinds themselves (names, spec model, what runs them) are listed in ``tanuki_operator.stages``."""

from tanuki_operator.api.common import API_VERSION, GROUP, VERSION, Phase, Status

__all__ = ["API_VERSION", "GROUP", "Phase", "Status", "VERSION"]
