import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from docparse.settings import Settings
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
    assert settings.vlm_url == "http://vlm:8000/v1"
    assert settings.label_tasks == {"seal": Task.DROP}
    assert settings.layout_device_name == "gpu:3"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("vlm_url", "vlm:8000", "http"), ("max_pages", 0, "greater than"), ("layout_device", "tpu", "cpu")],
)
def test_bad_values_are_refused_with_the_field_named(field, value, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})
