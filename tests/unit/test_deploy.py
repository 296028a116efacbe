"""The GPU-host deployment files (compose.yaml, docker/, prepare.sh) agree with the
project: variables documented, compose valid, prepare.sh's plan and prerequisite
messages, and the container's tritonserver flags equal scripts/triton_local.py's."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scripts.triton_local import TritonServer
from tests.unit.test_settings import COMPOSE_SECTION, env_example_sections

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
ENTRYPOINT = ROOT / "docker" / "tritonserver-entrypoint.sh"
TRITON_DOCKERFILE = ROOT / "docker" / "tritonserver.Dockerfile"
BASH = shutil.which("bash")


def compose_variables() -> set[str]:
    text = "\n".join(
        line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}", text))


def test_compose_variables_are_in_env_example():
    sections = env_example_sections()
    documented = {name for pairs in sections.values() for name in pairs}
    names = compose_variables()
    assert {"VLLM_MAX_NUM_SEQS", "GPU_DEVICE_ID", "VLLM_EXTRA_ARGS"} <= names
    assert names - documented == set()
    # compose-only variables are exactly the ones compose.yaml uses and DocParse does not
    compose_only = set(sections[COMPOSE_SECTION])
    assert compose_only <= names


def test_compose_parses_with_the_expected_services():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {"vlm", "tritonserver", "gateway"} <= set(services)
    assert services["tritonserver"]["environment"]["HPS_VLM_URL"] == "http://vlm:8000/v1"
    assert services["gateway"]["environment"]["HPS_TRITON_URL"] == "tritonserver:8001"
    assert services["gateway"]["ports"] == ["8080:8080"]
    assert services["tritonserver"]["depends_on"]["vlm"]["condition"] == "service_healthy"
    assert services["gateway"]["depends_on"]["tritonserver"]["condition"] == "service_healthy"
    for name in ("vlm", "tritonserver"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["device_ids"] == ["${GPU_DEVICE_ID:-0}"]
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert "healthcheck" in service, name
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", services["vlm"]["image"])


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _docker_compose_available(), reason="no docker compose v2 plugin here")
def test_docker_compose_config_accepts_the_file(tmp_path):
    env = {**os.environ, "COMPOSE_PROJECT_NAME": "docparse-test"}
    for profile in ([], ["--profile", "cpu"]):
        result = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), *profile, "config", "--quiet"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr


# --- prepare.sh ----------------------------------------------------------------------

FAKE_DOCKER = """#!/bin/sh
case "$1 $2" in
  "compose version") echo "Docker Compose version v2.29.7" ;;
  "info --format") echo '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{}}' ;;
  *) echo "fake docker: $*" ;;
