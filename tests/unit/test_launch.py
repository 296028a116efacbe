"""The local launchers' readiness: a server is ready only when it holds its own port, so
that another server which took the free port first cannot answer for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from scripts.processes import free_port, listens_on


def test_a_process_listening_on_the_port_holds_it_and_others_do_not():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert listens_on(os.getpid(), port)
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert not listens_on(other.pid, port)  # answering on the port is not enough
        finally:
            other.kill()
            other.wait()
    assert not listens_on(os.getpid(), port)  # closed
    assert not listens_on(os.getpid(), free_port())
