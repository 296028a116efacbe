"""Sending the documents to the gateway once per model, and timing each request.

A model's documents go together, at the chosen concurrency, before the next model's
start: so its pages/s is its own (two models interleaved would share the gateway and
the VLM, and each would be slowed by the other), and each latency is one request's
``/layout-parsing`` round trip as a client sees it (upload, parse, answer).
"""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from docparse.cli import CliError, gateway_client, unreachable

#: Leading bytes of the files the gateway parses, and their ``fileType`` (0 PDF, 1 image).
MAGIC = {b"%PDF": 0, b"\x89PNG": 1, b"\xff\xd8\xff": 1, b"II*\x00": 1, b"MM\x00*": 1, b"BM": 1, b"GIF8": 1}


@dataclass
class Call:
    """One document through one model: its pages' Markdown, or why there are none."""

    document: str
    model: str
    latency_s: float
    pages: list[str] = field(default_factory=list)
    status: int | None = None  # the HTTP status; None when no answer came
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ModelRun:
    """A model's calls and the wall time of all of them (at the run's concurrency)."""

    model: str
    wall_s: float
    calls: list[Call]


def file_type(path: Path) -> int:
    """0 for a PDF, 1 for an image, by its first bytes; anything else is a CliError, said
    before a single request goes out."""
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    with open(path, "rb") as handle:
        head = handle.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return 1
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return kind
    raise CliError(f"{path}: not a PDF or an image (PNG, JPEG, TIFF, BMP, GIF, WebP)")


def error_text(response: httpx.Response) -> str:
    """The gateway's errorMsg, or the start of whatever else it answered."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict) and "errorMsg" in body:
        return str(body["errorMsg"])
    return str(body)[:300]


def send(client: httpx.Client, url: str, path: Path, kind: int, model: str) -> Call:
    """One ``/layout-parsing`` request. A refused one is a failed Call (its status and
    message), except what ends the whole run: the gateway unreachable, or a 422 about the
    model (an unknown name: the server's message lists the names it has)."""
    body = {"file": base64.b64encode(path.read_bytes()).decode("ascii"), "fileType": kind, "model": model}
    started = time.perf_counter()
    try:
        response = client.post(f"{url}/layout-parsing", json=body)
    except httpx.ConnectError:
        raise unreachable(url) from None
    except httpx.HTTPError as exc:
        return Call(path.name, model, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - started
    if response.status_code != 200:
        message = error_text(response)
        if response.status_code == 422 and "model" in message.lower():
            raise CliError(f"model {model!r} refused by the gateway: {message}")
        return Call(path.name, model, latency, status=response.status_code, error=message)
    try:
        pages = [(page.get("markdown") or {}).get("text", "") for page in response.json()["result"]["layoutParsingResults"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return Call(path.name, model, latency, status=200, error=f"an answer this client cannot read: {exc!r}")
    return Call(path.name, model, latency, pages=pages, status=200)


def run_model(url: str, files: list[Path], kinds: list[int], model: str, concurrency: int) -> ModelRun:
    """All ``files`` through ``model``, ``concurrency`` requests at a time."""
    with gateway_client() as client:  # thread-safe; its pool holds 100 connections
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            calls = list(pool.map(lambda item: send(client, url, item[0], item[1], model), zip(files, kinds)))
        return ModelRun(model, time.perf_counter() - started, calls)


def run(url: str, files: list[Path], models: list[str], concurrency: int) -> list[ModelRun]:
    """Every file through every model, a model at a time, in the order given."""
    kinds = [file_type(path) for path in files]
    return [run_model(url, files, kinds, model, concurrency) for model in models]
