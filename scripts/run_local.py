"""The local stack in one command (``make run``): the real tritonserver with the CPU
engines, then the gateway on 127.0.0.1:8080, until Ctrl-C.

    python -m scripts.run_local [--port 8080] [--triton-grpc-port 0] [--workers 2]

HPS_LAYOUT_BACKEND and HPS_RECOGNIZER default to ``cpu`` (the engines that ship in
wheels) unless the environment sets them; every other HPS_* variable is passed on.
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
import time

from docparse.settings import LayoutSettings, RecognitionSettings, Settings, SettingsError
from scripts.gateway_local import GatewayServer
from scripts.processes import LaunchError, describe_exit, http_ok, wait_until_ready
from scripts.supervisor import Supervisor
from scripts.triton_local import TritonServer

DEFAULT_PORT = 8080
READY_TIMEOUT = 300.0  # Triton loads the CPU models; the first run may be slow
GATEWAY_READY_TIMEOUT = 90.0


class Stopped(Exception):
    """SIGINT or SIGTERM arrived while the stack was starting."""


def port_problem(port: int, host: str = "127.0.0.1") -> str | None:
    """Why ``port`` cannot be used on ``host`` now, or None when it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} is in use; set HPS_PORT=<another port> (or --port)"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def local_settings() -> Settings:
    """The settings of the environment, with the CPU engines unless it chose others."""
    settings = Settings.load()
    layout, recognition = settings.layout, settings.recognition
    if "backend" not in layout.model_fields_set:
        layout = layout.model_copy(update={"backend": "cpu"})
    if "engine" not in recognition.model_fields_set:
        recognition = recognition.model_copy(update={"engine": "cpu"})
    return settings.model_copy(update={"layout": layout, "recognition": recognition})


def engine_env(settings: Settings) -> dict[str, str]:
    """The engine variables the child processes get."""
    return {
        LayoutSettings.env_name("backend"): settings.layout.backend,
        RecognitionSettings.env_name("engine"): settings.recognition.engine,
    }


def wait_ready(url: str, gateway: GatewayServer, timeout: float) -> None:
    """Until the whole stack answers /health/ready (Triton, its models, the engines)."""
    assert gateway.process is not None
    wait_until_ready(
        f"the stack behind {url}/health/ready",
        lambda: http_ok(f"{url}/health/ready", timeout=5),
        gateway.process,
        timeout,
        gateway.log_path,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="gateway port (default: HPS_PORT, 8080)")
    parser.add_argument(
        "--triton-grpc-port", type=int, default=0, help="Triton's gRPC port (0 = a free one)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    return parser.parse_args(argv)


def checked_port(args: argparse.Namespace, settings: Settings) -> int:
    """The gateway's port, or ``LaunchError`` saying why it cannot be used."""
    port = settings.gateway.port if args.port is None else args.port
    if not 1 <= port <= 65535:
        raise LaunchError(f"port {port} is not between 1 and 65535")
    problem = port_problem(port)
    if problem:
        raise LaunchError(problem)
    return port


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = local_settings()
        port = checked_port(args, settings)
    except (SettingsError, LaunchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = {"starting": True, "stop": False}

    def on_signal(signum: int, _frame: object) -> None:
        state["stop"] = True
        if state["starting"]:
            raise Stopped()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    env = engine_env(settings)
    triton = TritonServer(grpc_port=args.triton_grpc_port, env=env, ready_timeout=READY_TIMEOUT)
    gateway = GatewayServer(
        env={**env, "HPS_HOST": "127.0.0.1", "HPS_PORT": str(port)},
        port=port,
        workers=args.workers,
        ready_timeout=GATEWAY_READY_TIMEOUT,
    )
    try:
        try:
            start_stack(triton, gateway, settings)
        except LaunchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except Stopped:
            print("stopped before the stack was ready", file=sys.stderr)
            return 0
        state["starting"] = False
        return serve(triton, gateway, port, state)
    finally:
        state["starting"] = False  # no Stopped raised while cleaning up
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        gateway.stop()
        triton.stop()


def start_stack(triton: TritonServer, gateway: GatewayServer, settings: Settings) -> None:
    """tritonserver, then the gateway pointed at it, until /health/ready answers."""
    print(
        f"starting tritonserver (layout {settings.layout.backend}, "
        f"recognizer {settings.recognition.engine}); this can take a minute...",
        file=sys.stderr,
        flush=True,
    )
    triton.start()
    print(f"tritonserver ready on grpc {triton.grpc_url} (log {triton.log_path})", file=sys.stderr, flush=True)
    gateway.env["HPS_TRITON_URL"] = triton.grpc_url
    gateway.start()
    wait_ready(gateway.url, gateway, GATEWAY_READY_TIMEOUT)


def serve(triton: TritonServer, gateway: GatewayServer, port: int, state: dict[str, bool]) -> int:
    """Until Ctrl-C (0), the gateway exits (1), or tritonserver died more often than
    the restart policy allows (1). A tritonserver that dies is restarted on the same
    ports: the gateway answers 503 meanwhile and recovers by itself."""
    if state["stop"]:
        return 0
    print_ready(triton, gateway, port)
    supervisor = Supervisor(triton, "tritonserver")
    while not state["stop"]:
        if gateway.process is not None and gateway.process.poll() is not None:
            print(
                f"error: the gateway exited with {describe_exit(gateway.process.returncode)}. "
                f"Log tail:\n{gateway.log_tail()}",
                file=sys.stderr,
            )
            return 1
        state["starting"] = True  # Ctrl-C during a restart ends it at once
        try:
            alive = supervisor.keep_alive()
        except Stopped:
            break
        finally:
            state["starting"] = False
        if not alive:
            print(f"error: {supervisor.gave_up}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print("stopping...", file=sys.stderr, flush=True)
    return 0


def print_ready(triton: TritonServer, gateway: GatewayServer, port: int) -> None:
    url = gateway.url
    print(
        f"DocParse HPS is ready at {url}\n"
        f"  API docs:  {url}/docs\n"
        f"  try:       curl -s {url}/layout-parsing -F file=@your.pdf\n"
        f"  or:        .venv/bin/docparse parse your.pdf"
        + ("" if port == DEFAULT_PORT else f" --url {url}")
        + f"\n  logs:      {triton.log_path} and {gateway.log_path}\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
