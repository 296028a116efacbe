"""The GPU-host deployment files (compose.yaml, docker/, prepare.sh) agree with the
project: variables documented, compose valid, prepare.sh's plan and prerequisite
messages, and the container's tritonserver flags equal scripts/triton_local.py's."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from docparse.settings import Settings
from scripts.triton_local import TritonServer
from tests.unit.test_settings import COMPOSE_SECTION, env_example, env_example_sections

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
    # compose-only variables are the ones compose.yaml uses and DocParse does not, plus
    # COMPOSE_PROFILES, which docker compose itself reads from .env
    compose_only = set(sections[COMPOSE_SECTION])
    assert compose_only - {"COMPOSE_PROFILES"} <= names


def compose_spec() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_service_environment_variable_is_a_setting(monkeypatch):
    """A misspelt HPS_* name in compose.yaml would be silently ignored by the container,
    and a value the settings refuse would stop it."""
    known = set(Settings.env_names().values())
    for name, service in compose_spec()["services"].items():
        environment = service.get("environment", {})
        ours = {key for key in environment if key.startswith("HPS_") or key in ("GPU_DEVICE_ID", "UVICORN_WORKERS")}
        assert ours - known == set(), name
        with monkeypatch.context() as env:
            for key in ours:
                value = str(environment[key])
                if "${" not in value:  # compose substitutes these from .env
                    env.setenv(key, value)
            Settings.load()


def test_compose_profiles_pick_one_whole_stack():
    spec = compose_spec()
    services = spec["services"]
    by_profile: dict[str, set[str]] = {}
    for name, service in services.items():
        assert len(service.get("profiles", [])) == 1, f"{name} must be in exactly one profile"
        by_profile.setdefault(service["profiles"][0], set()).add(name)
    assert by_profile == {
        "gpu": {"vlm", "tritonserver", "gateway"},
        "cpu": {"tritonserver-cpu", "gateway-cpu"},
        "second-vlm": {"vlm-second"},  # an addition to gpu, not a stack of its own
    }
    assert env_example_sections()[COMPOSE_SECTION]["COMPOSE_PROFILES"] == "gpu"


def test_compose_gpu_stack_is_wired_in_order():
    services = compose_spec()["services"]
    assert services["tritonserver"]["environment"]["HPS_VLM_URL"] == "http://vlm:8000/v1"
    assert services["gateway"]["environment"]["HPS_VLM_URL"] == "http://vlm:8000/v1"
    assert services["gateway"]["environment"]["HPS_TRITON_URL"] == "tritonserver:8001"
    assert services["gateway-cpu"]["environment"]["HPS_TRITON_URL"] == "tritonserver-cpu:8001"
    assert services["gateway-cpu"]["environment"]["HPS_RECOGNIZER"] == "cpu"
    for gateway in ("gateway", "gateway-cpu"):
        assert services[gateway]["ports"] == ["8080:8080"]
    assert services["tritonserver"]["depends_on"]["vlm"]["condition"] == "service_healthy"
    assert services["gateway"]["depends_on"]["tritonserver"]["condition"] == "service_healthy"
    assert services["gateway-cpu"]["depends_on"]["tritonserver-cpu"]["condition"] == "service_healthy"
    for name in ("vlm", "tritonserver"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["device_ids"] == ["${GPU_DEVICE_ID:-0}"]
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["start_period"], name
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", services["vlm"]["image"])


def test_a_second_vlm_starts_after_the_first_and_before_triton():
    """Two vLLMs on one GPU: the second starts once the first is healthy (each measures
    the free memory when it starts), Triton once both are; its memory fraction and
    decode slots come from .env."""
    services = compose_spec()["services"]
    second = services["vlm-second"]
    assert second["depends_on"]["vlm"]["condition"] == "service_healthy"
    assert services["tritonserver"]["depends_on"]["vlm-second"] == {"condition": "service_healthy", "required": False}
    for variable in ("VLLM_SECOND_GPU_MEMORY_UTILIZATION", "VLLM_SECOND_MAX_NUM_SEQS"):
        assert f"${{{variable}:-" in second["command"]
    assert second["image"] == services["vlm"]["image"]


def test_compose_restarts_a_dead_tritonserver_and_the_gateway_rides_it_out():
    """A tritonserver that exits is started again (docker's backoff; a PID 1 that reaps
    the stubs' watchdogs); the gateway's health check is liveness and compose never
    restarts it with Triton: it answers 503 meanwhile and reconnects by itself."""
    services = compose_spec()["services"]
    for triton, gateway in (("tritonserver", "gateway"), ("tritonserver-cpu", "gateway-cpu")):
        assert services[triton]["restart"] == "unless-stopped", triton
        assert services[triton]["init"] is True, triton
        assert "/v2/health/ready'" in " ".join(services[triton]["healthcheck"]["test"]), triton
        assert "/health'" in " ".join(services[gateway]["healthcheck"]["test"]), gateway
        assert services[gateway]["restart"] == "unless-stopped", gateway
        assert not services[gateway]["depends_on"][triton].get("restart", False), gateway


def test_compose_serves_the_weights_prepare_sh_downloads():
    """The model folders mounted into the containers are the ones prepare.sh fills, so
    nothing is downloaded when the containers start."""
    script = (ROOT / "prepare.sh").read_text()
    vlm_dir = re.search(r"^VLM_DIR=(\S+)$", script, flags=re.M).group(1)
    layout_dir = re.search(r'^LAYOUT_DIR="models/\$\{LAYOUT_MODEL\}"$', script, flags=re.M)
    layout_model = re.search(r"^LAYOUT_MODEL=(\S+)$", script, flags=re.M).group(1)
    assert layout_dir, "prepare.sh must download the layout model into models/<name>"
    services = compose_spec()["services"]
    assert f"./{vlm_dir}:/models/GLM-OCR:ro" in services["vlm"]["volumes"]
    assert services["vlm"]["command"].split()[0] == "/models/GLM-OCR"
    assert services["vlm"]["environment"]["HF_HUB_OFFLINE"] == "1"
    triton = services["tritonserver"]
    assert f"./models/{layout_model}:/models/{layout_model}:ro" in triton["volumes"]
    assert triton["environment"]["HPS_LAYOUT_MODEL_DIR"] == f"/models/{layout_model}"
    assert env_example()["HPS_LAYOUT_MODEL_NAME"] == layout_model


def run_tool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run a linter installed in this virtualenv (make install puts them there)."""
    tool = Path(sys.executable).parent / args[0]
    return subprocess.run([str(tool), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_compose_file_validates_against_the_compose_specification():
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_validation_catches_a_wrong_field(tmp_path):
    broken = compose_spec()
    broken["services"]["gateway"]["healthcheck"]["start-period"] = "30s"  # "start_period"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(path))
    assert result.returncode != 0
    assert "start-period" in result.stdout + result.stderr


DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
SHELL_SCRIPTS = [ROOT / "prepare.sh", ENTRYPOINT, ROOT / "scripts" / "tritonserver-local", ROOT / ".ci" / "run",
                 ROOT / "scripts" / "vendor_web.sh"]


def test_dockerfiles_lint_clean():
    assert len(DOCKERFILES) == 3
    result = run_tool("hadolint", "--no-color", "--failure-threshold", "info", *map(str, DOCKERFILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_pass_shellcheck():
    result = run_tool("shellcheck", *map(str, SHELL_SCRIPTS))
    assert result.returncode == 0, result.stdout + result.stderr


TRITON_SIDE = [ROOT / "docparse", ROOT / "docparse_triton", ROOT / "model_repository"]


def test_code_in_the_triton_image_runs_on_its_python_3_10(tmp_path):
    """The NGC image's Python is 3.10 (its Python backend stub is built for it); the
    code it loads must use no newer feature. vermin must also catch one when there is."""
    result = run_tool("vermin", "-t=3.10-", "--no-tips", "--violations", *map(str, TRITON_SIDE))
    assert result.returncode == 0, result.stdout + result.stderr
    newer = tmp_path / "newer.py"
    newer.write_text("import asyncio\n\nasync def f():\n    async with asyncio.timeout(1):\n        pass\n")
    caught = run_tool("vermin", "-t=3.10-", "--no-tips", "--violations", str(newer))
    assert caught.returncode != 0 and "asyncio.timeout" in caught.stdout


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
    assert "would: sed -i s/^COMPOSE_PROFILES=.*/COMPOSE_PROFILES=gpu/ .env" in result.stdout
    assert "would: docker compose --profile gpu build" in result.stdout
    assert "the gpu stack will not start without them" in result.stderr
    assert not (repo / ".env").exists()
    assert not (repo / "models").exists()


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_prepare_writes_the_cpu_profile_into_a_new_env_and_never_overwrites(tmp_path):
    repo = _repo_copy(tmp_path)
    bin_dir = _fake_bin(tmp_path, {"docker": FAKE_DOCKER})
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = _run_prepare(repo, "--cpu", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    written = (repo / ".env").read_text()
    assert "\nCOMPOSE_PROFILES=cpu\n" in written
    assert written.replace("COMPOSE_PROFILES=cpu", "COMPOSE_PROFILES=gpu") == (repo / ".env.example").read_text()
    assert "fake docker: compose --profile cpu build" in result.stdout
    # a second run, for the GPU, keeps the operator's .env and says what to change
    (repo / ".env").write_text(written + "HPS_LOG_LEVEL=DEBUG\n")
    again = _run_prepare(repo, "--skip-download", env={**env, "PATH": f"{_add_tools(bin_dir, {'nvidia-smi': FAKE_NVIDIA_SMI})}{os.pathsep}{os.environ['PATH']}"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert (repo / ".env").read_text().endswith("HPS_LOG_LEVEL=DEBUG\n")
    assert "set COMPOSE_PROFILES=gpu there" in again.stderr


FAKE_TOOL = """#!/bin/sh
echo "fake $0: $*"
"""


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_prepare_dry_run_plans_the_downloads(tmp_path):
    repo = _repo_copy(tmp_path)
    bin_dir = _fake_bin(tmp_path, {"docker": FAKE_DOCKER, "nvidia-smi": FAKE_NVIDIA_SMI,
                                   "huggingface-cli": FAKE_TOOL, "curl": FAKE_TOOL})
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = _run_prepare(repo, "--dry-run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr  # nothing missing
    assert "missing" not in result.stderr
    assert "download zai-org/GLM-OCR --local-dir models/GLM-OCR" in result.stdout
    assert "PP-DocLayoutV3_infer.tar" in result.stdout
    assert not (repo / "models").exists()


def _bare_path(tmp_path: Path) -> Path:
    """A folder with links to bash and the coreutils prepare.sh uses, and no docker."""
    bare = tmp_path / "bare"
    bare.mkdir()
    for tool in ("bash", "sh", "cat", "dirname", "printf", "head", "tail", "tr", "awk", "grep",
                 "cp", "mkdir", "env", "sed", "df", "wc", "sort"):
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
    assert "COMPOSE_PROFILES=cpu" in cpu.stdout


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_prepare_dry_run_on_a_bare_host_prints_the_whole_plan_and_every_missing_piece(tmp_path):
    """No docker, no compose, no driver, no toolkit, no downloader: each is named, the plan
    is still printed to its end, and the exit code says something is missing."""
    repo = _repo_copy(tmp_path)
    bare = _bare_path(tmp_path)
    result = _run_prepare(repo, "--dry-run", env={"PATH": str(bare), "HOME": str(tmp_path)})
    assert result.returncode == 1, result.stdout + result.stderr
    for said in ("missing: docker is not installed", "missing: docker compose (v2) is missing",
                 "missing: the NVIDIA driver: nvidia-smi is not found", "missing: the NVIDIA Container Toolkit is missing",
                 "missing: huggingface-cli is missing", "missing: curl or wget is needed"):
        assert said in result.stderr, said
    assert result.stderr.rstrip().endswith(
        "dry run: 6 prerequisite(s) missing: docker, docker compose, NVIDIA driver, NVIDIA Container Toolkit, "
        "huggingface-cli, curl or wget"
    )
    for step in ("would: cp .env.example .env", "download zai-org/GLM-OCR --local-dir models/GLM-OCR",
                 "would: tar -xf", "would: docker compose --profile gpu build"):
        assert step in result.stdout, step
    assert not (repo / ".env").exists() and not (repo / "models").exists()


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_prepare_stops_before_any_change_naming_every_missing_piece(tmp_path):
    repo = _repo_copy(tmp_path)
    bare = _bare_path(tmp_path)
    _add_tools(bare, {"docker": FAKE_DOCKER.replace("nvidia", "runc")})  # docker without the NVIDIA runtime
    result = _run_prepare(repo, env={"PATH": str(bare), "HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "error: 2 prerequisite(s) missing: NVIDIA driver, NVIDIA Container Toolkit" in result.stderr
    assert "docker is not installed" not in result.stderr
    assert "would:" not in result.stdout and "+ " not in result.stdout
    assert not (repo / ".env").exists()


# --- the container's tritonserver flags ------------------------------------------------

SHARED_FLAGS = (
    "--backend-config", "--exit-on-error", "--exit-timeout-secs", "--grpc-keepalive-permit-without-calls",
    "--grpc-http2-min-recv-ping-interval-without-data", "--grpc-http2-max-ping-strikes",
)


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
    # The region prefix is local only: it lets a test run remove what a killed server
    # leaves in the host's /dev/shm; a container's /dev/shm goes with the container.
    shared = lambda args: sorted(  # noqa: E731
        p for p in _flags(args) if p[0] in SHARED_FLAGS and "shm-region-prefix-name" not in p[1]
    )
    assert shared(container) == shared(local)
    assert ("--grpc-http2-max-ping-strikes", "0") in shared(container)  # the gateway's keepalive pings
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


def test_the_readmes_two_vlm_profiles_are_valid_and_match_compose():
    """README.md, "Two VLMs on one GPU": its HPS_VLM_PROFILES line reads, and points at
    the compose services and the second one's served name."""
    from docparse.recognition.profiles import read_profiles
    from docparse.settings import VlmSettings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(line for line in readme.splitlines() if line.startswith("HPS_VLM_PROFILES=["))
    first, second = read_profiles(line.split("=", 1)[1], VlmSettings())
    assert (first.url, second.url) == ("http://vlm:8000/v1", "http://vlm-second:8000/v1")
    assert second.mode == "page" and second.model == env_example_sections()[COMPOSE_SECTION]["VLLM_SECOND_SERVED_NAME"]
