"""A Python-backend stub must not outlive its tritonserver.

The stub checks on its own that its server is alive, but when the server is SIGKILLed
under load that check deadlocks: a thread holding the GIL waits forever for an answer
from the dead server while the stub's exit path waits for the GIL. Such orphans stay
alive, re-parented to init, holding their memory (0.3-1.5 GB) and their shared-memory
region. A thread of our own in the stub would need the GIL too, so each stub gets a
small watchdog *process* instead (about 11 MB): started by ``start_watchdog`` from every
model's ``initialize``, it polls twice a second whether the stub still has the parent
it started with and, once the server is gone, SIGKILLs the stub and removes its region.
It exits by itself when its stub exits (a normal shutdown: ``finalize`` has run).

This file is also the watchdog's program, run as ``python -I -S stub_watchdog.py STUB
SERVER NAME``: standard library only (no site-packages, so it starts fast and small).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

POLL_SECONDS = 0.5
SHM_DIR = Path("/dev/shm")
_watchdogs: dict[int, subprocess.Popen] = {}  # stub pid -> its watchdog process, started at most once per stub


def start_watchdog(name: str) -> None:
    """Start this stub's watchdog (once per process; a model's ``initialize`` calls it).
    ``name`` (the model instance) is for the watchdog's log line."""
    import logging  # here, not above: the watchdog process itself needs neither (3 MB less)
    import subprocess

    stub = os.getpid()
    if stub in _watchdogs:
        return
    try:
        _watchdogs[stub] = subprocess.Popen(
            [interpreter(), "-I", "-S", os.path.abspath(__file__), str(stub), str(os.getppid()), name],
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
    except OSError as exc:  # a safety net: the model still serves without it
        logging.getLogger("docparse.triton").warning("%s: no stub watchdog (%s)", name, exc)


def interpreter() -> str:
    """The Python the stub embeds: its ``sys.executable`` is the ``python3`` on PATH
    the stub found its environment through (``sys.executable`` may be empty when
    embedded, then the one on PATH)."""
    return sys.executable or "python3"


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` (from /proc), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm)": state, ppid


def shm_region(stub: int) -> Path | None:
    """The stub's shared-memory region: the Python backend passes its name as the
    stub's second argument. None if that is not a region in /dev/shm."""
    try:
        argv = Path(f"/proc/{stub}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if len(argv) < 3 or not argv[2] or b"/" in argv[2]:
        return None
    region = SHM_DIR / os.fsdecode(argv[2])
    return region if region.exists() else None


def watch(stub: int, server: int, name: str, poll_seconds: float = POLL_SECONDS) -> bool:
    """Until the stub exits (False) or its server is gone (the stub is killed: True).
    A dying server re-parents its children at once, even before it is reaped."""
    region = shm_region(stub)
    while os.getppid() == stub:
        parent = parent_of(stub)
        if parent is not None and parent != server:
            print(
                f"docparse stub watchdog: tritonserver (pid {server}) is gone; killing the "
                f"Python stub of {name} (pid {stub}) and removing its shared memory",
                file=sys.stderr,
                flush=True,
            )
            try:
                os.kill(stub, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if region is not None:
                try:
                    region.unlink()
                except FileNotFoundError:
                    pass
            return True
        time.sleep(poll_seconds)
    return False


def main(argv: list[str]) -> int:
    # Ctrl-C on a tritonserver in a terminal reaches its whole process group: the
    # server stops its stubs in order, and this watchdog then ends with its stub.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stub, server, name = int(argv[0]), int(argv[1]), argv[2]
    watch(stub, server, name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
