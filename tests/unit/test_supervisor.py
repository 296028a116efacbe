"""The restart bound of the local launcher (scripts/supervisor.py): exponential backoff,
at most so many restarts within a window, counting again once old ones leave it."""

from __future__ import annotations

from scripts.processes import describe_exit
from scripts.supervisor import RestartPolicy, Restarts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delays_double_up_to_the_cap_then_the_bound_is_spent():
    clock = Clock()
    restarts = Restarts(RestartPolicy(max_restarts=6, window=600, first_delay=1, max_delay=10), clock)
    delays = []
    for _ in range(7):
        delays.append(restarts.next_delay())
        clock.now += 5
    assert delays == [1, 2, 4, 8, 10, 10, None]


def test_restarts_older_than_the_window_no_longer_count():
    clock = Clock()
    restarts = Restarts(RestartPolicy(max_restarts=2, window=60, first_delay=1), clock)
    assert [restarts.next_delay(), restarts.next_delay(), restarts.next_delay()] == [1, 2, None]
    clock.now += 61  # both restarts have left the window: a fresh start
    assert restarts.next_delay() == 1


def test_exits_are_described_by_code_or_signal():
    assert describe_exit(1) == "code 1"
    assert describe_exit(-9) == "signal SIGKILL"
    assert describe_exit(-15) == "signal SIGTERM"
