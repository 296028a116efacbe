"""API keys: who may call the gateway, by name.

Keys are configured as SHA-256 hashes, never as the keys themselves: in ``HPS_API_KEYS``
(``name:sha256hex,...``) and/or the YAML file named by ``HPS_API_KEYS_FILE``, whose
entries may carry per-key limits (``gateway/quotas.py``). Plain SHA-256 suffices because
the keys are random (256 bits from ``secrets``): salting and slow hashes protect guessable
passwords, and would cost every request milliseconds. A presented key is hashed and
compared with every configured hash in constant time. Only the key's name is logged.

Make a key: ``python -m gateway.keys new NAME`` prints it once, and its entry.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ipaddress
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from docparse.settings import AuthSettings

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # it is a metric label and a log field
SHA256_PATTERN = r"^[0-9a-f]{64}$"
NAME_RULE = "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
SHA256_RULE = (
    "must be 64 hex digits, quoted if all are digits (the key's SHA-256: python -m gateway.keys hash prints it)"
)
RULES = {"name": NAME_RULE, "sha256": SHA256_RULE}
KEY_PREFIX = "dp_"  # lets secret scanners and people recognise a leaked key


class KeyConfigError(Exception):
    """The configured keys cannot be used; the message names the file (or variable) and line."""


class Limits(BaseModel):
    """A key's quota; a limit left out takes the HPS_QUOTA_* default, 0 means none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrent_requests: int | None = Field(None, ge=0)
    requests_per_minute: float | None = Field(None, ge=0)
    requests_burst: int | None = Field(None, ge=0)
    pages_per_minute: float | None = Field(None, ge=0)

    def over(self, defaults: "Limits") -> "Limits":
        """These limits, each one left out taken from ``defaults``."""
        given = self.model_dump(exclude_none=True)
        return defaults.model_copy(update=given)


class KeyEntry(BaseModel):
    """One entry of the keys file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    sha256: str = Field(pattern=SHA256_PATTERN)
    limits: Limits = Field(default_factory=Limits)

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes  # SHA-256 of the key
    limits: Limits  # defaults applied


def job_owner(name: str) -> str:
    """Whose a job submitted with the key ``name`` is, in the job store."""
    return f"key:{name}"


def hash_key(key: str) -> str:
    """The hex SHA-256 of a key: what the configuration holds."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys. Empty: keys are off and every route is open."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self.keys = tuple(keys)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def find(self, presented: str) -> ApiKey | None:
        """The key whose hash is the presented key's. Every entry is compared, in constant
        time, so the time taken says nothing about which entry (nearly) matched."""
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found


def load_keyring(auth: AuthSettings) -> KeyRing:
    """The keys of HPS_API_KEYS and HPS_API_KEYS_FILE, with the HPS_QUOTA_* defaults."""
    entries: list[tuple[str, KeyEntry]] = []
    if auth.api_keys is not None:
        entries += parse_inline(auth.api_keys)
    if auth.api_keys_file is not None:
        entries += parse_file(auth.api_keys_file)
    check_unique(entries)
    defaults = default_limits(auth)
    return KeyRing(
        [ApiKey(entry.name, bytes.fromhex(entry.sha256), entry.limits.over(defaults)) for _, entry in entries]
    )


def default_limits(auth: AuthSettings) -> Limits:
    return Limits(
        concurrent_requests=auth.quota_concurrent_requests,
        requests_per_minute=auth.quota_requests_per_minute,
        requests_burst=auth.quota_requests_burst,
        pages_per_minute=auth.quota_pages_per_minute,
    )


