"""Gateways under real gunicorn (2 uvicorn workers) in front of the session's tritonserver.

``gateway`` (tests/conftest.py) is the shared one; ``start_gateway(**settings)`` starts
one with other settings for a test (bounded waits, short deadlines, URL inputs) and stops
it after.
"""

from __future__ import annotations

from typing import Callable, Iterator

import httpx
import pytest

from scripts.gateway_local import GatewayServer
from scripts.triton_local import TritonServer
from tests.conftest import gateway_env  # noqa: F401  (imported from here by the e2e tests)
from vlmsim import SimulatorProcess

GatewayFactory = Callable[..., GatewayServer]


@pytest.fixture()
def start_gateway(triton: TritonServer, vlm_server: SimulatorProcess, tmp_path) -> Iterator[GatewayFactory]:
    started: list[GatewayServer] = []

    def start(vlm: SimulatorProcess = vlm_server, workers: int = 2, **settings: object) -> GatewayServer:
        server = GatewayServer(
            env=gateway_env(triton, vlm, **settings),
            workers=workers,
            log_path=tmp_path / f"gateway-{len(started)}.log",
        )
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture()
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=120) as client:
        yield client
