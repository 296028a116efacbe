"""The VLM recogniser against the real simulator: prompts, crops, parameters, failures."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import numpy as np
import pytest

from docparse.recognition import build_recognizer
from docparse.recognition.crops import encode_jpeg_data_uri
from docparse.recognition.vlm import VlmClient, VlmRecognizer, clean_answer
from docparse.settings import CropSettings, Settings, VlmSettings
from docparse.types import LayoutBox, RecognitionParams, RegionJob, Task
from vlmsim import SimulatorProcess

PAGE = np.random.default_rng(0).integers(0, 256, (800, 600, 3), dtype=np.uint8)  # every crop differs


def job(label: str, task: Task, coordinate=(20, 20, 300, 60)) -> RegionJob:
    return RegionJob(LayoutBox(label, 0.9, coordinate), task)


JOBS = [
    job("doc_title", Task.TEXT, (20, 20, 300, 60)),
    job("table", Task.TABLE, (20, 100, 500, 400)),
    job("display_formula", Task.FORMULA, (50, 420, 250, 470)),
    job("image", Task.IMAGE, (300, 500, 550, 700)),
    job("header", Task.DROP, (0, 0, 600, 15)),
]


@asynccontextmanager
async def recognizer(sim: SimulatorProcess, crops: dict | None = None, **vlm) -> AsyncIterator[VlmRecognizer]:
    options = dict(url=sim.url, max_retries=0, retry_backoff=0.01, retry_backoff_max=0.02)
    options.update(vlm)
    settings = Settings(vlm=VlmSettings(**options), crops=CropSettings(**(crops or {})))
    engine = build_recognizer(settings)
    assert isinstance(engine, VlmRecognizer)
    try:
        yield engine
    finally:
        await engine.aclose()


async def test_each_task_gets_its_prompt_and_images_and_drops_are_not_sent(sim):
    async with recognizer(sim) as engine:
        results = await engine.recognize(PAGE, JOBS, RecognitionParams(log_id="page-1"))

    assert engine.name == "vlm:glm-ocr"
    assert [r.error for r in results] == [None] * 5
    text, table, formula, image, header = results
    assert text.content.startswith("text ") and table.content.startswith("<table>")
    assert formula.content.startswith("\\frac{a}{b} #")
    assert image.content == "" and header.content == ""
    calls = sim.calls()
    assert sorted(c["prompt"] for c in calls) == ["Formula Recognition:", "Table Recognition:", "Text Recognition:"]
    assert {c["request_id"] for c in calls} == {"page-1"}
    assert all("seconds" in r.timings for r in (text, table, formula))


async def test_crops_are_on_the_28_pixel_grid_within_the_pixel_limits(sim):
    async with recognizer(sim, crops={"min_pixels": 20_000, "max_pixels": 60_000}) as engine:
        await engine.recognize(PAGE, JOBS, RecognitionParams())
    sizes = [(c["width"], c["height"]) for c in sim.calls()]
    assert len(sizes) == 3
    assert all(w % 28 == 0 and h % 28 == 0 and 20_000 <= w * h <= 60_000 for w, h in sizes), sizes


async def test_request_pixel_limits_and_generation_options_win_over_the_settings(sim):
    params = RecognitionParams(
        temperature=0.3, top_p=0.8, repetition_penalty=1.1, max_new_tokens=321,
        min_pixels=100_000, max_pixels=200_000, log_id="custom",
    )
    async with recognizer(sim, max_tokens=999, temperature=0.0) as engine:
        await engine.recognize(PAGE, JOBS[:3], params)
    calls = sim.calls()
    assert all(100_000 <= c["width"] * c["height"] <= 200_000 for c in calls)
    assert {(c["max_tokens"], c["temperature"]) for c in calls} == {(321, 0.3)}


async def test_settings_give_the_defaults(sim):
    async with recognizer(sim, max_tokens=999, temperature=0.1) as engine:
        await engine.recognize(PAGE, JOBS[:1], RecognitionParams())
    [call] = sim.calls()
    assert (call["max_tokens"], call["temperature"]) == (999, 0.1)


async def test_one_failing_region_keeps_its_error_and_the_others_their_content(sim):
    sim.configure(failures=[{"prompt": "Formula Recognition:", "status": 500, "message": "engine crashed"}])
    async with recognizer(sim, max_retries=1) as engine:
        results = await engine.recognize(PAGE, JOBS, RecognitionParams())
    text, table, formula, _, _ = results
    assert formula.content == ""
    assert formula.error == "VLM answered 500 after 2 attempts: engine crashed"
    assert text.error is None and text.content.startswith("text ")
    assert table.error is None and table.content.startswith("<table>")


async def test_a_failure_that_passes_is_retried_and_recovers(sim):
    sim.configure(failures=[{"prompt": "Formula Recognition:", "status": 503, "times": 1}])
    async with recognizer(sim, max_retries=2) as engine:
        results = await engine.recognize(PAGE, JOBS, RecognitionParams())
    assert [r.error for r in results] == [None] * 5
    assert results[2].content.startswith("\\frac{a}{b}")
    formula_calls = [c["status"] for c in sim.calls() if c["prompt"] == "Formula Recognition:"]
    assert formula_calls == [503, 200]


async def test_a_stalled_call_times_out_as_a_region_error(sim):
    sim.configure(failures=[{"prompt": "Table Recognition:", "stall": 0.4}])
    async with recognizer(sim, timeout=0.15) as engine:
        results = await engine.recognize(PAGE, JOBS, RecognitionParams())
    assert results[1].error == "VLM timed out after 0.15 s (1 attempt)"
    assert results[0].error is None and results[2].error is None
    await wait_until(lambda: sim.stats()["running"] == 0)  # the abandoned call ends on its own


async def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_an_unreachable_vlm_gives_every_region_an_error(sim):
    async with recognizer(sim, url="http://127.0.0.1:9/v1", connect_timeout=0.5) as engine:
        results = await engine.recognize(PAGE, JOBS, RecognitionParams())
    assert all("could not be reached" in r.error for r in results[:3])
    assert [r.error for r in results[3:]] == [None, None]


async def test_crop_limits_that_contradict_the_defaults_are_the_requests_error(sim):
    async with recognizer(sim) as engine:
        results = await engine.recognize(PAGE, JOBS[:1], RecognitionParams(min_pixels=2_000_000))
    assert results[0].failure.status == 422
    assert results[0].error.startswith("the smallest crop (2000000 pixels, minPixels or HPS_CROP_MIN_PIXELS)")
    assert sim.calls() == []


async def test_an_unexpected_error_is_kept_in_the_region(sim):
    async with recognizer(sim) as engine:
        engine.tasks = None  # a bug: every region fails, none is lost
        results = await engine.recognize(PAGE, JOBS[:1], RecognitionParams())
    assert results[0].failure.status == 500
    assert results[0].error.startswith("internal error: AttributeError: ")


async def test_regions_of_a_page_are_read_concurrently(sim):
    sim.configure(latency=0.3)
    jobs = [job("text", Task.TEXT, (20, 20 + 40 * i, 300, 50 + 40 * i)) for i in range(6)]
    async with recognizer(sim) as engine:
        results = await engine.recognize(PAGE, jobs, RecognitionParams())
    assert all(r.error is None for r in results)
    assert sim.stats()["peak_in_flight"] == 6


async def test_results_keep_the_job_order_whatever_order_answers_come_in(sim):
    jobs = [job("text", Task.TEXT, (20, 20 + 50 * i, 300, 60 + 50 * i)) for i in range(8)]
    async with recognizer(sim) as engine:
        results, again = await asyncio.gather(
            engine.recognize(PAGE, jobs, RecognitionParams()),
            engine.recognize(PAGE, list(reversed(jobs)), RecognitionParams()),
        )
    assert [r.content for r in results] == [r.content for r in reversed(again)]
    assert len({r.content for r in results}) == 8


@pytest.mark.parametrize(
    ("answer", "task", "expected"),
    [
        ("  hello \n", Task.TEXT, "hello"),
        ("```html\n<table><tr><td>1</td></tr></table>\n```", Task.TABLE, "<table><tr><td>1</td></tr></table>"),
        ("```latex\n$$\nE=mc^2\n$$\n```", Task.FORMULA, "E=mc^2"),
        ("$$ \\frac{a}{b} $$", Task.FORMULA, "\\frac{a}{b}"),
        ("```python\nprint(1)\n```", Task.TEXT, "```python\nprint(1)\n```"),
        ("$x$ and $$y$$", Task.TEXT, "$x$ and $$y$$"),
    ],
    ids=["strip", "fenced table", "fenced display math", "display math", "code stays in text", "text math stays"],
)
def test_clean_answer_removes_wrappers_around_tables_and_formulas(answer, task, expected):
    assert clean_answer(answer, task) == expected


@pytest.mark.parametrize("limit", [8, 20])
async def test_every_allowed_call_runs_at_once_and_no_more(sim, limit):
    """The connection pool carries HPS_VLM_MAX_CONCURRENCY calls at once, and no more."""
    sim.configure(latency=0.3)
    client = VlmClient(VlmSettings(url=sim.url, max_concurrency=limit))
    image = encode_jpeg_data_uri(np.full((56, 56, 3), 255, dtype=np.uint8))
    try:
        await asyncio.gather(*(
            client.complete(image, "Text Recognition:", max_tokens=10, temperature=0.0)
            for _ in range(limit + 6)
        ))
    finally:
        await client.aclose()
    assert sim.stats()["peak_in_flight"] == limit
