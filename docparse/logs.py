"""How every process logs: one format on stderr (gunicorn's error log, tritonserver's
log), our loggers (``docparse.*``) at HPS_LOG_LEVEL, other libraries' at WARNING."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Idempotent: a process may build several apps or models."""
    root = logging.getLogger()
    if not any(getattr(handler, "_docparse", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._docparse = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("docparse").setLevel(level)
