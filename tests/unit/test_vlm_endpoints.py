"""Several VLM servers behind one client (issue #20): the least busy server gets the call,
each within its own bound; one found down is left out, its calls go to the others, and it
is probed and used again once back; a DNS name is every address it resolves to."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest

from docparse.errors import RecognitionUnavailableError
from docparse.recognition.endpoints import EndpointPool, system_resolver
from docparse.recognition.crops import encode_jpeg_data_uri
from docparse.recognition.vlm import VlmClient
from docparse.settings import Settings, VlmSettings
from docparse.settings_env import SettingsError
from scripts.processes import free_port
from tests.support.scripted_http import Reply, ScriptedServer
from vlmsim import SimulatorProcess

IMAGE = encode_jpeg_data_uri(np.full((28, 28, 3), 255, np.uint8))  # the stand-ins decode it
ANSWER = Reply(200, json={"choices": [{"message": {"role": "assistant", "content": "ok"}}]})


def pool_of(*urls: str, limit: int = 2, **options) -> EndpointPool:
    settings = dict(failures=2, open_seconds=0.3, dns_refresh=0.0) | options
    return EndpointPool(urls, limit, **settings)


async def ask(client: VlmClient) -> str:
    return await client.complete(IMAGE, "Text Recognition:", max_tokens=10, temperature=0.0)


async def until(condition, timeout: float = 10.0, what: str = "the condition") -> None:
    """Wait for ``condition()`` (checked every 20 ms), failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.02)


async def test_the_least_busy_server_gets_each_call_within_its_own_bound():
    pool = pool_of("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", limit=2)
    first, second = await pool.acquire(), await pool.acquire()
    assert first is not second  # each holds one now
    third = await pool.acquire()
    pool.release(third, outcome="ok")
    pool.release(first, outcome="ok")  # first's server now holds none, the other one
    again = await pool.acquire()
    assert again is first
    await pool.acquire()
    fourth = await pool.acquire()  # both hold 2: full
    assert sorted(e.in_flight for e in pool.endpoints) == [2, 2]
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # no server takes a third call
    pool.release(fourth, outcome="ok")
    assert await asyncio.wait_for(waiting, 2) is fourth
    assert pool.capacity == 4


async def test_the_clients_fair_queue_is_bounded_by_the_sum_of_the_servers_bounds():
    async with ScriptedServer(*[Reply(200, json=ANSWER.json, delay=0.3)] * 8) as a, \
            ScriptedServer(*[Reply(200, json=ANSWER.json, delay=0.3)] * 8) as b:
        client = VlmClient(VlmSettings(url=f"{a.url},{b.url}", max_concurrency=2, dns_refresh=0))
        try:
            assert client.slots.limit == 4
            calls = [asyncio.ensure_future(ask(client)) for _ in range(6)]
            await until(lambda: len(a.requests) + len(b.requests) == 4, what="four calls sent")
            await asyncio.sleep(0.1)
            assert (len(a.requests), len(b.requests)) == (2, 2)  # the other two wait here
            assert await asyncio.gather(*calls) == ["ok"] * 6
            assert len(a.requests) + len(b.requests) == 6
        finally:
            await client.aclose()


async def test_a_server_that_dies_is_left_out_its_calls_retried_elsewhere_and_used_again_when_back():
    with SimulatorProcess(latency=0.0) as a, SimulatorProcess(latency=0.0) as b:
        client = VlmClient(VlmSettings(
            url=f"{a.url},{b.url}", max_concurrency=4, max_retries=0, connect_timeout=1,
            circuit_failures=2, circuit_open_seconds=0.5, dns_refresh=0,
        ))
        try:
            os.kill(b.process.pid, signal.SIGKILL)
            b.process.wait(10)
            # No retries allowed, yet no call fails: a call refused by b goes to a at once.
            answers = await asyncio.gather(*(ask(client) for _ in range(12)))
            assert len(answers) == 12 and all(answer.startswith("text") for answer in answers)
            down = [e for e in client.pool.endpoints if e.url == b.url][0]
            assert down.state == "down" and down.failures >= 2
            assert client.slots.limit == 4  # the fair queue now admits only what a takes
            assert len(await asyncio.to_thread(a.calls)) == 12
            b.start()  # same port: probed once its 0.5 s are over, then called again

            async def b_answers() -> bool:
                await ask(client)
                return len(await asyncio.to_thread(b.calls)) > 0

            deadline = asyncio.get_running_loop().time() + 10
            while not await b_answers():
                assert asyncio.get_running_loop().time() < deadline, "b was never called again"
            assert down.state == "up" and client.slots.limit == 8
        finally:
            await client.aclose()


