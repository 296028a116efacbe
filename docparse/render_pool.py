"""PDF pages rendered in worker processes, each within a time and a memory limit.

pdfium cannot be interrupted, and a page of a few kilobytes can take minutes and
gigabytes (forms that draw each other ten times, six levels deep: a million squares,
9 s and 1.7 GB here). Rendered in the server's own process, such a page would hold every
other document behind it (pdfium allows one call at a time per process). In a worker, a
page past HPS_RENDER_TIMEOUT is abandoned by stopping its worker (the pool starts
another), and one that needs more than HPS_RENDER_MAX_MEMORY_MB stops its worker by
itself; either way the document gets a 422 naming the page. A pdfium crash on a
malformed file stops a worker, not the server; and pages of different documents render
side by side on HPS_RENDER_WORKERS cores.

A document goes to the workers as a file (each worker opens it once, pdfium reads it
as it needs), and pixels come back through shared memory. The cost, A4 at 144 dpi here:
about 4 ms a page (7.6 ms for the generated test page that renders in 3.3 ms in
process; no difference beyond noise for a page of 28 ms), most of it copying the 6 MB
out; pickled through a pipe a page cost 15 ms more.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import shutil
import signal
import sys
import tempfile
import uuid
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pebble

from docparse.errors import InvalidDocumentError
from docparse.render import PdfFile, RenderedJpeg
from docparse.responses import PageTextLayer

# Documents a worker keeps open, for the pages of requests that take turns on it. Each
# reopening costs the open and the document's font caches: with 12 documents in flight
# over 2 workers and 4 kept open, a page took 26 ms instead of 20 (BENCHMARKS.md,
# "Feeding the VLM"). A document whose request is done is closed whatever this is.
OPEN_PER_WORKER = 16


class RenderPool:
    """Worker processes rendering PDF pages; ``open`` gives a document whose pages they
    render. Thread-safe: pdf_render's requests use it from several threads."""

    def __init__(self, workers: int, timeout: float, max_memory_mb: int) -> None:
        self.timeout = timeout
        self.max_memory_mb = max_memory_mb
        self._pool = pebble.ProcessPool(
            max_workers=workers, context=_spawn_context(), initializer=_start_worker, initargs=(max_memory_mb,)
        )
        # Start the workers now: each takes about a second to import pdfium and numpy.
        for future in [self._pool.schedule(_ready) for _ in range(workers)]:
            future.result()

    def open(self, data: bytes) -> "PooledPdf":
        return PooledPdf(self, data)

    def run(self, function: Callable[..., Any], args: tuple, what: str) -> Any:
        """``function(*args)`` in a worker; ``what`` (\"page 3 of the PDF\") names what
        did not render in the error when the worker is stopped or stops."""
        future = self._pool.schedule(function, args=args, timeout=self.timeout)
        try:
            return future.result()
        except FutureTimeout:
            raise InvalidDocumentError(
                f"{what} took longer than {self.timeout:g} s to render (HPS_RENDER_TIMEOUT); it was abandoned"
            ) from None
        except pebble.ProcessExpired:
            raise InvalidDocumentError(
                f"{what} could not be rendered: the renderer stopped on it (it needs more than "
                f"{self.max_memory_mb} MB, HPS_RENDER_MAX_MEMORY_MB, or the file is damaged)"
            ) from None

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()


