"""The stub watchdog (docparse_triton/stub_watchdog.py) on real processes standing in for
tritonserver and a Python stub: it kills the stub and removes its region once the
server is gone, and stays out of the way of a normal stop (the stub's finalize runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.processes import SHM_DIR, Process, children, wait_for, watchdogs_of

REPO_ROOT = Path(__file__).resolve().parents[2]

# The stand-in stub: starts its watchdog as a model's initialize does; SIGTERM is its
# finalize (a file written, then it exits). Its second argument names its region.
STUB = """
import pathlib, signal, sys
from docparse_triton.stub_watchdog import start_watchdog
def finalize(*_):
    pathlib.Path(sys.argv[2]).write_text("finalized")
    sys.exit(0)
signal.signal(signal.SIGTERM, finalize)
start_watchdog("fake_0_0")
signal.pause()
"""
# The stand-in server: starts the stub and, on SIGTERM, stops it first, as tritonserver does.
SERVER = """
import signal, subprocess, sys
stub = subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2], sys.argv[3]])
def stop(*_):
    stub.terminate()
    stub.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.pause()
"""


class Tree:
    """A stand-in server, its stub and the stub's watchdog."""

    def __init__(self, tmp_path: Path) -> None:
        (tmp_path / "stub.py").write_text(STUB)
        (tmp_path / "server.py").write_text(SERVER)
        self.region = SHM_DIR / f"docparse_test_{os.getpid()}_{tmp_path.name}"
        self.region.write_bytes(b"\0" * 4096)
        self.finalized = tmp_path / "finalized"
        self.log = tmp_path / "server.log"
        with open(self.log, "wb") as log:
            self.server = subprocess.Popen(
                [sys.executable, str(tmp_path / "server.py"), str(tmp_path / "stub.py"), self.region.name, str(self.finalized)],
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                stderr=log,
            )
        stubs = wait_for(lambda: children(self.server.pid), 10, "the stand-in stub")
        self.stub: Process = stubs[0]
        self.watchdog: Process = wait_for(lambda: watchdogs_of([self.stub]), 10, "its watchdog")[0]

    def close(self) -> None:
        for process in (self.watchdog, self.stub):
            if process.alive():
                os.kill(process.pid, signal.SIGKILL)
        if self.server.poll() is None:
            self.server.kill()
        self.server.wait(timeout=10)
        self.region.unlink(missing_ok=True)


@pytest.fixture()
def tree(tmp_path: Path) -> Iterator[Tree]:
    tree = Tree(tmp_path)
    yield tree
    tree.close()


def test_a_stub_whose_server_is_killed_is_killed_and_its_region_removed(tree: Tree):
    tree.server.kill()
    tree.server.wait(timeout=10)
    wait_for(lambda: not tree.stub.alive() and not tree.watchdog.alive(), 5, "the stub and its watchdog gone")
    assert not tree.region.exists()
    assert not tree.finalized.exists()  # killed: nothing more of it runs
    assert "docparse stub watchdog: tritonserver (pid" in tree.log.read_text()
    assert "killing the Python stub of fake_0_0" in tree.log.read_text()


def test_a_normal_stop_lets_finalize_run_and_the_watchdog_leave_quietly(tree: Tree):
    tree.server.terminate()
    assert tree.server.wait(timeout=10) == 0
    assert tree.finalized.read_text() == "finalized"
    wait_for(lambda: not tree.watchdog.alive(), 5, "the watchdog gone with its stub")
    assert tree.region.exists()  # the server's to remove, not the watchdog's
    assert "watchdog" not in tree.log.read_text()
