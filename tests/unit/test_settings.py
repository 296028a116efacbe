import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from docparse.settings import RecognitionSettings, Settings, SettingsError, VlmSettings
from docparse.types import Task

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


COMPOSE_SECTION = "docker compose (compose.yaml)"


def env_example_sections() -> dict[str, dict[str, str]]:
    """Variables of .env.example by section (the "# --- name ---" header comments)."""
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in ENV_EXAMPLE.read_text().splitlines():
        header = re.match(r"^# --- (.+?) -*$", line)
        if header:
            current = header.group(1).strip()
            continue
        pair = re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line)
        if pair:
            sections.setdefault(current, {})[pair.group(1)] = pair.group(2)
    return sections


def env_example() -> dict[str, str]:
    """The DocParse settings in .env.example: all but the compose-only section."""
    return {
        name: value
        for section, pairs in env_example_sections().items()
        if section != COMPOSE_SECTION
        for name, value in pairs.items()
    }


def test_env_example_has_the_compose_section():
    assert set(env_example_sections()[COMPOSE_SECTION]) == {
        "COMPOSE_PROFILES",
        "TRITON_MODEL_CONFIG_NAME",
        "VLLM_MAX_NUM_SEQS",
        "VLLM_GPU_MEMORY_UTILIZATION",
        "VLLM_MAX_MODEL_LEN",
        "VLLM_EXTRA_ARGS",
        *(f"VLLM_SECOND_{name}" for name in (
            "MODEL_DIR", "SERVED_NAME", "MAX_NUM_SEQS", "GPU_MEMORY_UTILIZATION", "MAX_MODEL_LEN", "EXTRA_ARGS",
        )),
    }


def test_env_example_lists_exactly_the_settings():
    assert set(env_example()) == set(Settings.env_names().values())


def test_env_example_values_are_the_defaults(monkeypatch):
    for name in Settings.env_names().values():
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    assert Settings() == defaults


def test_environment_names_set_fields(monkeypatch):
    monkeypatch.setenv("HPS_VLM_URL", "http://vlm:8000/v1/")
    monkeypatch.setenv("HPS_LABEL_TASKS", '{"seal": "drop"}')
    monkeypatch.setenv("GPU_DEVICE_ID", "3")
    monkeypatch.setenv("HPS_LAYOUT_DEVICE", "gpu")
    settings = Settings()
    assert settings.vlm.url == "http://vlm:8000/v1"
    assert settings.recognition.label_tasks == {"seal": Task.DROP}
    assert settings.layout.device_name == "gpu:3"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"HPS_VLM_URL": "vlm:8000"}, "HPS_VLM_URL: must start with http:// or https:// (got 'vlm:8000')"),
        ({"HPS_MAX_PAGES": "0"}, "HPS_MAX_PAGES: Input should be greater than or equal to 1 (got '0')"),
        ({"HPS_LAYOUT_DEVICE": "tpu"}, "HPS_LAYOUT_DEVICE: Input should be 'cpu' or 'gpu' (got 'tpu')"),
        ({"HPS_RECOGNIZER": "gpu"}, "HPS_RECOGNIZER: Input should be 'vlm' or 'cpu'"),
        ({"UVICORN_WORKERS": "many"}, "UVICORN_WORKERS: Input should be a valid integer"),
        ({"HPS_MAX_PAGES": "0", "HPS_VLM_TIMEOUT": "-1"}, "HPS_MAX_PAGES: "),  # every one at once:
        ({"HPS_MAX_PAGES": "0", "HPS_VLM_TIMEOUT": "-1"}, "; HPS_VLM_TIMEOUT: "),
        # Values that contradict each other: both are named.
        ({"HPS_RENDER_DPI": "400"}, "HPS_RENDER_DPI (400) must not exceed HPS_MAX_RENDER_DPI (300)"),
        ({"HPS_CROP_MIN_PIXELS": "2000000"}, "HPS_CROP_MIN_PIXELS (2000000) must not exceed HPS_CROP_MAX_PIXELS"),
        ({"HPS_AUTH_OPEN_PATHS": "/health,metrics"}, "HPS_AUTH_OPEN_PATHS: 'metrics' is not a path"),
        ({"HPS_AUTH_OPEN_PATHS": "/layout-parsing"}, "the parsing routes always need a key"),
        ({"HPS_CORS_ORIGINS": "https://a.example/"}, "HPS_CORS_ORIGINS: 'https://a.example/' is not an origin"),
        ({"HPS_QUOTA_PAGES_PER_MINUTE": "-1"}, "HPS_QUOTA_PAGES_PER_MINUTE: Input should be greater than or equal"),
    ],
)
def test_bad_values_are_refused_naming_their_variables(monkeypatch, variables, message):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        Settings.load()
    assert message in str(refused.value)


@pytest.mark.parametrize(
    "value", ["https://a.example, http://localhost:3000", '["https://a.example", "http://localhost:3000"]']
)
def test_lists_are_comma_separated_or_json(monkeypatch, value):
    monkeypatch.setenv("HPS_CORS_ORIGINS", value)
    assert Settings().auth.cors_origins == ("https://a.example", "http://localhost:3000")


def test_groups_given_to_the_constructor_replace_the_environment(monkeypatch):
    monkeypatch.setenv("HPS_VLM_MAX_RETRIES", "7")
    settings = Settings.load(vlm=VlmSettings(max_retries=0))
    assert settings.vlm.max_retries == 0
    with pytest.raises(ValidationError, match="max_retry"):
        VlmSettings(max_retry=0)  # a typo in code fails loudly


def test_a_value_read_without_a_utf8_locale_is_decoded():
    """A Triton stub embeds Python with no UTF-8 locale where LANG is unset: os.environ
    then holds a non-ASCII value's bytes as surrogates (HPS_EXTRACT_PROMPT's default is
    Chinese). Every model failed to load on it in the container's start command."""
    as_read = "请按下列JSON格式输出图中信息:".encode().decode("ascii", "surrogateescape")
    assert RecognitionSettings(extract_prompt=as_read).extract_prompt == "请按下列JSON格式输出图中信息:"
    prompts = RecognitionSettings(task_prompts={"text": as_read}).task_prompts
    assert prompts[Task.TEXT] == "请按下列JSON格式输出图中信息:"
