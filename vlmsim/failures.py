"""Failure injection: rules that make matching calls answer an error status or stall, so
that tests can exercise retries and timeouts against a real HTTP server."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from vlmsim.chat import ApiError


@dataclass
class FailureRule:
    """Calls matching ``prompt`` and ``request_id`` (None matches any) answer ``status``,
    or, with ``stall``, wait that many seconds and then answer normally, or, with
    ``answer``, answer 200 with that content (a model's bad answer). ``times`` limits how
    many calls the rule hits; after that it stops matching."""

    prompt: str | None = None
    request_id: str | None = None
    status: int = 500
    times: int | None = None
    stall: float | None = None
    message: str | None = None
    answer: str | None = None

    def take(self, prompt: str, request_id: str) -> bool:
        """Whether this call is hit, counting it against ``times``."""
        if self.prompt is not None and self.prompt != prompt:
            return False
        if self.request_id is not None and self.request_id != request_id:
            return False
        if self.times is not None:
            if self.times <= 0:
                return False
            self.times -= 1
        return True

    def error(self) -> ApiError | None:
        """The error this rule answers with; None for a stall or an answer (200s)."""
        if self.stall is not None or self.answer is not None:
            return None
        return ApiError(self.status, self.message or f"injected failure ({self.status})")


def parse_failures(value: Any) -> list[FailureRule]:
    """Failure rules from JSON; raises ApiError (400) naming the bad rule."""
    if not isinstance(value, list):
        raise ApiError(400, "'failures' must be a list of rules")
    names = {f.name for f in fields(FailureRule)}
    rules = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - names:
            raise ApiError(400, f"failure rule {index} must be an object with fields from {sorted(names)}")
        rule = FailureRule(**item)
        if type(rule.status) is not int or not 100 <= rule.status <= 599:
            raise ApiError(400, f"failure rule {index}: 'status' must be an HTTP status, got {rule.status!r}")
        if rule.times is not None and type(rule.times) is not int:
            raise ApiError(400, f"failure rule {index}: 'times' must be an integer, got {rule.times!r}")
        if rule.stall is not None and (type(rule.stall) not in (int, float) or rule.stall < 0):
            raise ApiError(400, f"failure rule {index}: 'stall' must be seconds >= 0, got {rule.stall!r}")
        if rule.answer is not None and type(rule.answer) is not str:
            raise ApiError(400, f"failure rule {index}: 'answer' must be a string, got {rule.answer!r}")
        rules.append(rule)
    return rules
