"""Entry point for ``kopf run -m tanuki_operator.main``: importing it registers every handler."""

from tanuki_operator.handlers import kopf_handlers  # noqa: F401
