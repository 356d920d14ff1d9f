"""Errors a user can fix by changing their input.

The CLI prints these without a traceback and exits with ``EXIT_BAD_INPUT`` so that a Kubernetes
Job's podFailurePolicy can mark the run as terminally failed instead of retrying it.
"""

EXIT_BAD_INPUT = 2


class BadInputError(Exception):
    """A recipe field, input file or corpus is wrong; the message names the field or file."""
