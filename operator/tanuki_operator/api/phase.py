"""The phase of a tanuki resource: one enum for the operator, the local runner, ``status.phase`` and
the tools that read statuses (``tanuki demo``, ``tanuki report``). Anything finer is a condition
reason (e.g. Failed with reason StageNotAvailable). Stage programs never read phases.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """The one phase enum of every kind, for the operator, the local runner and ``status.phase``.

    Anything finer is a condition reason (e.g. ``Failed`` with reason ``StageNotAvailable``)."""

    PENDING = "Pending"
    WAITING = "Waiting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    VALIDATION_FAILED = "ValidationFailed"
    SUSPENDED = "Suspended"

    @classmethod
    def of(cls, value: object) -> Phase | None:
        """The phase a status' ``phase`` field names (None when unset or not a phase)."""
        return cls(value) if isinstance(value, str) and value in cls._value2member_map_ else None

    @property
    def terminal(self) -> bool:
        """Nothing changes until the spec does."""
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.VALIDATION_FAILED)

    @property
    def broken(self) -> bool:
        """Finished without a result: downstream resources cannot use it."""
        return self in (Phase.FAILED, Phase.VALIDATION_FAILED)
