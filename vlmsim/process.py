"""The stand-in as a child process, for tests and benchmarks: started on a free port,
driven through its ``/_sim/*`` endpoints with the standard library only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.processes import ChildServer, free_port, http_ok, launch
from vlmsim.config import option

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class SimulatorProcess(ChildServer):
    """Runs ``python -m vlmsim`` and talks to its control endpoints with the
    standard library only (urllib), so that using it needs no HTTP client package.
    ``profile`` (or ``timing="vllm"``) selects continuous batching; ``batching`` overrides
    its numbers by name (``vlmsim.profiles.BATCHING_FIELDS``)."""

    latency: float = 0.0
    max_concurrency: int = 64
    model: str = "glm-ocr"
    host: str = "127.0.0.1"
    port: int = 0
    latency_per_pixel: float = 0.0
    timing: str | None = None
    profile: str | None = None
    seed: int | None = None
    batching: dict[str, float] = field(default_factory=dict)
    ready_timeout: float = 30.0
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    STOP_TIMEOUT = 10.0

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @property
    def root(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL: clients append ``/chat/completions``."""
        return f"{self.root}/v1"

    def command(self) -> list[str]:
        command = [
            sys.executable, "-m", "vlmsim",
            "--host", self.host, "--port", str(self.port), "--model", self.model,
            "--latency", str(self.latency), "--latency-per-pixel", str(self.latency_per_pixel),
            "--max-concurrency", str(self.max_concurrency),
        ]
        chosen = {"timing": self.timing, "profile": self.profile, "seed": self.seed, **self.batching}
        for name, value in chosen.items():
            if value is not None:
                command += [option(name), str(value)]
        return command

    def start(self) -> "SimulatorProcess":
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="vlm-simulator-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.process = launch(
            "the VLM simulator",
            self.command(),
            log_path=self.log_path,
            ready=lambda: http_ok(f"{self.root}/health"),
            ready_timeout=self.ready_timeout,
            cwd=REPO_ROOT,
            port=self.port,
        )
        return self

    def _control(self, path: str, payload: dict | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.root}{path}", data=data, method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"the VLM simulator refused {path}: {exc.code} {exc.read()[:300]!r}") from None

    def calls(self) -> list[dict]:
        return self._control("/_sim/calls")

    def stats(self) -> dict:
        return self._control("/_sim/stats")

    def reset(self) -> dict:
        return self._control("/_sim/reset", {})

    def configure(self, **changes: Any) -> dict:
        """Any of CONFIG_FIELDS: latency, latency_per_pixel, max_concurrency (alias
        max_num_seqs), failures (list of dicts), timing, profile, seed, BATCHING_FIELDS."""
        return self._control("/_sim/config", changes)
