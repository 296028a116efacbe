"""Page retries: which regions are read again, a little warmer, and what stays bad."""

from __future__ import annotations

import pytest

from docparse.errors import RecognitionError
from docparse.page_retries import DEGENERATE, bad_regions, is_degenerate
from docparse.protocol import parse_request
from docparse.types import LayoutBox, RegionJob, RegionResult, Task
from tests.unit.test_pipeline import pages, pipeline


@pytest.mark.parametrize(
    ("text", "degenerate"),
    [
        ("The results " + "of the of the " * 12, True),
        ("表格内容" + "重复" * 30, True),
        ("| a | b |\n" + "| 1 | 2 |\n" * 15, True),
        ("Revenue grew by 12 % in 2024, and costs fell.", False),
        ("no, no, no, no, that is not what I said.", False),
        ("x" * 20, False),  # too short a tail to call
        ("", False),
    ],
)
def test_a_degenerate_answer_is_a_long_repeated_tail(text, degenerate):
    assert is_degenerate(text) is degenerate


def job(task: Task) -> RegionJob:
    return RegionJob(LayoutBox(task.value, 0.9, (0, 0, 10, 10)), task)


def test_bad_regions_are_the_failed_the_degenerate_and_an_all_empty_page():
    jobs = [job(Task.TEXT), job(Task.TABLE), job(Task.IMAGE)]
    failed = RegionResult(failure=RecognitionError("VLM answered 500"))
    assert bad_regions(jobs, [failed, RegionResult("<table></table>"), RegionResult("")]) == {0: "VLM answered 500"}
    assert bad_regions(jobs, [RegionResult("ok"), RegionResult("ab" * 40), RegionResult("")]) == {1: DEGENERATE}
    assert set(bad_regions(jobs, [RegionResult(" "), RegionResult(""), RegionResult("")])) == {0, 1}
    assert bad_regions([job(Task.TABLE)], [RegionResult("")]) == {}  # no text region: an empty table is an answer


class ScriptedRecognizer:
    """Answers each call from a script of contents (one per region), recording the
    temperature of each call."""

    name = "scripted"
    supports_extraction = False

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.temperatures: list[float | None] = []

    async def recognize(self, page, jobs, params):
        self.temperatures.append(params.temperature)
        return [RegionResult(self.answers.pop(0)) for _ in jobs]

    async def ensure_available(self):
        pass

    async def aclose(self):
        pass


async def detect_one(image, options):
    return [LayoutBox("text", 0.9, (0, 0, 50, 50))]


async def parse(recognizer, detect_fn=detect_one, **fields):
    request = parse_request({"file": "aGk=", **fields})
    events = []

    async def emit(event):
        events.append(event)

    await pipeline(recognizer, detect_fn).run(request, pages(1), emit, "doc")
    return events[0].result


async def test_a_degenerate_page_is_read_again_warmer_and_recovers():
    recognizer = ScriptedRecognizer("la " * 40, "The real paragraph.")
    page = await parse(recognizer)
    assert page.prunedResult.parsing_res_list[0].block_content == "The real paragraph."
    assert recognizer.temperatures == [None, 0.1]


async def detect_two(image, options):
    return [LayoutBox("text", 0.9, (0, 0, 50, 40)), LayoutBox("text", 0.9, (0, 50, 50, 90))]


async def test_a_region_still_degenerate_after_its_retries_is_marked_failed_not_passed_on():
    recognizer = ScriptedRecognizer("Fine text.", "la " * 40, "la " * 40, "la " * 40)
    page = await parse(recognizer, detect_two, maxPageRetries=2, temperature=0.2)
    good, bad = page.prunedResult.parsing_res_list
    assert good.block_content == "Fine text." and bad.error == DEGENERATE and "la la" not in page.markdown.text
    assert recognizer.temperatures == [0.2, 0.3, 0.4] and page.regions.failed == 1


async def test_no_retries_asked_means_one_read():
    recognizer = ScriptedRecognizer("")
    page = await parse(recognizer, maxPageRetries=0)
    assert recognizer.temperatures == [None] and page.regions.failed == 0


async def test_a_page_read_empty_is_asked_again_and_stays_empty_if_it_is():
    recognizer = ScriptedRecognizer("", "")
    page = await parse(recognizer)
    assert len(recognizer.temperatures) == 2 and page.regions.failed == 0 and page.markdown.text == ""

