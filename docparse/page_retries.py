"""Which regions of a page are read again, and when an answer is degenerate.

After the VLM client's own retries, a page can still come back bad: a region failed, a
region's answer is the VLM's classic failure (the same few words repeated until the
token limit), or every region read empty although layout found text. Such regions are
read again (``maxPageRetries``, HPS_MAX_PAGE_RETRIES), sampling a little warmer each
time; a degenerate answer still there after that is marked failed, never passed on as text.
"""

from __future__ import annotations

from typing import Sequence

from docparse.errors import RecognitionError
from docparse.types import READ_TASKS, RegionJob, RegionResult, Task

# Degenerate: the answer ends with one unit (1 to MAX_UNIT characters) repeated at least
# MIN_REPEATS times, covering at least MIN_TAIL characters. Real text repeats a word a
# few times ("no, no, no"), never a dozen times at its very end.
MAX_UNIT = 200
MIN_REPEATS = 10
MIN_TAIL = 40
TEMPERATURE_STEP = 0.1  # added to the sampling temperature at each page retry

DEGENERATE = "degenerate answer: the same text repeated until the token limit"
EMPTY = "read as empty although layout found text"


def repeated_tail(text: str) -> int:
    """How many characters at the end of ``text`` are one unit repeated
    ``MIN_REPEATS`` times or more (0 when none)."""
    text = text.rstrip()
    longest = 0
    for unit in range(1, min(MAX_UNIT, len(text) // MIN_REPEATS) + 1):
        pattern = text[-unit:]
        repeats = 1
        while text.endswith(pattern, 0, len(text) - repeats * unit):
            repeats += 1
        if repeats >= MIN_REPEATS:
            longest = max(longest, repeats * unit)
    return longest


def is_degenerate(text: str) -> bool:
    """The VLM's repetition failure: a long tail of one repeated unit."""
    return repeated_tail(text) >= MIN_TAIL


def bad_regions(jobs: Sequence[RegionJob], results: Sequence[RegionResult]) -> dict[int, str]:
    """The regions to read again, each with what is wrong: failed ones, degenerate
    answers, and, when every read region came back empty although one is text, all of
    them."""
    read = [i for i, job in enumerate(jobs) if job.task in READ_TASKS]
    bad: dict[int, str] = {}
    for i in read:
        failure = results[i].failure
        if failure is not None:
            bad[i] = failure.message
        elif is_degenerate(results[i].content):
            bad[i] = DEGENERATE
    has_text = any(jobs[i].task is Task.TEXT for i in read)
    if has_text and not bad and not any(results[i].content.strip() for i in read):
        bad = {i: EMPTY for i in read}
    return bad


def give_up(results: list[RegionResult], bad: dict[int, str]) -> None:
    """Regions still bad after the retries: a degenerate answer becomes a failure (it is
    not text); a failure already set is kept (it says more); a page still read empty
    stays empty, since a blank page is a real answer."""
    for i, problem in bad.items():
        if problem == DEGENERATE:
            results[i] = RegionResult(failure=RecognitionError(problem), timings=results[i].timings)


def retry_temperature(base: float, attempt: int) -> float:
    return round(base + TEMPERATURE_STEP * attempt, 3)
