"""Entry point for ``kopf run -m tanuki_operator.main``: importing it registers every handler."""

from tanuki_operator import handlers  # noqa: F401
