"""Named VLM profiles (``HPS_VLM_PROFILES``): which OpenAI-compatible server reads a
request's pages, with which prompts, and how its answers become page blocks.

One orchestrator can serve several models at once (GitHub issue #18); a request names one
with ``model``. Unset, there is one profile made from the ``HPS_VLM_*`` settings and named
after ``HPS_VLM_MODEL``, so a deployment that sets nothing new behaves as before. A profile
may start from a ``preset`` (``docparse/recognition/presets.py``: GLM-OCR, PaddleOCR-VL,
LightOnOCR-2-1B, OCRFlux-3B) and set only what differs, usually ``url`` and ``model``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from docparse.recognition.presets import PRESETS
from docparse.settings_env import SettingsError, VlmServers, http_base_urls

if TYPE_CHECKING:
    from docparse.settings import VlmSettings

REGION_TASKS = ("text", "table", "formula")
ENV_NAME = "HPS_VLM_PROFILES"


class VlmProfile(VlmServers, BaseModel):
    """One VLM: where it is, how many calls it takes at once, how it is prompted and read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    url: str
    model: str = Field(min_length=1)
    max_concurrency: int = Field(64, ge=1)
    mode: Literal["region", "page"] = "region"
    prompts: dict[str, str] = Field(default_factory=dict)
    min_pixels: int | None = Field(None, ge=784)
    max_pixels: int | None = Field(None, ge=784)
    output: Literal["markdown", "json"] = "markdown"
    api_key: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)

    @field_validator("url", mode="before")
    @classmethod
    def _joined(cls, value: Any) -> Any:
        """A JSON/YAML list of URLs is the same as the comma-separated text."""
        return ",".join(str(item) for item in value) if isinstance(value, list) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_base_urls(value)

    @model_validator(mode="after")
    def _prompts_fit_mode(self) -> "VlmProfile":
        """Region mode prompts per task (text/table/formula); page mode needs ``page``."""
        allowed = REGION_TASKS if self.mode == "region" else ("page",)
        unknown = sorted(set(self.prompts) - set(allowed))
        if unknown:
            raise ValueError(f"prompts {unknown} do not fit mode {self.mode!r} (allowed: {', '.join(allowed)})")
        if self.mode == "page" and "page" not in self.prompts:
            raise ValueError("mode 'page' needs prompts.page (\"\" sends the image alone)")
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) exceeds max_pixels ({self.max_pixels})")
        return self



def default_profile(vlm: "VlmSettings") -> VlmProfile:
    """The one profile of a deployment without ``HPS_VLM_PROFILES``: today's settings."""
    return VlmProfile(
        name=vlm.model, url=vlm.url, model=vlm.model, max_concurrency=vlm.max_concurrency, api_key=vlm.api_key,
    )


def read_profiles(raw: str | None, vlm: "VlmSettings") -> tuple[VlmProfile, ...]:
    """The profiles ``raw`` (JSON or YAML text, or a path to such a file) describes, in
    order (the first is the default); ``default_profile`` when unset. Raises
    ``SettingsError`` naming the profile and field of each problem."""
    if raw is None or not raw.strip():
        return (default_profile(vlm),)
    entries = _entries(_load(raw))
    profiles, problems = [], []
    for index, entry in enumerate(entries):
        try:
            profiles.append(_profile(entry, vlm))
        except (ValidationError, ValueError) as exc:
            problems.append(_describe(index, entry, exc))
    names = [profile.name for profile in profiles]
    problems += [f"{ENV_NAME}: profile name {name!r} is used twice" for name in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise SettingsError("; ".join(problems))
    return tuple(profiles)


def _load(raw: str) -> Any:
    """JSON or YAML, given inline or as a file's path."""
    text = raw.strip()
    if not text.startswith(("[", "{", "-")):
        path = Path(text)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"{ENV_NAME}: neither JSON/YAML nor a readable file ({exc})") from None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml  # only needed for YAML profiles

        return yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the variable's fault
        raise SettingsError(f"{ENV_NAME}: not valid JSON or YAML ({exc})") from None


def _entries(data: Any) -> list[dict]:
    if isinstance(data, dict) and isinstance(data.get("profiles"), list):
        data = data["profiles"]
    if not isinstance(data, list) or not data or not all(isinstance(entry, dict) for entry in data):
        raise SettingsError(f"{ENV_NAME}: must be a non-empty list of profiles (objects)")
    return data


def _profile(entry: dict, vlm: "VlmSettings") -> VlmProfile:
    """A profile from its entry laid over its preset (if any); url, api_key and
    max_concurrency default to the HPS_VLM_* settings."""
    entry = dict(entry)
    preset_name = entry.pop("preset", None)
    base: dict[str, Any] = {"url": vlm.url, "max_concurrency": vlm.max_concurrency, "api_key": vlm.api_key}
    if preset_name is not None:
        if preset_name not in PRESETS:
            raise ValueError(f"preset: unknown {preset_name!r}; known: {', '.join(PRESETS)}")
        base |= PRESETS[preset_name]
    merged = base | entry
    if preset_name is not None and "prompts" in entry:
        merged["prompts"] = {**PRESETS[preset_name].get("prompts", {}), **entry["prompts"]}
    return VlmProfile(**merged)


def _describe(index: int, entry: dict, exc: Exception) -> str:
    name = entry.get("name") or f"#{index + 1}"
    if not isinstance(exc, ValidationError):
        return f"{ENV_NAME}: profile {name!r}: {exc}"
    parts = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "profile"
        parts.append(f"{ENV_NAME}: profile {name!r}, field {field}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
