"""Run the real tritonserver from the nvidia-pytriton wheel on our model repository.

Why this exists: the wheel ships the server binary and the Python backend, but its
backends folder has no stub, and the stub needs the right libpython and virtualenv
(see README, "Troubleshooting"). This module makes a backend directory with links to the
pieces, sets PATH and LD_LIBRARY_PATH, starts the server on the given (or free) ports,
and waits for readiness with a time limit, failing loudly with the log tail.

Used by the test fixtures, by ``make run`` and as a command:
    python -m scripts.triton_local --model-repository model_repository
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.processes import ChildServer, LaunchError, free_port, http_ok, launch, stop_group

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_REPOSITORY = REPO_ROOT / "model_repository"
SHM_DIR = Path("/dev/shm")


class TritonLaunchError(LaunchError):
    """tritonserver could not be started or did not become ready."""


def pytriton_dir() -> Path:
    """The tritonserver folder inside the installed nvidia-pytriton wheel."""
    try:
        import pytriton
    except ImportError as exc:  # pragma: no cover - install problem
        raise TritonLaunchError(
            "nvidia-pytriton is not installed: run `make install` (it carries tritonserver)"
        ) from exc
    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def prepare_backend_dir(target: Path) -> Path:
    """Make ``target/python`` hold the Python backend and the stub for this Python.

    The wheel's backends folder lacks the stub; tritonserver looks for it next to
    ``libtriton_python.so``.
    """
    root = pytriton_dir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    sources = {
        "libtriton_python.so": root / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": root
        / "backends"
        / "python"
        / "triton_python_backend_utils.py",
        "triton_python_backend_stub": root
        / "python_backend_stubs"
        / version
        / "triton_python_backend_stub",
    }
    python_dir = target / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        if not source.exists():
            raise TritonLaunchError(f"{source} is missing from the nvidia-pytriton wheel")
        link = python_dir / name
        if link.is_symlink() or link.exists():
            if link.resolve() == source.resolve():
                continue
            link.unlink()
        link.symlink_to(source)
    return target


def stub_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """PATH and LD_LIBRARY_PATH so the stub embeds this interpreter's libpython and
    imports this virtualenv's packages (it finds the venv through ``python3`` on PATH)."""
    env = dict(os.environ if base is None else base)
    venv_bin = str(Path(sys.executable).parent)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in [libdir, env.get("LD_LIBRARY_PATH", "")] if p
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def check_stub_links(backend_dir: Path, env: dict[str, str]) -> None:
    """A stub that cannot find libpython makes model loading hang: check first."""
    stub = backend_dir / "python" / "triton_python_backend_stub"
    try:
        out = subprocess.run(
            ["ldd", str(stub.resolve())], env=env, capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return  # no ldd: nothing to check with
    missing = [
        line.strip()
        for line in out.splitlines()
        if "not found" in line and "libpython" in line
    ]
    if missing:
        raise TritonLaunchError(
            "the Triton Python stub cannot find its libraries: "
            + "; ".join(missing)
            + ". Use a Python built with --enable-shared (LIBDIR must hold libpython)."
        )


@dataclass
class TritonServer(ChildServer):
    """A tritonserver process on 127.0.0.1. Use as a context manager or call stop()."""

    model_repository: Path = DEFAULT_MODEL_REPOSITORY
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    log_path: Path | None = None
    ready_timeout: float = 120.0
    process: subprocess.Popen | None = None
    _workdir: Path | None = None
    # The Python backend names each stub's shared-memory region with this prefix. One of
    # our own per server lets stop() remove the regions a killed server leaves in
    # /dev/shm: they are RAM, each grows to hundreds of MiB under load, and left behind
    # they filled this machine's memory over a day of test and benchmark runs.
    shm_prefix: str = field(default_factory=lambda: f"docparse_{secrets.token_hex(6)}_")

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self, backend_dir: Path) -> list[str]:
        return [
            str(pytriton_dir() / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_dir}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--exit-on-error=true",
            "--exit-timeout-secs=30",
            # Accept the gateway's gRPC keepalive pings (every 30 s): with Triton's
            # defaults (5 min between pings without data, 2 strikes) it answers GOAWAY
            # "too_many_pings" and the streams in flight fail.
            "--grpc-keepalive-permit-without-calls=1",
            "--grpc-http2-min-recv-ping-interval-without-data=10000",
            "--grpc-http2-max-ping-strikes=0",
            "--backend-config=python,shm-default-byte-size=16777216",
            "--backend-config=python,shm-growth-byte-size=16777216",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            *self.extra_args,
        ]

    def start(self) -> "TritonServer":
        self.http_port = self.http_port or free_port()
        self.grpc_port = self.grpc_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="docparse-triton-"))
        backend_dir = prepare_backend_dir(self._workdir / "backends")
        env = stub_environment()
        env.update(self.env)
        check_stub_links(backend_dir, env)
        if self.log_path is None:
            self.log_path = self._workdir / "tritonserver.log"
        try:
            self.process = launch(
                "tritonserver",
                self.command(backend_dir),
                log_path=self.log_path,
                ready=self.is_ready,
                ready_timeout=self.ready_timeout,
                env=env,
                append=self.process is not None,  # a restart: keep why the last run died
                port=self.http_port,
            )
        except LaunchError as exc:
            raise TritonLaunchError(str(exc)) from None
        return self

    def is_ready(self) -> bool:
        return http_ok(f"http://{self.http_url}/v2/health/ready")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (models' finalize runs), then SIGKILL the group past ``timeout``; then
        remove the shared memory a killed server could not. On a server that died by
        itself: SIGKILL the stubs it left, remove its shared memory."""
        stop_group(self.process, timeout)
        if self._workdir is not None:
            shutil.rmtree(self._workdir / "backends", ignore_errors=True)
        for region in self.shm_regions():
            region.unlink(missing_ok=True)

    def shm_regions(self) -> list[Path]:
        """This server's Python-backend shared-memory regions in /dev/shm."""
        return sorted(SHM_DIR.glob(f"{self.shm_prefix}*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="seconds")
    parser.add_argument("--log-file", type=Path, default=None)
    parser.add_argument("extra", nargs="*", help="more tritonserver flags, after --")
    args = parser.parse_args(argv)
    server = TritonServer(
        model_repository=args.model_repository.resolve(),
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        extra_args=args.extra,
        log_path=args.log_file,
        ready_timeout=args.ready_timeout,
    )
    stop = {"now": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.start()
    except TritonLaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"tritonserver ready: http {server.http_url}, grpc {server.grpc_url}, "
        f"metrics {server.metrics_url}, log {server.log_path}",
        flush=True,
    )
    try:
        while not stop["now"] and server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
    finally:
        server.stop()
    code = server.process.returncode if server.process else 1
    return 0 if stop["now"] else (code or 1)


if __name__ == "__main__":
    sys.exit(main())
