"""The local launcher's supervision on a real tritonserver: a server that dies is
restarted on its ports with its log kept, what it left is gone, and a server that keeps
dying is given up on once the policy's bound is spent, saying why."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest

from scripts.supervisor import RestartPolicy, Supervisor
from scripts.triton_local import DEFAULT_MODEL_REPOSITORY, TritonServer
from tests.support.processes import leftovers, stubs_of, wait_for, watchdogs_of

pytestmark = pytest.mark.triton


def kill(server: TritonServer) -> None:
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def test_a_dead_tritonserver_is_restarted_until_the_bound_is_spent(tmp_path: Path):
    # One light model is enough: a stub, its watchdog, its shared-memory region.
    repository = tmp_path / "repository"
    shutil.copytree(DEFAULT_MODEL_REPOSITORY / "pdf_render", repository / "pdf_render")
    server = TritonServer(model_repository=repository, log_path=tmp_path / "tritonserver.log", ready_timeout=60)
    out = io.StringIO()
    policy = RestartPolicy(max_restarts=2, window=600, first_delay=0.1)
    supervisor = Supervisor(server, "tritonserver", policy, out=out)
    with server:
        ports = (server.http_port, server.grpc_port, server.metrics_port)
        assert supervisor.keep_alive() and not out.getvalue()  # running: nothing to do
        first = server.process.pid
        stubs = stubs_of(first)
        watchdogs = wait_for(lambda: watchdogs_of(stubs), 10, "the stub's watchdog")

        kill(server)
        assert supervisor.keep_alive()
        assert server.process.pid != first and server.is_ready()
        assert (server.http_port, server.grpc_port, server.metrics_port) == ports
        assert "tritonserver exited with signal SIGKILL" in out.getvalue()
        assert "restarting it in 0.1 s (restart 1 of at most 2 within 600 s)" in out.getvalue()
        assert "tritonserver is back (restart 1)" in out.getvalue()
        assert not leftovers(stubs, watchdogs)
        assert server.log_path.read_text().count("Started GRPCInferenceService") == 2  # both runs' logs

        # Dies again, and its gRPC port is taken meanwhile: the next start fails too.
        kill(server)
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", server.grpc_port))
            squatter.listen()
            assert not supervisor.keep_alive()
        assert "restart 2 of at most 2" in out.getvalue()
        assert supervisor.gave_up.startswith("tritonserver did not come back: tritonserver exited with code 1")
        assert "restarted 2 times within 600 s already: giving up" in supervisor.gave_up
    assert not server.shm_regions()
