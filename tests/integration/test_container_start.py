"""The tritonserver image's start command, run outside docker against the local server.

docker/tritonserver-entrypoint.sh is what the container runs. Here it runs as it is, with
a ``tritonserver`` on PATH that is the nvidia-pytriton wheel's binary plus the backend
directory the wheel lacks, and with the container's environment: .env.example's values
and compose.yaml's ``tritonserver`` environment. Only what cannot be the same on a machine
without a GPU or a VLM is changed (listed in ``NOT_HERE``). The same model repository,
flags and config files must load and parse a document.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
import yaml

from docparse.client import TritonLayoutClient, request_for
from scripts.processes import free_port, http_ok, launch, log_tail, stop_group
from scripts.triton_local import prepare_backend_dir, pytriton_dir, stub_environment
from testkit.documents import sample_pdf
from tests.unit.test_settings import env_example, env_example_sections

pytestmark = pytest.mark.triton

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "tritonserver-entrypoint.sh"


def container_environment() -> dict[str, str]:
    """What the compose service's container sees: .env (from .env.example), then the
    service's own ``environment`` on top, as docker compose merges them, with its
    ``${VAR:-default}`` references filled from .env.example."""
    service = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["tritonserver"]
    dotenv = {name: value for pairs in env_example_sections().values() for name, value in pairs.items()}

    def interpolate(value: object) -> str:
        return re.sub(
            r"\$\{(\w+):-([^}]*)\}", lambda m: dotenv.get(m.group(1)) or m.group(2), str(value)
        )

    return {**env_example(), **{key: interpolate(value) for key, value in service["environment"].items()}}


def test_the_image_start_command_serves_our_repository(tmp_path, tiny_layout_dir, vlm_server):
    container_env = container_environment()
    assert container_env["HPS_LAYOUT_DEVICE"] == "gpu"
    assert container_env["TRITON_MODEL_CONFIG_NAME"] == "gpu"
    not_here = {
        "HPS_LAYOUT_MODEL_DIR": str(tiny_layout_dir),  # the stand-in weights
        "HPS_LAYOUT_DEVICE": "cpu",  # no GPU
        "HPS_VLM_URL": vlm_server.url,  # the VLM stand-in
        # configs/gpu.pbtxt asks for KIND_GPU; a name with no configs/ file makes Triton
        # load config.pbtxt, which differs from it only there (test_gpu_config_...).
        "TRITON_MODEL_CONFIG_NAME": "no-gpu-here",
        "MODEL_REPOSITORY": str(ROOT / "model_repository"),  # the image's copy of it
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    backend_dir = prepare_backend_dir(tmp_path / "backends")
    wrapper = bin_dir / "tritonserver"
    wrapper.write_text(
        f'#!/bin/sh\nexec "{pytriton_dir() / "bin" / "tritonserver"}" '
        f'--backend-directory="{backend_dir}" "$@"\n'
    )
    wrapper.chmod(0o755)
    env = stub_environment()
    env.update(container_env)
    env.update(not_here)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"

    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    # The image listens on 0.0.0.0:8000-8002; here loopback and free ports. Triton keeps
    # the last value of a repeated flag, so these arguments, appended by the entrypoint's
    # "$@", win.
    loopback = [
        "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
        f"--http-port={http_port}", f"--grpc-port={grpc_port}", f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
    ]
    log_path = tmp_path / "tritonserver.log"
    process = launch(
        "the image's tritonserver entrypoint",
        ["sh", str(ENTRYPOINT), *loopback],
        log_path=log_path,
        ready=lambda: http_ok(f"http://127.0.0.1:{http_port}/v2/health/ready"),
        ready_timeout=180,
        env=env,
        cwd=tmp_path,
    )
    try:
        index_request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v2/repository/index", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(index_request, timeout=10) as response:
            models = {entry["name"]: entry.get("state") for entry in json.load(response)}
        assert models == {
            "pdf_render": "READY",
            "layout_detection": "READY",
            "layout-parsing-stream": "READY",
            "layout-parsing": "READY",
            "restructure-pages": "READY",
        }
        envelope = TritonLayoutClient(f"127.0.0.1:{grpc_port}", timeout=120).parse(
            request_for(sample_pdf(pages=1), logId="entrypoint")
        )
        assert envelope.logId == "entrypoint"
        assert "text" in envelope.result.layoutParsingResults[0].markdown.text
    finally:
        stop_group(process, 30)
        print(f"\n--- entrypoint tritonserver log tail ---\n{log_tail(log_path, 30)}")


def test_gpu_config_differs_from_the_cpu_config_only_in_device_and_batch():
    def meaningful(path: Path) -> set[str]:
        lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
        return {line for line in lines if line}

    folder = ROOT / "model_repository" / "layout_detection"
    cpu, gpu = meaningful(folder / "config.pbtxt"), meaningful(folder / "configs" / "gpu.pbtxt")
    assert cpu - gpu == {"max_batch_size: 8", "instance_group [ { count: 1, kind: KIND_CPU } ]"}
    assert gpu - cpu == {"max_batch_size: 16", "instance_group [ { count: 1, kind: KIND_GPU } ]"}
