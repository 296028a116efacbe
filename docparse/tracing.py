"""Stage marks: where the time of one request goes, across processes.

With HPS_TRACE_FILE set, every process that calls ``configure`` appends one line per
mark to that file, ``<unix time> <pid> <logId> <stage>``. ``bench.load`` sends requests
one at a time and ``bench/stages.py`` turns the marks of the gateway, the orchestrator
and the client, with the VLM stand-in's own records, into the time between consecutive
stages. Wall-clock time, so that marks of different processes line up. Off by default:
``mark`` returns at once.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TextIO

_file: TextIO | None = None
_lock = threading.Lock()


def configure(path: str | None) -> None:
    """Start appending marks to ``path`` (None: stay off). Lines are written whole, one
    system call each in append mode, so processes sharing the file do not mix them."""
    global _file
    if path and _file is None:
        _file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the process's life


def mark(stage: str, log_id: str, at: float | None = None) -> None:
    """Record that request ``log_id`` reached ``stage`` now (or at ``time.time()`` ``at``)."""
    if _file is None:
        return
    line = f"{time.time() if at is None else at:.6f} {os.getpid()} {log_id or '-'} {stage}\n"
    with _lock:
        _file.write(line)


def stop() -> None:
    """Stop marking and close the file (for tests; a process otherwise marks until it ends)."""
    global _file
    if _file is not None:
        _file.close()
        _file = None
