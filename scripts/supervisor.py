"""Keeping a local server up: ``make run`` restarts a tritonserver that dies, within a
bound, so that the gateway (whose gRPC channel reconnects by itself) recovers with no
one restarting anything.

The bound is fixed here rather than a setting: it is the local launcher's own policy.
Containers are restarted by their runtime (compose.yaml's ``restart: unless-stopped``,
docker's backoff), and no deployment reads these values.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from scripts.processes import ChildServer, LaunchError, describe_exit


@dataclass(frozen=True)
class RestartPolicy:
    """At most ``max_restarts`` within ``window`` seconds, the first after
    ``first_delay`` seconds, each next one after twice as long (up to ``max_delay``):
    a crash loop neither spins nor runs forever."""

    max_restarts: int = 5
    window: float = 600.0
    first_delay: float = 1.0
    max_delay: float = 30.0


@dataclass
class Restarts:
    """The restarts of one server that count against its policy (those of the window)."""

    policy: RestartPolicy
    clock: Callable[[], float] = time.monotonic
    times: list[float] = field(default_factory=list)

    def next_delay(self) -> float | None:
        """Seconds to wait before one more restart (counted now), or None when the
        policy's bound is spent."""
        now = self.clock()
        self.times = [at for at in self.times if now - at < self.policy.window]
        if len(self.times) >= self.policy.max_restarts:
            return None
        self.times.append(now)
        return min(self.policy.first_delay * 2 ** (len(self.times) - 1), self.policy.max_delay)


@dataclass
class Supervisor:
    """Restarts ``server`` (same ports, same log) whenever it has exited by itself,
    saying each time why and when; gives up once its policy's bound is spent."""

    server: ChildServer
    name: str
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    out: TextIO = sys.stderr

    def __post_init__(self) -> None:
        self.restarts = Restarts(self.policy)
        self.gave_up = ""  # why, once it has

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def keep_alive(self) -> bool:
        """True while the server runs, restarting it first if it has died (this blocks
        through the backoff and the start); False once it is down for good."""
        process = self.server.process
        if process is None or process.poll() is None:
            return True
        reason = f"exited with {describe_exit(process.returncode)}. Log tail:\n{self.server.log_tail(20)}"
        while True:
            delay = self.restarts.next_delay()
            if delay is None:
                self.gave_up = (
                    f"{self.name} {reason}\nIt was restarted {self.policy.max_restarts} times within "
                    f"{self.policy.window:g} s already: giving up."
                )
                return False
            count = len(self.restarts.times)
            self.say(
                f"warning: {self.name} {reason}\nrestarting it in {delay:g} s (restart {count} of at "
                f"most {self.policy.max_restarts} within {self.policy.window:g} s)"
            )
            time.sleep(delay)
            try:
                self.server.restart()
            except LaunchError as exc:
                reason = f"did not come back: {exc}"
                continue
            self.say(f"{self.name} is back (restart {count}); log {self.server.log_path}")
            return True