def parse_inline(text: str) -> list[tuple[str, KeyEntry]]:
    """``name:sha256hex,...``; each entry with where it is, for messages."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise KeyConfigError("HPS_API_KEYS has no keys; unset it to turn keys off")
    entries = []
    for number, item in enumerate(items, 1):
        where = f"HPS_API_KEYS entry {number}"
        name, _, digest = item.partition(":")
        # The message never repeats the value: it may be a key pasted by mistake.
        entries.append((where, validated_entry({"name": name, "sha256": digest}, where)))
    return entries


def parse_file(path: Path) -> list[tuple[str, KeyEntry]]:
    """The ``keys:`` list of a YAML file; each entry with its file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyConfigError(f"HPS_API_KEYS_FILE {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise KeyConfigError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    items = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items or root is None:
        raise KeyConfigError(f"{path}:1: expected a 'keys:' list with at least one entry (see README)")
    lines = entry_lines(root, len(items))
    return [(f"{path}:{line}", validated_entry(item, f"{path}:{line}")) for line, item in zip(lines, items)]


def entry_lines(root: yaml.Node, count: int) -> list[int]:
    """The line of each entry of the ``keys:`` list (of the list itself if the YAML
    builds it in a way the nodes do not show one for one, e.g. with aliases)."""
    for key, value in root.value:
        if key.value == "keys":
            lines = [node.start_mark.line + 1 for node in value.value]
            return lines if len(lines) == count else [value.start_mark.line + 1] * count
    return [1] * count


def validated_entry(item: Any, where: str) -> KeyEntry:
    if not isinstance(item, dict):
        raise KeyConfigError(f"{where}: expected an entry with name and sha256")
    try:
        return KeyEntry.model_validate(item)
    except ValidationError as exc:
        raise KeyConfigError(f"{where}: {problems_of(exc)}") from None


def problems_of(exc: ValidationError) -> str:
    """Each problem in words, by field; a name or hash that does not match says what it must be."""
    problems = []
    for error in exc.errors():
        field = ".".join(map(str, error["loc"])) or "entry"
        message = error["msg"]
        if field in RULES:
            message = RULES[field]
        problems.append(f"{field}: {message}")
    return "; ".join(problems)


def check_unique(entries: list[tuple[str, KeyEntry]]) -> None:
    """Two entries with one name would mix in logs and quotas; one hash twice is a copy."""
    seen_names: dict[str, str] = {}
    seen_hashes: dict[str, str] = {}
    for where, entry in entries:
        if entry.name in seen_names:
            raise KeyConfigError(f"{where}: the name {entry.name!r} is used already at {seen_names[entry.name]}")
        if entry.sha256 in seen_hashes:
            raise KeyConfigError(f"{where}: the same key as at {seen_hashes[entry.sha256]}")
        seen_names[entry.name] = where
        seen_hashes[entry.sha256] = where


def exposure_warning(host: str, keyring: KeyRing) -> str | None:
    """What to say at start-up when the gateway is open to more than this machine."""
    if keyring.enabled or is_loopback(host):
        return None
    return (
        f"the gateway listens on {host} (beyond this machine) and no API key is configured: "
        "anyone who reaches it can use it. Set HPS_API_KEYS_FILE or HPS_API_KEYS "
        "(python -m gateway.keys new NAME makes a key), or HPS_HOST=127.0.0.1"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_entry_text(name: str, key: str, limits: Limits) -> str:
    """How to use a new key: the key once, the keys-file entry, the HPS_API_KEYS form."""
    entry: dict[str, Any] = {"name": name, "sha256": hash_key(key)}
    given = limits.model_dump(exclude_none=True)
    if given:
        entry["limits"] = {field: int(value) if value == int(value) else value for field, value in given.items()}
    listed = yaml.safe_dump([entry], sort_keys=False, default_flow_style=False)
    return (
        f"API key {name!r} (shown only now; give it to its user, it cannot be recovered):\n\n"
        f"    {key}\n\n"
        f"Its entry for HPS_API_KEYS_FILE (under keys:):\n\n"
        + "".join(f"  {line}\n" for line in listed.splitlines())
        + f"\nOr in HPS_API_KEYS (with the HPS_QUOTA_* limits): {name}:{entry['sha256']}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.keys", description="Make API keys for the gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="make a key: prints it once, and its entry for the keys file")
    new.add_argument("name", help="who the key is for (shown in logs and metrics)")
    for field in Limits.model_fields:
        new.add_argument(f"--{field.replace('_', '-')}", type=float, help="a limit of this key (0: none)")
    commands.add_parser("hash", help="the SHA-256 of a key read from standard input (an existing key)")
    options = parser.parse_args(argv)
    if options.command == "hash":
        print(hash_key(sys.stdin.readline().strip()))
        return 0
    if not re.match(NAME_PATTERN, options.name):
        parser.error(f"name: {NAME_RULE}")
    given = {field: getattr(options, field) for field in Limits.model_fields if getattr(options, field) is not None}
    try:
        limits = Limits(**given)
    except ValidationError as exc:
        parser.error(problems_of(exc))
    print(new_entry_text(options.name, new_key(), limits), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