class PooledPdf:
    """An open PDF whose pages render in the pool; used as ``docparse.render.PdfFile``.
    Its pages come back through one shared memory buffer, reused page after page
    (fresh shared memory for each page cost 7 ms more: the system clears new pages)."""

    def __init__(self, pool: RenderPool, data: bytes) -> None:
        self._pool = pool
        self._pixels: SharedMemory | None = None
        # A new name for each document: a worker keeps files open by name.
        handle, name = tempfile.mkstemp(prefix=f"docparse-{uuid.uuid4().hex}-", suffix=".pdf")
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        self._path: Path | None = Path(name)
        try:
            self.page_count: int = pool.run(_page_count, (self._path,), "the PDF")
        except BaseException:
            self.close()
            raise

    def render(self, index: int, dpi: int, max_pixels: int) -> tuple[np.ndarray, float]:
        if self._path is None:
            raise ValueError("the PDF is closed")
        if self._pixels is None:  # room for the largest page; memory is used as it is written
            self._pixels = SharedMemory(create=True, size=max_pixels * 3)
        args = (self._path, index, dpi, max_pixels, self._pixels.name)
        shape, scale = self._pool.run(_render, args, f"page {index + 1} of the PDF")
        return np.array(np.ndarray(shape, np.uint8, buffer=self._pixels.buf)), scale

    def render_jpeg(self, index: int, dpi: int, max_page_pixels: int, max_pixels: int, quality: int) -> RenderedJpeg:
        """As ``PdfFile.render_jpeg``, in a worker: the JPEG comes back, not the pixels."""
        if self._path is None:
            raise ValueError("the PDF is closed")
        args = (self._path, index, dpi, max_page_pixels, max_pixels, quality)
        return self._pool.run(_render_jpeg, args, f"page {index + 1} of the PDF")

    def text_layer(self, index: int, scale: float) -> PageTextLayer:
        if self._path is None:
            raise ValueError("the PDF is closed")
        return self._pool.run(_text_layer, (self._path, index, scale), f"the text of page {index + 1} of the PDF")

    def close(self) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None
        if self._pixels is not None:
            self._pixels.close()
            self._pixels.unlink()
            self._pixels = None


def _spawn_context() -> Any:
    """Workers start as new interpreters (the server's process has threads, so no fork)
    of this Python: inside Triton's Python backend ``sys.executable`` is the stub, and
    the environment's ``python3`` is the one to run."""
    context = multiprocessing.get_context("spawn")
    if not Path(sys.executable).name.startswith("python"):
        candidate = Path(sys.prefix) / "bin" / "python3"
        context.set_executable(str(candidate) if candidate.exists() else shutil.which("python3"))
    return context


# --- in the workers ---------------------------------------------------------------------

_open: dict[Path, PdfFile] = {}


def _start_worker(max_memory_mb: int) -> None:
    """A page that needs more memory stops its worker: pdfium ends the process when an
    allocation fails. SIGTERM stops a worker at once, also inside pdfium (pebble's
    handler is Python, which waits for pdfium to return: 3 s, then SIGKILL)."""
    limit = max_memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _ready() -> None:
    """Nothing: the first task, which imports this module and pdfium."""


def _opened(path: Path) -> PdfFile:
    """The document at ``path``, opened once per worker. Documents whose file is gone
    (their request is done) are closed, and the least recently used beyond ``OPEN_PER_WORKER``."""
    for other in [p for p in _open if p != path and not p.exists()]:
        _open.pop(other).close()
    if path not in _open:
        while len(_open) >= OPEN_PER_WORKER:
            _open.pop(next(iter(_open))).close()
        _open[path] = PdfFile(path)
    _open[path] = _open.pop(path)  # the most recently used last: the least recent is closed first
    return _open[path]


def _page_count(path: Path) -> int:
    return _opened(path).page_count


def _render(path: Path, index: int, dpi: int, max_pixels: int, pixels: str) -> tuple[tuple[int, ...], float]:
    """Page ``index`` into the shared memory named ``pixels``; its shape and scale."""
    memory = SharedMemory(name=pixels)
    try:
        image, scale = _opened(path).render(
            index, dpi, max_pixels, lambda shape: np.ndarray(shape, np.uint8, buffer=memory.buf)
        )
        shape = image.shape
        del image  # the view must go before the memory is closed
    finally:
        memory.close()
    return shape, scale


def _render_jpeg(path: Path, index: int, dpi: int, max_page_pixels: int, max_pixels: int, quality: int) -> RenderedJpeg:
    return _opened(path).render_jpeg(index, dpi, max_page_pixels, max_pixels, quality)


def _text_layer(path: Path, index: int, scale: float) -> PageTextLayer:
    """Page ``index``'s words (``docparse.text_layer``), where pdfium may run."""
    return _opened(path).text_layer(index, scale)
