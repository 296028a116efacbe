"""Three VLM stand-ins behind one client, one killed mid-load (issue #20): no call is
lost, the two others take the rest, and the dead one is out of the rotation."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
from docparse.recognition.crops import encode_jpeg_data_uri
from docparse.recognition.vlm import VlmClient
from docparse.settings import VlmSettings
from vlmsim import SimulatorProcess

IMAGE = encode_jpeg_data_uri(np.full((28, 28, 3), 255, np.uint8))  # the stand-ins decode it
CALLS = 120
PER_SERVER = 6


async def test_a_server_killed_under_load_loses_no_call_and_the_others_carry_it():
    sims = [SimulatorProcess(latency=0.05, max_concurrency=64) for _ in range(3)]
    try:
        for sim in sims:
            sim.start()
        victim = sims[1]
        client = VlmClient(VlmSettings(
            url=",".join(sim.url for sim in sims), max_concurrency=PER_SERVER, max_retries=1,
            retry_backoff=0.05, connect_timeout=1, circuit_failures=2, circuit_open_seconds=30, dns_refresh=0,
        ))
        try:
            assert client.slots.limit == 3 * PER_SERVER
            calls = [asyncio.ensure_future(client.complete(IMAGE, "Text Recognition:", max_tokens=10, temperature=0.0,
                                                           request_id=f"r{i}")) for i in range(CALLS)]
            deadline = asyncio.get_running_loop().time() + 30
            while len(await asyncio.to_thread(victim.calls)) < 10:  # mid-load: it has served some
                assert asyncio.get_running_loop().time() < deadline, "the victim got no calls"
                await asyncio.sleep(0.02)
            os.kill(victim.process.pid, signal.SIGKILL)
            answers = await asyncio.wait_for(asyncio.gather(*calls), 60)
            assert len(answers) == CALLS and all(answers)  # none lost, though one retry at most each
            survivors = [len(await asyncio.to_thread(sim.calls)) for sim in (sims[0], sims[2])]
            assert min(survivors) > 10 and sum(survivors) >= CALLS - 10 - PER_SERVER
            states = {e.url: (e.state, e.in_flight) for e in client.pool.endpoints}
            assert states[victim.url] == ("down", 0)
            assert [states[sims[0].url][0], states[sims[2].url][0]] == ["up", "up"]
            assert client.slots.limit == 2 * PER_SERVER
        finally:
            await client.aclose()
    finally:
        for sim in sims:
            sim.stop()
