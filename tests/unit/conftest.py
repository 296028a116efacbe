"""Unit-test fixtures: a VLM stand-in with no latency, one per test module."""

from __future__ import annotations

from typing import Iterator

import pytest

from vlmsim import SimulatorProcess


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(latency=0.0, max_concurrency=64) as sim:
        yield sim


@pytest.fixture()
def sim(server: SimulatorProcess) -> SimulatorProcess:
    server.configure(latency=0.0, max_concurrency=64, failures=[], scheduling_policy="fcfs")
    server.reset()
    return server
