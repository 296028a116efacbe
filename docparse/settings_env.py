"""How a settings group reads the environment (``docparse.settings`` holds the groups):
the ``HPS_`` prefix, variables outside it, lists as JSON or comma-separated text, and
non-ASCII values read where Python has no UTF-8 locale."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SettingsError(Exception):
    """Settings that cannot be used; the message names each wrong variable."""


def _from_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_from_surrogates(k): _from_surrogates(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_from_surrogates(v) for v in value)
    return value


class SettingsGroup(BaseSettings):
    """A group of settings read from its own environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="HPS_",
        env_ignore_empty=True,  # "HPS_LAYOUT_MODEL_DIR=" in a .env means unset
        extra="forbid",
        populate_by_name=True,
        frozen=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _utf8(cls, value: Any) -> Any:
        """A value Python read from an environment without a UTF-8 locale (a Triton stub
        embeds Python without one) holds its non-ASCII bytes as surrogates: decoded."""
        return _from_surrogates(value)

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field``."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, AliasChoices):
            return str(alias.choices[0])
        return f"{cls.model_config['env_prefix']}{field}".upper()


def env_alias(name: str, field: str) -> AliasChoices:
    """A field read from an environment variable outside its group's prefix."""
    return AliasChoices(name, field)


def _text_list(value: Any) -> Any:
    """A list from the environment: a JSON list, or comma-separated text."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [item.strip() for item in text.split(",") if item.strip()]


#: A tuple of strings read as a JSON list or as comma-separated text.
TextList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_text_list)]


def http_base_url(value: str) -> str:
    """An OpenAI-compatible server's base URL, checked: http(s), no trailing slash."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


def http_base_urls(value: str) -> str:
    """One or several base URLs, comma-separated (several VLM servers behind one
    orchestrator, ``docparse.recognition.endpoints``): each checked as ``http_base_url``,
    given back comma-joined without spaces."""
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ValueError(f"an empty entry in the comma-separated URL list {value!r}")
    checked = []
    for index, item in enumerate(items, start=1):
        try:
            checked.append(http_base_url(item))
        except ValueError as exc:
            if len(items) == 1:
                raise
            raise ValueError(f"URL {index} of {len(items)} ({item!r}) {exc}") from None
    if len(set(checked)) < len(checked):
        raise ValueError(f"a URL is listed twice in {value!r}")
    return ",".join(checked)


def split_urls(value: str) -> tuple[str, ...]:
    """The URLs of a list ``http_base_urls`` checked."""
    return tuple(value.split(","))


def vllm_health_url(base_url: str) -> str:
    """vLLM serves /health at its root, beside /v1."""
    root = base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url
    return f"{root}/health"


class VlmServers:
    """For a model with a ``url`` field that may list several VLM servers (the VLM
    settings, each VLM profile): its servers, and where the first answers health checks."""

    url: str

    @property
    def urls(self) -> tuple[str, ...]:
        """Each VLM server's base URL (``url`` may list several, comma-separated)."""
        return split_urls(self.url)

    @property
    def health_url(self) -> str:
        return vllm_health_url(self.urls[0])
