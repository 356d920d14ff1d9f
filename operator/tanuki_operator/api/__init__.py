"""The custom resources of group ``llm.tanuki.dev``: pydantic models, the one source of truth."""

from tanuki_operator.api.common import API_VERSION, GROUP, VERSION, Status
from tanuki_operator.api.registry import KINDS, KindInfo

__all__ = ["API_VERSION", "GROUP", "KINDS", "KindInfo", "Status", "VERSION"]
