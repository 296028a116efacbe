"""Cancel a request's work when its HTTP client goes away (uvicorn does not cancel a
handler on disconnect; it only notices when the response is sent)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

from starlette.requests import Request

from docparse.errors import ClientGoneError

T = TypeVar("T")

async def until_disconnected(request: Request) -> None:
    """Returns when the client goes away (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``await work``, cancelling it if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            raise ClientGoneError("the client disconnected; its work was cancelled")
        return task.result()
    finally:
        for pending in (task, watcher):
            pending.cancel()
        # Wait until both have really stopped: a cancelled ``anext(events)`` still runs
        # until it reaches an await, and closing its generator before then fails with
        # "aclose(): asynchronous generator is already running".
        await asyncio.gather(task, watcher, return_exceptions=True)
