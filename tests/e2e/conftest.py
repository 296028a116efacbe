"""Gateways under real gunicorn (2 uvicorn workers) in front of the session's tritonserver.

``gateway`` is the shared one; ``start_gateway(**settings)`` starts one with other
settings for a test (bounded waits, short deadlines, URL inputs) and stops it after.
"""

from __future__ import annotations

from typing import Callable, Iterator

import httpx
import pytest

from scripts.gateway_local import GatewayServer
from scripts.triton_local import TritonServer
from vlmsim import SimulatorProcess

GatewayFactory = Callable[..., GatewayServer]


def gateway_env(triton: TritonServer, vlm: SimulatorProcess, **settings: object) -> dict[str, str]:
    env = {
        "HPS_TRITON_URL": triton.grpc_url,
        "HPS_VLM_URL": vlm.url,
        "HPS_HEALTH_CHECK_TIMEOUT": "2",
        "HPS_INFERENCE_TIMEOUT": "120",
        "HPS_GRACEFUL_TIMEOUT": "20",
        "HPS_LOG_LEVEL": "INFO",
    }
    for name, value in settings.items():
        key = name if name.isupper() else f"HPS_{name.upper()}"
        env[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


@pytest.fixture(scope="session")
def gateway(triton: TritonServer, vlm_server: SimulatorProcess, tmp_path_factory) -> Iterator[GatewayServer]:
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    server = GatewayServer(env=gateway_env(triton, vlm_server, max_concurrent_requests=2), workers=2, log_path=log_path)
    with server:
        yield server
    print(f"\n--- gateway log tail ---\n{server.log_tail(30)}")


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