esac
"""
FAKE_NVIDIA_SMI = """#!/bin/sh
echo "8.6"
"""


def _repo_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("prepare.sh", ".env.example", "compose.yaml"):
        shutil.copy2(ROOT / name, copy / name)
    return copy


def _add_tools(folder: Path, tools: dict[str, str]) -> Path:
    """Write fake executables (name -> shell script) into ``folder``."""
    folder.mkdir(exist_ok=True)
    for name, body in tools.items():
        path = folder / name
        path.write_text(body)
        path.chmod(0o755)
    return folder


def _fake_bin(tmp_path: Path, tools: dict[str, str]) -> Path:
    return _add_tools(tmp_path / "bin", tools)


def _run_prepare(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BASH, "prepare.sh", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_prepare_dry_run_prints_the_plan_and_changes_nothing(tmp_path):
    repo = _repo_copy(tmp_path)
    bin_dir = _fake_bin(tmp_path, {"docker": FAKE_DOCKER, "nvidia-smi": FAKE_NVIDIA_SMI})
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = _run_prepare(repo, "--dry-run", "--skip-download", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would: cp .env.example .env" in result.stdout
    assert "would: docker compose build" in result.stdout
    assert not (repo / ".env").exists()
    assert not (repo / "models").exists()


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_prepare_dry_run_plans_the_downloads(tmp_path):
    repo = _repo_copy(tmp_path)
    bin_dir = _fake_bin(tmp_path, {"docker": FAKE_DOCKER, "nvidia-smi": FAKE_NVIDIA_SMI})
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = _run_prepare(repo, "--dry-run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "download zai-org/GLM-OCR --local-dir models/GLM-OCR" in result.stdout
    assert "PP-DocLayoutV3_infer.tar" in result.stdout
    assert not (repo / "models").exists()


def _bare_path(tmp_path: Path) -> Path:
    """A folder with links to bash and the coreutils prepare.sh uses, and no docker."""
    bare = tmp_path / "bare"
    bare.mkdir()
    for tool in ("bash", "sh", "cat", "dirname", "printf", "head", "tr", "awk", "grep", "cp",
                 "mkdir", "env"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    return bare


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_prepare_names_a_missing_docker(tmp_path):
    repo = _repo_copy(tmp_path)
    bare = _bare_path(tmp_path)
    result = _run_prepare(repo, "--dry-run", env={"PATH": str(bare), "HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "docker is not installed" in result.stderr
    assert not (repo / ".env").exists()


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_prepare_names_a_missing_nvidia_driver(tmp_path):
    repo = _repo_copy(tmp_path)
    bare = _bare_path(tmp_path)
    _add_tools(bare, {"docker": FAKE_DOCKER})
    env = {"PATH": str(bare), "HOME": str(tmp_path)}
    result = _run_prepare(repo, "--dry-run", env=env)
    assert result.returncode == 1
    assert "nvidia-smi" in result.stderr
    cpu = _run_prepare(repo, "--dry-run", "--cpu", env=env)
    assert cpu.returncode == 0, cpu.stdout + cpu.stderr
    assert "would: docker compose --profile cpu build" in cpu.stdout


# --- the container's tritonserver flags ------------------------------------------------

SHARED_FLAGS = ("--backend-config", "--exit-on-error", "--exit-timeout-secs")


def _flags(args: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for arg in args:
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            pairs.append((name, value))
    return pairs


def entrypoint_args() -> list[str]:
    text = ENTRYPOINT.read_text()
    command = re.search(r"^exec tritonserver(.*?)\"\$@\"", text, flags=re.M | re.S)
    assert command, "the entrypoint must exec tritonserver ... \"$@\""
    return shlex.split(command.group(1).replace("\\\n", " "))


def test_entrypoint_flags_match_triton_local():
    local = [a for a in TritonServer(model_repository=Path("/m")).command(Path("/b"))[1:]]
    container = entrypoint_args()
    shared = lambda args: sorted(p for p in _flags(args) if p[0] in SHARED_FLAGS)  # noqa: E731
    assert shared(container) == shared(local)
    assert dict(_flags(container))["--model-config-name"] == "${MODEL_CONFIG_NAME}"
    assert re.search(r'MODEL_CONFIG_NAME="\$\{TRITON_MODEL_CONFIG_NAME:-gpu\}"', ENTRYPOINT.read_text())
    for name, port in (("http", "8000"), ("grpc", "8001"), ("metrics", "8002")):
        assert dict(_flags(container))[f"--{name}-address"] == "0.0.0.0"
        assert dict(_flags(container))[f"--{name}-port"] == port


def test_container_model_repository_is_ours():
    """The entrypoint serves the folder the Dockerfile copies model_repository/ into, and
    the gpu config it selects exists."""
    text = ENTRYPOINT.read_text()
    repository = re.search(r'MODEL_REPOSITORY="\$\{MODEL_REPOSITORY:-([^}]+)\}"', text).group(1)
    dockerfile = TRITON_DOCKERFILE.read_text()
    workdir = re.search(r"^WORKDIR (\S+)", dockerfile, flags=re.M).group(1)
    assert re.search(r"^COPY model_repository \./model_repository$", dockerfile, flags=re.M)
    assert repository == f"{workdir}/model_repository"
    assert "tritonserver-entrypoint.sh" in dockerfile
    assert (ROOT / "model_repository" / "layout_detection" / "configs" / "gpu.pbtxt").exists()
    assert re.search(r"^FROM nvcr\.io/nvidia/tritonserver:24\.10-py3$", dockerfile, flags=re.M)
