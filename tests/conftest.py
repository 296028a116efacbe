"""Shared fixtures: a real tritonserver on free ports serving model_repository/ with the
stand-in layout model, pointed at the VLM stand-in, and ``gateway``, a real gunicorn
gateway in front of them (used by tests/e2e and tests/browser). Started once per session,
only when a test asks; always stopped. Also ``job_store_url`` (tests/support/postgres.py):
a test runs on a SQLite job store and on a throwaway PostgreSQL server's."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from scripts.gateway_local import GatewayServer
from scripts.triton_local import TritonServer
from tests.support.postgres import job_store_url, postgres_server  # noqa: F401  (fixtures for every test)
from testkit.tiny_doclayout import build_model_dir
from vlmsim import SimulatorProcess

VLM_CONCURRENCY = 48  # room for 8 one-page documents (5 VLM regions each) at once


@pytest.fixture(scope="session")
def tiny_layout_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("layout") / "PP-DocLayoutV3", "PP-DocLayoutV3")


@pytest.fixture(scope="session")
def vlm_server() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(latency=0.02, max_concurrency=64) as sim:
        yield sim


@pytest.fixture()
def vlm(vlm_server: SimulatorProcess) -> Iterator[SimulatorProcess]:
    """The VLM stand-in, with no records and default behaviour for each test."""
    vlm_server.reset()
    vlm_server.configure(latency=0.02, max_concurrency=64, failures=[])
    yield vlm_server
    vlm_server.configure(latency=0.02, max_concurrency=64, failures=[])


def triton_env(layout_dir: Path, vlm: SimulatorProcess) -> dict[str, str]:
    """The settings every test tritonserver runs with."""
    return {
        "HPS_LAYOUT_MODEL_DIR": str(layout_dir),
        "HPS_LAYOUT_MODEL_NAME": "PP-DocLayoutV3",
        "HPS_VLM_URL": vlm.url,
        "HPS_VLM_MAX_CONCURRENCY": str(VLM_CONCURRENCY),
        "HPS_VLM_MAX_RETRIES": "2",
        "HPS_VLM_RETRY_BACKOFF": "0.05",
        "HPS_VLM_TIMEOUT": "30",
        "HPS_RENDER_TIMEOUT": "2",  # a page takes 5-50 ms; the pathological one of a test, 9 s
        "HPS_LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def triton(tiny_layout_dir: Path, vlm_server: SimulatorProcess, tmp_path_factory) -> Iterator[TritonServer]:
    log_path = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    server = TritonServer(env=triton_env(tiny_layout_dir, vlm_server), log_path=log_path, ready_timeout=180)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        print(f"\n--- tritonserver log tail ({log_path}) ---\n{server.log_tail(40)}")


def gateway_env(triton: TritonServer, vlm: SimulatorProcess, **settings: object) -> dict[str, str]:
    """The settings of a test gateway in front of ``triton``; ``settings`` add to them
    (``name=value`` for HPS_NAME, or an upper-case variable's own name)."""
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
    """The shared gateway: gunicorn with 2 uvicorn workers, 2 parsing slots each."""
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    server = GatewayServer(env=gateway_env(triton, vlm_server, max_concurrent_requests=2), workers=2, log_path=log_path)
    with server:
        yield server
    print(f"\n--- gateway log tail ---\n{server.log_tail(30)}")
