"""The VLM stand-in behaves like vLLM where our tests and benchmarks rely on it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import json
import re
import statistics
import time
from dataclasses import replace
from typing import Iterator

import httpx
import jsonschema
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from vlmsim import SimulatorProcess
from vlmsim.cli import build_parser, config_from_args
from vlmsim.profiles import PROFILES, REFERENCE_PROMPT_TOKENS, BatchingParams, OutputLengths, batching_capacity
from vlmsim.scheduler import BatchScheduler, Sequence


def jpeg(width: int = 56, height: int = 28) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


def chat(prompt: str = "Text Recognition:", image: bytes | None = None, model: str = "glm-ocr", **extra) -> dict:
    image = jpeg() if image is None else image
    return {
        "model": model,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(image).decode()}},
            {"type": "text", "text": prompt},
        ]}],
        **extra,
    }


def post(sim: SimulatorProcess, body: object, request_id: str = "", **kwargs) -> httpx.Response:
    return httpx.post(f"{sim.url}/chat/completions", json=body, headers={"X-Request-Id": request_id}, **kwargs)


def metric(sim: SimulatorProcess, name: str, **labels: str) -> float:
    """The value of sample ``name`` whose labels include ``labels``, from /metrics as a
    Prometheus scraper reads it."""
    text = httpx.get(f"{sim.root}/metrics").text
    samples = (sample for family in text_string_to_metric_families(text) for sample in family.samples)
    return next(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Text Recognition:", "text 56x28 #{h}"),
        ("Table Recognition:", "<table><tr><td>cell 56x28</td></tr></table>"),
        ("Formula Recognition:", "\\frac{{a}}{{b}} #{h}"),
        ("What is this?", "echo: What is this? 56x28"),
    ],
)
def test_answers_follow_from_the_prompt_and_the_image(sim, prompt, expected):
    image = jpeg()
    response = post(sim, chat(prompt, image))
    assert response.status_code == 200
    body = response.json()
    digest = hashlib.sha256(image).hexdigest()[:8]
    assert body["choices"][0]["message"]["content"] == expected.format(h=digest)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["object"] == "chat.completion" and body["model"] == "glm-ocr" and body["id"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_every_call_is_recorded(sim):
    post(sim, chat(image=jpeg(84, 56), max_tokens=99, temperature=0.5), request_id="doc-1")
    [call] = sim.calls()
    assert {k: call[k] for k in ("request_id", "prompt", "width", "height", "model", "max_tokens", "temperature", "status")} == {
        "request_id": "doc-1", "prompt": "Text Recognition:", "width": 84, "height": 56,
        "model": "glm-ocr", "max_tokens": 99, "temperature": 0.5, "status": 200,
    }
    assert abs(call["started"] - time.time()) < 60 and call["started"] <= call["finished"]


async def test_calls_above_max_concurrency_wait_in_a_queue(sim):
    sim.configure(max_concurrency=2, latency=0.2)
    async with httpx.AsyncClient(timeout=10) as client:
        responses = await asyncio.gather(*(
            client.post(f"{sim.url}/chat/completions", json=chat(), headers={"X-Request-Id": f"q{i}"})
            for i in range(6)
        ))
    assert [r.status_code for r in responses] == [200] * 6
    stats = sim.stats()
    assert stats["peak_in_flight"] == 2 and stats["total_calls"] == 6
    assert stats["running"] == 0 and stats["queued"] == 0
    starts = sorted(c["started"] for c in sim.calls())
    assert starts[-1] - starts[0] >= 0.35  # three waves of two


def test_unknown_model_is_404_in_openai_format(sim):
    response = post(sim, chat(model="gpt-4"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["message"] == "The model `gpt-4` does not exist."
    assert error["type"] == "NotFoundError" and error["code"] == 404


def test_a_text_only_prompt_is_answered_like_vllm_does(sim):
    """The GLM-OCR SDK sends a text-only "hello" before it starts, and needs a 200."""
    body = {"model": "glm-ocr", "max_tokens": 10,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]}
    response = post(sim, body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: hello 0x0"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"model": "glm-ocr", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ]}]},
            "at most one image_url",
        ),
        (chat(image=b"not a jpeg"), "could not be decoded"),
        ({"model": "glm-ocr", "messages": []}, "messages"),
        (chat(max_tokens=0), "max_tokens"),
        ([1, 2], "JSON object"),
    ],
    ids=["two images", "bad image", "no messages", "bad max_tokens", "not an object"],
)
def test_malformed_requests_are_400(sim, body, message):
    response = post(sim, body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert sim.calls()[-1]["status"] == 400


def test_a_body_that_is_not_json_is_400(sim):
    response = httpx.post(f"{sim.url}/chat/completions", content=b"{oops")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


def test_failure_rules_match_prompt_and_request_id_and_stop_after_times(sim):
    sim.configure(failures=[
        {"prompt": "Formula Recognition:", "status": 503, "times": 1, "message": "warming up"},
        {"request_id": "doomed", "status": 500},
    ])
    first = post(sim, chat("Formula Recognition:"))
    assert first.status_code == 503 and first.json()["error"]["message"] == "warming up"
    assert post(sim, chat("Formula Recognition:")).status_code == 200
    assert post(sim, chat(), request_id="doomed").status_code == 500
    assert post(sim, chat(), request_id="fine").status_code == 200
    assert [c["status"] for c in sim.calls()] == [503, 200, 500, 200]


def test_a_stall_rule_delays_then_answers(sim):
    sim.configure(failures=[{"prompt": "Table Recognition:", "stall": 0.3}])
    started = time.monotonic()
    assert post(sim, chat("Table Recognition:")).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        post(sim, chat("Table Recognition:"), timeout=0.1)
    wait_until(lambda: sim.stats()["running"] == 0)
    # The abandoned call is aborted, as vLLM aborts a request whose client went away.
    assert [c["status"] for c in sim.calls()] == [200, 499]


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "total": {"type": "number", "minimum": 1}, "kind": {"enum": ["a", "b"]},
        "lines": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}, "minItems": 2},
    },
}


@pytest.mark.parametrize(
    "extra",
    [
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}},
        {"structured_outputs": {"json": SCHEMA}},
        {"guided_json": json.dumps(SCHEMA)},
    ],
)
def test_structured_output_answers_json_that_fits_the_schema(sim, extra):
    image = jpeg()
    response = post(sim, chat("请按下列JSON格式输出图中信息:\n{}", image, **extra))
    assert response.status_code == 200, response.text
    data = json.loads(response.json()["choices"][0]["message"]["content"])
    jsonschema.validate(data, SCHEMA)
    assert data["name"] == f"text 56x28 #{hashlib.sha256(image).hexdigest()[:8]}" and len(data["lines"]) == 2
    assert sim.calls()[-1]["json_schema"] == SCHEMA


def test_a_bad_response_format_is_400(sim):
    response = post(sim, chat(response_format={"type": "xml"}))
    assert response.status_code == 400 and "response_format.type" in response.json()["error"]["message"]


def test_an_answer_rule_gives_that_content_with_200(sim):
    sim.configure(failures=[{"answer": "not json at all", "times": 1}])
    first = post(sim, chat(response_format={"type": "json_object"}))
    assert first.status_code == 200 and first.json()["choices"][0]["message"]["content"] == "not json at all"
    assert json.loads(post(sim, chat(response_format={"type": "json_object"})).json()["choices"][0]["message"]["content"]) == {}


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_bad_configuration_is_refused_and_changes_nothing(sim):
    before = sim.configure()
    with pytest.raises(RuntimeError, match="max_concurrency"):
        sim.configure(latency=1.0, max_concurrency=0)
    with pytest.raises(RuntimeError, match="unknown configuration"):
        sim.configure(latencyy=1.0)
    assert sim.stats()["max_concurrency"] == 64
    assert sim.configure() == before


def test_reset_clears_calls_and_stats(sim):
    post(sim, chat())
    sim.reset()
    assert sim.calls() == []
    assert sim.stats()["total_calls"] == 0 and sim.stats()["peak_in_flight"] == 0


def test_vllm_operational_endpoints(sim):
    post(sim, chat())
    assert httpx.get(f"{sim.root}/health").status_code == 200
    models = httpx.get(f"{sim.url}/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["glm-ocr"]
    assert metric(sim, "vllm:num_requests_running", model_name="glm-ocr") == 0
    assert metric(sim, "vllm:num_requests_waiting", model_name="glm-ocr") == 0
    assert metric(sim, "vllm:request_success_total", finished_reason="stop", model_name="glm-ocr") == 1
    assert metric(sim, "vllm:e2e_request_latency_seconds_bucket", le="+Inf") == 1



# --- the vllm timing: continuous batching, calibrated (bench/SIMULATOR.md) -----------------
#
# The scheduler is pure (the caller passes the time), so its timing is tested with a
# made-up clock; the server tests check what a client sees, with ratios and counters,
# never with the machine's speed.


def batching_params(**changes: float) -> BatchingParams:
    return replace(PROFILES["glm-ocr-a40"], **changes)


def run_to_idle(scheduler: BatchScheduler, *sequences: Sequence, at: float = 0.0) -> list[Sequence]:
    """Submit ``sequences`` at time ``at`` and run the scheduler until nothing is left."""
    scheduler.advance(at)
    for sequence in sequences:
        scheduler.submit(sequence)
    finished = []
    while (event := scheduler.next_event()) is not None:
        finished += scheduler.advance(event)
    return finished


def test_a_lone_sequence_takes_its_prefill_then_its_tokens_at_batch_one_speed():
    scheduler = BatchScheduler(batching_params(
        prefill_seconds_per_token=0.001, decode_step_seconds=0.01, decode_step_seconds_per_seq=0.005), 4)
    sequence = Sequence(prompt_tokens=100, output_tokens=50)
    assert run_to_idle(scheduler, sequence) == [sequence]
    assert sequence.scheduled == 0.0
    assert sequence.finished == pytest.approx(100 * 0.001 + 50 * (0.01 + 0.005))


def test_per_request_time_grows_with_the_running_batch():
    params = batching_params(prefill_seconds_per_token=0.0, decode_step_seconds=0.002, decode_step_seconds_per_seq=0.001)
    alone = Sequence(0, 100)
    run_to_idle(BatchScheduler(params, 8), alone)
    together = [Sequence(0, 100) for _ in range(8)]
    run_to_idle(BatchScheduler(params, 8), *together)
    assert alone.finished == pytest.approx(100 * 0.003)
    assert [s.finished for s in together] == pytest.approx([100 * 0.010] * 8)
    # each request is slower in a batch of 8, and the GPU does more requests per second
    assert together[0].finished / alone.finished == pytest.approx(10 / 3)
    assert 8 / together[0].finished > 1 / alone.finished


def test_a_sequence_speeds_up_when_the_others_leave_the_batch():
    params = batching_params(prefill_seconds_per_token=0.0, decode_step_seconds=0.002, decode_step_seconds_per_seq=0.001)
    short, long = Sequence(0, 10), Sequence(0, 30)
    run_to_idle(BatchScheduler(params, 8), short, long)
    assert short.finished == pytest.approx(10 * 0.004)
    assert long.finished == pytest.approx(10 * 0.004 + 20 * 0.003)


def test_sequences_above_max_num_seqs_wait_in_fifo_order():
    params = batching_params(prefill_seconds_per_token=0.0, decode_step_seconds=0.01, decode_step_seconds_per_seq=0.0)
    scheduler = BatchScheduler(params, 2)
    first, second, third, fourth = Sequence(0, 10), Sequence(0, 25), Sequence(0, 10), Sequence(0, 10)
    for sequence in (first, second, third, fourth):
        scheduler.submit(sequence)
    assert (scheduler.running, len(scheduler.waiting)) == (2, 2)
    run_to_idle(scheduler)
    assert third.scheduled == pytest.approx(first.finished) == pytest.approx(0.1)
    assert fourth.scheduled == pytest.approx(third.finished) == pytest.approx(0.2)
    assert second.finished == pytest.approx(0.25) and scheduler.peak == 2


def test_with_priorities_a_lower_one_is_admitted_first_and_equals_in_arrival_order():
    params = batching_params(prefill_seconds_per_token=0.0, decode_step_seconds=0.01, decode_step_seconds_per_seq=0.0)
    scheduler = BatchScheduler(params, 1)
    running, job_a, job_b, user = Sequence(0, 10), Sequence(0, 10, 1), Sequence(0, 10, 1), Sequence(0, 10, 0)
    for sequence in (running, job_a, job_b, user):
        scheduler.submit(sequence)
    assert list(scheduler.waiting) == [user, job_a, job_b]
    run_to_idle(scheduler)
    assert user.scheduled < job_a.scheduled < job_b.scheduled


def test_a_priority_is_refused_as_vllm_does_unless_the_policy_is_priority(sim):
    refused = post(sim, chat(priority=1))
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "Got priority 1 but Priority scheduling is not enabled."
    assert post(sim, chat(priority=0)).status_code == 200
    assert post(sim, chat(priority="high")).status_code == 400

    sim.configure(scheduling_policy="priority")
    assert post(sim, chat(priority=1), request_id="job").status_code == 200
    assert [c["priority"] for c in sim.calls()][-1] == 1


def test_a_prefill_pauses_the_decoding_batch():
    params = batching_params(prefill_seconds_per_token=0.001, decode_step_seconds=0.01, decode_step_seconds_per_seq=0.0)
    scheduler = BatchScheduler(params, 4)
    decoding = Sequence(0, 100)  # 1 s of decoding alone
    scheduler.submit(decoding)
    newcomer = Sequence(1000, 1)  # 1 s of prefill
    run_to_idle(scheduler, newcomer, at=0.5)
    assert decoding.finished == pytest.approx(2.0)
    assert newcomer.finished == pytest.approx(1.5 + 0.01)


def test_aborting_a_sequence_frees_its_slot_for_the_next():
    params = batching_params(prefill_seconds_per_token=0.0, decode_step_seconds=0.01, decode_step_seconds_per_seq=0.0)
    scheduler = BatchScheduler(params, 1)
    leaving, next_in_line, also_leaving = Sequence(0, 100), Sequence(0, 10), Sequence(0, 10)
    for sequence in (leaving, next_in_line, also_leaving):
        scheduler.submit(sequence)
    scheduler.advance(0.05)
    scheduler.abort(leaving)
    scheduler.abort(also_leaving)  # still waiting
    assert run_to_idle(scheduler, at=0.05) == [next_in_line]
    assert next_in_line.scheduled == pytest.approx(0.05) and next_in_line.finished == pytest.approx(0.15)
    assert (leaving.state, also_leaving.state) == ("aborted", "aborted")


def test_busy_slot_seconds_integrate_the_running_sequences():
    params = batching_params(prefill_seconds_per_token=0.0, decode_step_seconds=0.01, decode_step_seconds_per_seq=0.0)
    scheduler = BatchScheduler(params, 4)
    run_to_idle(scheduler, Sequence(0, 30), Sequence(0, 50))
    scheduler.advance(10.0)  # idle time adds nothing
    assert scheduler.busy_slot_seconds == pytest.approx(0.3 + 0.5)
    scheduler.reset_totals()
    assert scheduler.busy_slot_seconds == 0.0


@pytest.mark.parametrize("max_num_seqs", [16, 64])
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_capacity_bound_is_what_a_saturated_scheduler_completes(profile, max_num_seqs):
    params = PROFILES[profile]
    mix = ["text"] * 8 + ["table", "formula"]  # REFERENCE_TASK_MIX
    tasks = itertools.cycle(mix)
    scheduler = BatchScheduler(params, max_num_seqs)

    def refill() -> None:
        while scheduler.running < max_num_seqs:
            scheduler.submit(Sequence(REFERENCE_PROMPT_TOKENS, round(params.mean_output_tokens(next(tasks)))))

    refill()
    done, started_at = 0, None
    while done < 3000:
        finished = scheduler.advance(scheduler.next_event())
        refill()
        if started_at is None and finished:
            done, started_at = 0, scheduler.now  # past the first wave
        done += len(finished)
    measured = done / (scheduler.now - started_at)
    assert measured == pytest.approx(batching_capacity(params, max_num_seqs), rel=0.03)
    assert scheduler.busy_slot_seconds == pytest.approx(max_num_seqs * scheduler.now)


def test_output_lengths_follow_the_task_and_are_reproducible_with_a_seed():
    params = batching_params(text_output_tokens=100, table_output_tokens=400, formula_output_tokens=50, output_tokens_cv=0.6)
    lengths = OutputLengths(params, seed=5)
    draws = {task: [lengths.draw(task) for _ in range(4000)] for task in ("text", "table", "formula")}
    for task, mean in (("text", 100), ("table", 400), ("formula", 50)):
        assert statistics.mean(draws[task]) == pytest.approx(mean, rel=0.05)
        assert statistics.stdev(draws[task]) == pytest.approx(0.6 * mean, rel=0.15)
    again = OutputLengths(params, seed=5)
    again.draw("table")  # another task's draws do not shift this one's
    assert [again.draw("text") for _ in range(50)] == draws["text"][:50]
    other_seed = OutputLengths(params, seed=6)
    assert [other_seed.draw("text") for _ in range(50)] != draws["text"][:50]
    assert OutputLengths(replace(params, output_tokens_cv=0.0), seed=5).draw("formula") == 50


def test_command_line_flags_choose_the_timing_and_its_numbers():
    args = build_parser().parse_args(
        ["--max-num-seqs", "16", "--profile", "glm-ocr-bottleneck", "--seed", "3", "--text-output-tokens", "77"]
    )
    config = config_from_args(args)
    assert (config.timing, config.profile, config.seed, config.max_num_seqs) == ("vllm", "glm-ocr-bottleneck", 3, 16)
    assert config.batching == replace(PROFILES["glm-ocr-bottleneck"], text_output_tokens=77.0)
    assert config_from_args(build_parser().parse_args([])).timing == "fixed"
    command = SimulatorProcess(profile="glm-ocr-a100", seed=3, batching={"decode_step_seconds": 0.5}).command()
    assert " --profile glm-ocr-a100 --seed 3 --decode-step-seconds 0.5" in " ".join(command)


BATCHING_START = {"profile": "glm-ocr-a40", "seed": 7}


@pytest.fixture(scope="module")
def batching_server() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(**BATCHING_START) as server:
        yield server


@pytest.fixture()
def batching(batching_server: SimulatorProcess) -> SimulatorProcess:
    """A simulator in the vllm timing, as started, with no records."""
    batching_server.configure(**BATCHING_START, max_num_seqs=64, failures=[])
    batching_server.reset()
    return batching_server


def test_the_fixed_timing_stays_the_default_and_a_profile_selects_batching(sim, batching):
    fixed, batched = sim.stats(), batching.stats()
    assert (fixed["timing"], fixed["profile"]) == ("fixed", None)
    assert fixed["capacity_requests_per_second"] is None  # no latency: no bound
    assert (batched["timing"], batched["profile"], batched["max_num_seqs"]) == ("vllm", "glm-ocr-a40", 64)
    bound = batching_capacity(PROFILES["glm-ocr-a40"], 64)
    assert batched["capacity_requests_per_second"] == pytest.approx(bound)
    assert metric(batching, "sim_capacity_requests_per_second", task="mix") == pytest.approx(bound)
    assert metric(batching, "sim_max_num_seqs") == 64


async def test_calls_above_max_num_seqs_wait_in_the_batching_engine(batching):
    batching.configure(max_num_seqs=2, prefill_seconds_per_token=0, decode_step_seconds=0.005,
                       decode_step_seconds_per_seq=0, text_output_tokens=100, output_tokens_cv=0)
    waiting_seen = []
    async with httpx.AsyncClient(timeout=30) as client:
        calls = [asyncio.create_task(client.post(f"{batching.url}/chat/completions", json=chat())) for _ in range(5)]
        while not all(call.done() for call in calls):
            metrics = (await client.get(f"{batching.root}/metrics")).text
            waiting_seen.append(float(re.search(r"^vllm:num_requests_waiting\{.*\} (\S+)$", metrics, re.M)[1]))
            await asyncio.sleep(0.02)
        responses = await asyncio.gather(*calls)
    assert [r.status_code for r in responses] == [200] * 5
    assert max(waiting_seen) > 0
    stats = batching.stats()
    assert stats["peak_in_flight"] == 2 and stats["running"] == 0 and stats["queued"] == 0


def test_completion_tokens_follow_the_task_and_the_seed(batching):
    batching.configure(seed=11, prefill_seconds_per_token=0, decode_step_seconds=1e-5, decode_step_seconds_per_seq=0,
                       text_output_tokens=40, table_output_tokens=400, formula_output_tokens=8, output_tokens_cv=0.5)
    params = batching_params(text_output_tokens=40, table_output_tokens=400, formula_output_tokens=8, output_tokens_cv=0.5)
    image = jpeg()
    digest = hashlib.sha256(image).hexdigest()[:8]

    def completion_tokens(prompt: str, count: int, expected_answer: str) -> list[int]:
        bodies = [post(batching, chat(prompt, image)).json() for _ in range(count)]
        assert {b["choices"][0]["message"]["content"] for b in bodies} == {expected_answer}
        return [b["usage"]["completion_tokens"] for b in bodies]

    text = completion_tokens("Text Recognition:", 6, f"text 56x28 #{digest}")
    table = completion_tokens("Table Recognition:", 6, "<table><tr><td>cell 56x28</td></tr></table>")
    formula = completion_tokens("Formula Recognition:", 6, f"\\frac{{a}}{{b}} #{digest}")
    expected = OutputLengths(params, seed=11)
    assert text == [expected.draw("text") for _ in range(6)]
    assert table == [expected.draw("table") for _ in range(6)]
    assert formula == [expected.draw("formula") for _ in range(6)]
    assert statistics.mean(table) > 2 * statistics.mean(text) > 4 * statistics.mean(formula)
    batching.configure(seed=11)  # the same seed restarts the same streams
    assert completion_tokens("Text Recognition:", 6, f"text 56x28 #{digest}") == text
    batching.configure(seed=12)
    assert completion_tokens("Text Recognition:", 6, f"text 56x28 #{digest}") != text
    capped = post(batching, chat("Table Recognition:", image, max_tokens=5)).json()
    assert capped["usage"]["completion_tokens"] == 5 and capped["choices"][0]["finish_reason"] == "length"


async def test_a_call_takes_longer_when_more_calls_decode_beside_it(batching):
    batching.configure(max_num_seqs=8, prefill_seconds_per_token=0, decode_step_seconds=0.001,
                       decode_step_seconds_per_seq=0.004, text_output_tokens=60, output_tokens_cv=0)
    async with httpx.AsyncClient(timeout=30) as client:
        await client.post(f"{batching.url}/chat/completions", json=chat())
        await asyncio.gather(*(client.post(f"{batching.url}/chat/completions", json=chat()) for _ in range(8)))
    durations = [c["finished"] - c["started"] for c in batching.calls()]
    alone, in_batch = durations[0], statistics.mean(durations[1:])
    assert in_batch / alone > 3  # the model says 33 ms / 5 ms per step: 6.6


async def test_busy_slot_seconds_measure_utilisation_between_two_scrapes(batching):
    batching.configure(max_num_seqs=4, prefill_seconds_per_token=0, decode_step_seconds=0.004,
                       decode_step_seconds_per_seq=0, text_output_tokens=100, output_tokens_cv=0)
    before = batching.stats()
    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(client.post(f"{batching.url}/chat/completions", json=chat()) for _ in range(3)))
    after = batching.stats()
    busy = after["busy_slot_seconds"] - before["busy_slot_seconds"]
    running_time = sum(c["finished"] - c["started"] for c in batching.calls())
    assert busy == pytest.approx(running_time, rel=0.25)
    utilisation = busy / (after["max_num_seqs"] * (after["clock_seconds"] - before["clock_seconds"]))
    assert 0 < utilisation <= 1
    assert metric(batching, "sim_busy_slot_seconds_total") >= after["busy_slot_seconds"]
    assert metric(batching, "vllm:e2e_request_latency_seconds_count") == 3


def test_a_client_leaving_aborts_its_sequence(batching):
    batching.configure(prefill_seconds_per_token=0, decode_step_seconds=0.01, decode_step_seconds_per_seq=0,
                       text_output_tokens=1000, output_tokens_cv=0)  # 10 s if it were not aborted
    with pytest.raises(httpx.ReadTimeout):
        post(batching, chat(), timeout=0.2)
    wait_until(lambda: batching.stats()["running"] == 0)
    assert [c["status"] for c in batching.calls()] == [499]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"profile": "glm-ocr-h100"}, "profile"),
        ({"timing": "warp"}, "timing"),
        ({"decode_step_seconds": 0}, "decode_step_seconds"),
        ({"prefill_seconds_per_token": -1e-6}, "prefill_seconds_per_token"),
        ({"table_output_tokens": 0.5}, "table_output_tokens"),
        ({"output_tokens_cv": "wide"}, "output_tokens_cv"),
        ({"seed": 1.5}, "seed"),
        ({"max_num_seqs": 0}, "max_num_seqs"),
        ({"max_concurrency": 2, "max_num_seqs": 3}, "max_num_seqs"),
        ({"scheduling_policy": "lifo"}, "scheduling_policy"),
    ],
)
def test_bad_batching_configuration_is_400_naming_the_field(sim, changes, field):
    response = httpx.post(f"{sim.root}/_sim/config", json={"latency": 1.0, **changes})
    assert response.status_code == 400
    assert f"'{field}'" in response.json()["error"]["message"]
    config = sim.configure()  # an empty change answers the configuration in force
    assert (config["timing"], config["latency"], config["max_num_seqs"]) == ("fixed", 0.0, 64)
