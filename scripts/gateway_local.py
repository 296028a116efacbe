"""Run the gateway under gunicorn (uvicorn workers) on 127.0.0.1, wait for /health.

Used by the end-to-end tests and ``make run``. Settings come from the environment
(``env`` adds to it), exactly as in production: ``gunicorn -c gateway/gunicorn.conf.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scripts.processes import ChildServer, free_port, http_ok, launch

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class GatewayServer(ChildServer):
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    workers: int = 2
    log_path: Path | None = None
    ready_timeout: float = 60.0
    process: subprocess.Popen | None = None
    STOP_TIMEOUT = 40.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "GatewayServer":
        self.port = self.port or free_port()
        env = dict(os.environ)
        env.update({"HPS_HOST": "127.0.0.1", "HPS_PORT": str(self.port), "UVICORN_WORKERS": str(self.workers)})
        env.update(self.env)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py makes a fresh one
        if self.log_path is None:
            self.log_path = Path(tempfile.mkdtemp(prefix="docparse-gateway-")) / "gateway.log"
        elif "HPS_DATA_DIR" not in self.env:
            # Tests and benchmarks give a log path in their own folder: their job store
            # goes beside it, never into the repository's data/ (make run's).
            env["HPS_DATA_DIR"] = str(self.log_path.parent / "data")
        self.process = launch(
            "the gateway",
            [sys.executable, "-m", "gunicorn", "-c", str(REPO_ROOT / "gateway" / "gunicorn.conf.py")],
            log_path=self.log_path,
            ready=lambda: http_ok(f"{self.url}/health"),
            port=self.port,  # held by the gunicorn master itself
            ready_timeout=self.ready_timeout,
            env=env,
            cwd=REPO_ROOT,
        )
        return self
