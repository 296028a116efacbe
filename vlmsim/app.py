"""The HTTP face of a Simulator: vLLM's routes (chat completions, models, health,
metrics) plus ``/_sim/*`` to read the records and change the behaviour."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from vlmsim.chat import ABORTED, ApiError
from vlmsim.metrics import CONTENT_TYPE
from vlmsim.simulator import Simulator


async def cancel_when_client_leaves(request: Request, call: asyncio.Future) -> None:
    """Cancels ``call`` once the client disconnects, as vLLM aborts such a request
    (uvicorn does not cancel a handler by itself). The body must have been read."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    call.cancel()


def create_app(simulator: Simulator) -> FastAPI:
    """The FastAPI app serving ``simulator``: vLLM's routes plus ``/_sim/*`` controls."""
    app = FastAPI(title="VLM simulator (vLLM + GLM-OCR stand-in)")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        call = asyncio.ensure_future(simulator.complete(await request.body(), request.headers.get("x-request-id", "")))
        watcher = asyncio.ensure_future(cancel_when_client_leaves(request, call))
        try:
            status, body = await call
        except asyncio.CancelledError:
            if not watcher.done():  # this handler itself is being cancelled
                raise
            return JSONResponse({"error": {"message": "client disconnected"}}, status_code=ABORTED)
        finally:
            watcher.cancel()
        return JSONResponse(body, status_code=status)

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [{
                "id": simulator.model, "object": "model", "created": int(time.time()),
                "owned_by": "vllm", "root": simulator.model, "parent": None,
            }],
        }

    @app.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(simulator.metrics.exposition(), media_type=CONTENT_TYPE)

    add_control_routes(app, simulator)
    return app


def add_control_routes(app: FastAPI, simulator: Simulator) -> None:
    """``/_sim/*``: the records, the totals, a reset, and the behaviour's configuration."""

    @app.get("/_sim/calls")
    async def calls() -> list[dict]:
        return list(simulator.calls)

    @app.get("/_sim/stats")
    async def stats() -> dict:
        return simulator.stats()

    @app.post("/_sim/reset")
    async def reset() -> dict:
        simulator.reset()
        return simulator.stats()

    @app.post("/_sim/config")
    async def configure(request: Request) -> JSONResponse:
        try:
            await simulator.configure(json.loads(await request.body() or b"{}"))
        except ValueError as exc:
            error = ApiError(400, f"the configuration is not valid JSON: {exc}")
            return JSONResponse(error.body(), status_code=error.status)
        except ApiError as error:
            return JSONResponse(error.body(), status_code=error.status)
        return JSONResponse(simulator.config())
