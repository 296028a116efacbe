"""How the stand-in behaves: the timing mode and its numbers, validated field by field
for ``POST /_sim/config`` and the command line alike."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from vlmsim.chat import ApiError
from vlmsim.profiles import BATCHING_FIELDS, DEFAULT_PROFILE, PROFILES, BatchingParams

TIMINGS = ("fixed", "vllm")
SCHEDULING_POLICIES = ("fcfs", "priority")  # vLLM's --scheduling-policy


@dataclass(frozen=True)
class SimConfig:
    """How the simulator behaves (failure rules aside: they are counted down in place)."""

    latency: float = 0.0
    latency_per_pixel: float = 0.0
    max_num_seqs: int = 64
    timing: str = "fixed"
    profile: str = DEFAULT_PROFILE  # where ``batching`` came from (fields may override it)
    seed: int = 0
    batching: BatchingParams = PROFILES[DEFAULT_PROFILE]
    scheduling_policy: str = "fcfs"

    def as_dict(self) -> dict:
        return {
            "latency": self.latency,
            "latency_per_pixel": self.latency_per_pixel,
            "max_concurrency": self.max_num_seqs,
            "max_num_seqs": self.max_num_seqs,
            "timing": self.timing,
            "profile": self.profile,
            "seed": self.seed,
            "scheduling_policy": self.scheduling_policy,
            **asdict(self.batching),
        }


CONFIG_FIELDS = frozenset(
    {"latency", "latency_per_pixel", "max_concurrency", "max_num_seqs", "failures", "timing", "profile", "seed",
     "scheduling_policy", *BATCHING_FIELDS}
)
LOWEST_BATCHING_VALUE = {  # and whether the lowest value itself is refused
    "prefill_seconds_per_token": (0.0, False),
    "decode_step_seconds": (0.0, True),
    "decode_step_seconds_per_seq": (0.0, False),
    "text_output_tokens": (1.0, False),
    "table_output_tokens": (1.0, False),
    "formula_output_tokens": (1.0, False),
    "output_tokens_cv": (0.0, False),
}


def option(name: str) -> str:
    """The command-line flag of a configuration field."""
    return "--" + name.replace("_", "-")


def checked_number(changes: dict, name: str, lowest: float = 0.0, exclusive: bool = False) -> float | None:
    """``changes[name]`` as a float, None if absent; raises ApiError (400) naming it."""
    if name not in changes:
        return None
    value = changes[name]
    if (
        type(value) not in (int, float) or not math.isfinite(value)
        or value < lowest or (exclusive and value == lowest)
    ):
        raise ApiError(400, f"'{name}' must be a number {'>' if exclusive else '>='} {lowest:g}, got {value!r}")
    return float(value)


def checked_slots(changes: dict) -> int | None:
    """max_concurrency and its alias max_num_seqs; raises ApiError (400) naming the field."""
    given = {name: changes[name] for name in ("max_concurrency", "max_num_seqs") if name in changes}
    for name, value in given.items():
        if type(value) is not int or value < 1:
            raise ApiError(400, f"'{name}' must be an integer >= 1, got {value!r}")
    if len(set(given.values())) > 1:
        raise ApiError(400, f"'max_concurrency' and 'max_num_seqs' are one setting; got {given}")
    return next(iter(given.values()), None)


def validated_config(changes: Any, current: SimConfig) -> SimConfig:
    """``current`` with ``changes`` applied (``failures`` is parsed by the caller);
    raises ApiError (400) naming the first bad field. A ``profile`` sets every batching
    number (and the vllm timing unless ``timing`` is given); fields given beside it win."""
    if not isinstance(changes, dict):
        raise ApiError(400, "the configuration must be a JSON object")
    if unknown := sorted(set(changes) - CONFIG_FIELDS):
        raise ApiError(400, f"unknown configuration field(s) {unknown}; known: {sorted(CONFIG_FIELDS)}")
    config = current
    for name in ("latency", "latency_per_pixel"):
        if (value := checked_number(changes, name)) is not None:
            config = replace(config, **{name: value})
    if (slots := checked_slots(changes)) is not None:
        config = replace(config, max_num_seqs=slots)
    config = _with_timing(changes, config)
    overrides = {}
    for name, (lowest, exclusive) in LOWEST_BATCHING_VALUE.items():
        if (value := checked_number(changes, name, lowest, exclusive)) is not None:
            overrides[name] = value
    return replace(config, batching=replace(config.batching, **overrides))


def _with_timing(changes: dict, config: SimConfig) -> SimConfig:
    """``profile``, ``timing`` and ``seed`` applied, in that order."""
    if "profile" in changes:
        profile = changes["profile"]
        if profile not in PROFILES:
            raise ApiError(400, f"'profile' must be one of {sorted(PROFILES)}, got {profile!r}")
        config = replace(config, profile=profile, batching=PROFILES[profile], timing="vllm")
    if "timing" in changes:
        if changes["timing"] not in TIMINGS:
            raise ApiError(400, f"'timing' must be one of {list(TIMINGS)}, got {changes['timing']!r}")
        config = replace(config, timing=changes["timing"])
    if "seed" in changes:
        if type(changes["seed"]) is not int:
            raise ApiError(400, f"'seed' must be an integer, got {changes['seed']!r}")
        config = replace(config, seed=changes["seed"])
    if "scheduling_policy" in changes:
        if changes["scheduling_policy"] not in SCHEDULING_POLICIES:
            raise ApiError(400, f"'scheduling_policy' must be one of {list(SCHEDULING_POLICIES)}, "
                                f"got {changes['scheduling_policy']!r}")
        config = replace(config, scheduling_policy=changes["scheduling_policy"])
    return config
