"""One small thread pool for CPU work off the event loop (crops, page assembly).

Why not ``asyncio.to_thread``: in Triton the loop's default executor is large (256
threads, for BLS waits), and a burst of documents put hundreds of crops on it at once.
They shared the cores, so each one finished only when nearly all did, and the VLM sat
idle at the start of every burst. With as many threads as cores, first come first
served, work finishes in order and feeds the VLM at once (BENCHMARKS.md, "bursts").
"""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="docparse-cpu")


async def run_cpu(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` on the CPU pool, awaited from the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(function, *args))
