"""Small pieces every local launcher needs: a free port, a child that dies with its
parent, waiting for readiness with a time limit, stopping a process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, ClassVar, Self


class LaunchError(RuntimeError):
    """A server could not be started or did not become ready in time."""


def free_port() -> int:
    """A port the OS says is free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies, so
    a killed test run or launcher never leaves a server behind (Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on TCP ``port`` (Linux /proc).
    A free port picked for a server may be taken by another one before ours binds it;
    then that one answers our readiness check while ours is still retrying to bind."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])  # state 0A: LISTEN
    sockets = {f"socket:[{inode}]" for inode in inodes}
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(descriptor) in sockets:
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def log_tail(path: Path | None, lines: int = 60) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until_ready(
    name: str,
    ready: Callable[[], bool],
    process: subprocess.Popen,
    timeout: float,
    log_path: Path | None,
) -> None:
    """Poll ``ready`` until it is true; fail with the log tail if the process exits or
    ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LaunchError(
                f"{name} exited with code {process.returncode} before it was ready. "
                f"Log tail:\n{log_tail(log_path)}"
            )
        if ready():
            return
        time.sleep(0.2)
    raise LaunchError(f"{name} was not ready after {timeout:.0f} s. Log tail:\n{log_tail(log_path)}")


def stop_group(process: subprocess.Popen | None, timeout: float = 30.0) -> None:
    """SIGTERM the leader only, as ``docker stop`` does, and SIGKILL the whole group past
    ``timeout`` seconds. The leader stops its children in order (gunicorn its workers,
    tritonserver its Python stubs); a SIGTERM sent straight to a stub running Paddle
    aborts it, and tritonserver then waits its whole exit timeout for that model.
    A leader that already died (killed, crashed) may have left its children running:
    they are killed too."""
    if process is None:
        return
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:  # past the timeout, or stragglers the leader left behind
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(timeout=10)


def describe_exit(returncode: int | None) -> str:
    """``code 1``, or ``signal SIGKILL`` for a process a signal ended (Popen's negative code)."""
    if returncode is not None and returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


def launch(
    name: str,
    command: list[str],
    *,
    log_path: Path,
    ready: Callable[[], bool],
    ready_timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    append: bool = False,
    port: int | None = None,
) -> subprocess.Popen:
    """Start ``command`` in its own process group (dying with its parent), output to
    ``log_path`` (added to it with ``append``: a restart keeps the log of the run that
    died), and wait until ``ready`` and, given a ``port``, until the process itself
    listens on it (``listens_on``); stop it and raise LaunchError otherwise."""
    with open(log_path, "ab" if append else "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    def own_ready() -> bool:
        return ready() and (port is None or listens_on(process.pid, port))

    try:
        wait_until_ready(name, own_ready, process, ready_timeout, log_path)
    except BaseException:
        stop_group(process)
        raise
    return process


class ChildServer:
    """What the local server launchers share: their log's tail, and ``with`` starting
    and stopping them. A subclass sets ``process`` and ``log_path`` in ``start()``."""

    process: subprocess.Popen | None
    log_path: Path | None
    STOP_TIMEOUT: ClassVar[float] = 30.0  # seconds ``stop`` gives the process by default

    def start(self) -> Self:
        raise NotImplementedError

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float | None = None) -> None:
        stop_group(self.process, self.STOP_TIMEOUT if timeout is None else timeout)

    def restart(self) -> Self:
        """Stop what is left of it, then start it again (on the ports it had)."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
