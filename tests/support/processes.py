"""What the supervision tests look at: a server's child processes read from /proc (its
Python-backend stubs, their watchdogs, their shared-memory regions), and waiting on a
condition with a time limit."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")
SHM_DIR = Path("/dev/shm")
STUB = "triton_python_backend_stub"


def wait_for(condition: Callable[[], T], timeout: float, what: str) -> T:
    """The first true value of ``condition``, polled until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.1)
    return value


def command_line(pid: int) -> tuple[str, ...]:
    """Empty for a zombie; OSError when there is no such process."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


@dataclass(frozen=True)
class Process:
    pid: int
    command: tuple[str, ...]

    def alive(self) -> bool:
        """Still running: not gone, not a zombie, not another process with its pid."""
        try:
            return command_line(self.pid) == self.command
        except OSError:
            return False


def children(parent: int) -> list[Process]:
    """The live processes whose parent is ``parent``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                pid = int(stat.parent.name)
                found.append(Process(pid, command_line(pid)))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return [child for child in found if child.command]


def stubs_of(server: int) -> list[Process]:
    """The Python-backend stubs of the tritonserver with pid ``server``."""
    return [child for child in children(server) if child.command[0].endswith(STUB)]


def watchdogs_of(stubs: list[Process]) -> list[Process]:
    """The watchdog process each stub started (docparse_triton/stub_watchdog.py)."""
    return [child for stub in stubs for child in children(stub.pid) if "stub_watchdog.py" in " ".join(child.command)]


def shm_regions_of(stubs: list[Process]) -> list[Path]:
    """The stubs' shared-memory regions that are still in /dev/shm (the Python backend
    names each one in its stub's second argument)."""
    return [SHM_DIR / stub.command[2] for stub in stubs if (SHM_DIR / stub.command[2]).exists()]


def leftovers(stubs: list[Process], watchdogs: list[Process]) -> list[str]:
    """What is still there of a server that died: live stubs and watchdogs, regions."""
    alive = [" ".join(p.command)[:160] for p in stubs + watchdogs if p.alive()]
    return alive + [str(region) for region in shm_regions_of(stubs)]