async def test_every_server_down_makes_the_client_down_and_says_when_to_retry():
    ports = [free_port(), free_port()]
    client = VlmClient(VlmSettings(
        url=",".join(f"http://127.0.0.1:{port}/v1" for port in ports), max_retries=3, retry_backoff=0.01,
        connect_timeout=1, circuit_failures=1, circuit_open_seconds=5, dns_refresh=0,
    ))
    try:
        with pytest.raises(RecognitionUnavailableError):
            await ask(client)
        assert [e.state for e in client.pool.endpoints] == ["down", "down"]
        with pytest.raises(RecognitionUnavailableError, match="all 2 servers are down") as refused:
            await ask(client)
        assert 1 <= refused.value.retry_after <= 5
    finally:
        await client.aclose()


async def test_a_dns_name_is_every_address_it_resolves_to_and_keeps_its_host_header():
    port = free_port()
    names = {"vlm.test": ["127.0.0.1", "127.0.0.2"]}

    async def resolver(host: str, _port: int) -> list[str]:
        if host not in names:
            raise OSError(f"no such name {host}")
        return names[host]

    async with ScriptedServer(*[ANSWER] * 20, host="127.0.0.1", port=port) as one, \
            ScriptedServer(*[ANSWER] * 20, host="127.0.0.2", port=port) as two:
        settings = VlmSettings(url=f"http://vlm.test:{port}/v1", max_concurrency=3, dns_refresh=0.2)
        pool = EndpointPool(settings.urls, 3, failures=2, open_seconds=1, dns_refresh=0.2, resolver=resolver)
        client = VlmClient(settings, pool)
        try:
            assert await asyncio.gather(*(ask(client) for _ in range(6))) == ["ok"] * 6
            assert [e.url for e in pool.endpoints] == [f"http://127.0.0.1:{port}/v1", f"http://127.0.0.2:{port}/v1"]
            assert one.requests and two.requests
            assert {r.headers["host"] for r in one.requests + two.requests} == {f"vlm.test:{port}"}
            assert client.slots.limit == 6
            names["vlm.test"] = ["127.0.0.2"]  # a pod went away: refreshed within 0.2 s
            deadline = asyncio.get_running_loop().time() + 5
            while len(pool.endpoints) > 1:  # calls start the look-up once it is 0.2 s old
                assert asyncio.get_running_loop().time() < deadline, "the address stayed"
                await ask(client)
                await asyncio.sleep(0.05)
            assert client.slots.limit == 3
            before = len(one.requests)
            await ask(client)
            assert len(one.requests) == before
            del names["vlm.test"]  # the look-up fails: the last addresses are kept
            await pool.refresh()
            assert [e.url for e in pool.endpoints] == [f"http://127.0.0.2:{port}/v1"]
        finally:
            await client.aclose()


async def test_the_system_resolver_finds_localhost():
    assert "127.0.0.1" in await system_resolver("localhost", 80)


def test_an_https_url_or_an_address_is_used_as_written():
    pool = pool_of("https://vlm.example.com/v1", "http://10.0.0.1:8000/v1", dns_refresh=30)
    asyncio.run(pool.refresh())  # neither needs a look-up
    assert [e.url for e in pool.endpoints] == ["https://vlm.example.com/v1", "http://10.0.0.1:8000/v1"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://a:1/v1,ftp://b/v1", "HPS_VLM_URL: URL 2 of 2 ('ftp://b/v1') must start with http:// or https://"),
        ("http://a:1/v1,,http://b/v1", "HPS_VLM_URL: an empty entry in the comma-separated URL list"),
        ("http://a:1/v1,http://a:1/v1/", "HPS_VLM_URL: a URL is listed twice"),
    ],
)
def test_a_malformed_url_list_is_refused_naming_the_setting(monkeypatch, value, message):
    monkeypatch.setenv("HPS_VLM_URL", value)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.load()


def test_a_profile_lists_its_servers_as_text_or_a_list(monkeypatch):
    monkeypatch.setenv("HPS_VLM_PROFILES", '[{"name": "a", "model": "m", "url": ["http://x:1/v1", "http://y:2/v1"]},'
                                           ' {"name": "b", "model": "m", "url": "http://x:1/v1, nope"}]')
    with pytest.raises(SettingsError, match=r"profile 'b', field url: URL 2 of 2 \('nope'\)"):
        Settings.load()
    monkeypatch.setenv("HPS_VLM_PROFILES", '[{"name": "a", "model": "m", "url": ["http://x:1/v1", "http://y:2/v1"]}]')
    assert Settings.load().vlm.profile_list[0].urls == ("http://x:1/v1", "http://y:2/v1")
