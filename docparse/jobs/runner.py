"""Runs stored jobs in the background of a worker process: claims them fairly from the
store, parses their unfinished pages through an event source (the gateway's Triton
client), stores each page as it comes, and retries, takes over, cancels and cleans up.

One rule makes jobs survive anything: a page is stored the moment it is done, and every
run asks only for the pages not stored yet (or stored failed). A worker that dies loses
only the pages it had in flight; the next worker to claim the job, once the dead one's
lease has run out, continues from there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
import weakref
from contextlib import aclosing, suppress
from typing import Any, AsyncIterator, Callable, Protocol

import orjson
import pybase64

from docparse.errors import DeadlineExceededError, DocParseError, as_error
from docparse.jobs.model import JobError, JobStatus
from docparse.jobs.pages import page_spec, selected_pages
from docparse.jobs.store import JobStore, JobStoreError
from docparse.protocol import json_bytes
from docparse.responses import FinalEvent, PageEvent, StreamEvent
from docparse.settings import JobSettings

log = logging.getLogger(__name__)

EventSource = Callable[[dict, str], AsyncIterator[StreamEvent]]
MAX_RETRY_DELAY = 60.0
MAX_CALLBACK_DELAY = 300.0
HOUSEKEEPING_INTERVAL = 30.0


class CallbackSender(Protocol):
    async def send(self, url: str, body: bytes) -> None:
        """Deliver ``body`` to ``url``; raise with the reason when it was not accepted."""


class LeaseLost(Exception):
    """The job is no longer this worker's to run: cancelled, or taken over."""


def page_failed(event: PageEvent) -> bool:
    """A page counts as failed (and is retried) when it or any of its regions failed."""
    return event.result.prunedResult.error is not None or event.result.regions.failed > 0


def is_final_error(exc: DocParseError) -> bool:
    """Errors of the request itself (4xx): running it again gives the same answer."""
    return exc.status < 500


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        events: EventSource,
        settings: JobSettings,
        stall_timeout: float,
        callbacks: CallbackSender | None = None,
        page_charges: Callable[[str, int], None] | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.settings = settings
        self.stall_timeout = stall_timeout  # most seconds between two events of a run
        self.callbacks = callbacks
        self.page_charges = page_charges  # (owner, pages): a quota charged for stored pages
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        # job id -> the event its followers here wait on; set (and dropped) when it moves on
        self._changes: weakref.WeakValueDictionary[str, asyncio.Event] = weakref.WeakValueDictionary()
        self._stopping = False

    def wake(self) -> None:
        """Look for work now (a job was submitted in this process)."""
        self._wake.set()

    async def wait_for_change(self, job_id: str, timeout: float) -> None:
        """Return when this process stored a page of the job or ended it, or after
        ``timeout`` s (followers of a job run elsewhere notice it at their next look)."""
        event = self._changes.get(job_id)
        if event is None:
            event = self._changes[job_id] = asyncio.Event()
        await wait_at_most(event, timeout)

    def _moved_on(self, job_id: str) -> None:
        event = self._changes.pop(job_id, None)
        if event is not None:
            event.set()

    def cancel_local(self, job_id: str) -> None:
        """Stop a job this process runs at once (it was cancelled); others notice it at
        their next lease renewal."""
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()

    async def run(self) -> None:
        """Claim and run jobs until cancelled; then give running ones back to the queue."""
        housekeeping = asyncio.create_task(self._housekeeping())
        try:
            while True:
                await self._claim_while_free()
                self._wake.clear()
                await wait_at_most(self._wake, self.settings.poll_interval)
        finally:
            self._stopping = True
            housekeeping.cancel()
            tasks = list(self._running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(housekeeping, *tasks, return_exceptions=True)

    async def _claim_while_free(self) -> None:
        while len(self._running) < self.settings.concurrency:
            try:
                row = await asyncio.to_thread(self.store.claim, self.worker, self.settings.lease)
            except JobStoreError as exc:
                log.error("claiming a job failed: %s", exc.message)
                return
            if row is None:
                return
            task = asyncio.create_task(self._run_job(row), name=f"job-{row['id']}")
            self._running[row["id"]] = task
            task.add_done_callback(lambda _t, job_id=row["id"]: self._finished_task(job_id))

    def _finished_task(self, job_id: str) -> None:
        self._running.pop(job_id, None)
        self._wake.set()  # a free place: look for the next job

    # --- one job ------------------------------------------------------------------------

    async def _run_job(self, row: dict[str, Any]) -> None:
        job_id = row["id"]
        work = asyncio.current_task()
        assert work is not None
        keeper = asyncio.create_task(self._keep_lease(job_id, work))
        try:
            await self._attempt(row)
        except asyncio.CancelledError:
            if self._stopping:
                await self._quietly(self.store.release, job_id, self.worker)
            # else: cancelled or taken over; its new owner (or nobody) goes on
        except LeaseLost:
            log.info("job %s: no longer this worker's (cancelled or taken over)", job_id)
        except JobStoreError as exc:
            log.error("job %s: %s", job_id, exc.message)
            await self._quietly(self.store.finish, job_id, self.worker, JobStatus.FAILED,
                                JobError(code=exc.status, message=exc.message), self.settings.ttl)
        except Exception as exc:  # noqa: BLE001 - a job must end, never hang in running
            log.exception("job %s failed", job_id)
            await self._give_up_or_retry(row, as_error(exc))
        finally:
            keeper.cancel()

    async def _attempt(self, row: dict[str, Any]) -> None:
        """One run: the job's unfinished pages, stored one by one, then its verdict."""
        job_id = row["id"]
        if row["attempts"] > self.settings.max_attempts:
            last = row["error_message"] or "its worker stopped before finishing (a crash or a kill)"
            await self._finish(job_id, JobStatus.FAILED, JobError(
                code=row["error_code"] or 500, message=gave_up(row["attempts"] - 1, last)))
            return
        options = orjson.loads(row["options"])
        states = await asyncio.to_thread(self.store.page_states, job_id)
        spec = options.get("pages")
        if row["pages_total"] is not None:
            todo = [i for i in selected_pages(spec, row["pages_total"]) if states.get(i, True)]
            if todo:
                spec = page_spec(todo)
            else:
                await self._conclude(job_id)
                return
        document = await asyncio.to_thread(self.store.document, job_id)
        if document is None:
            raise JobStoreError("the job's document is missing from the store")
        # Each run has its own logId (the job's, then "-run2"…): the logs and the VLM's
        # request ids tell the runs apart.
        log_id = row["log_id"] if row["runs"] == 1 else f"{row['log_id']}-run{row['runs']}"
        request = {**options, "file": pybase64.b64encode(document).decode("ascii"), "pages": spec, "logId": log_id}
        del document
        try:
            await self._parse(job_id, row, request)
        except DocParseError as exc:
            await self._give_up_or_retry(row, exc)
            return
        await self._conclude(job_id)

    async def _parse(self, job_id: str, row: dict[str, Any], request: dict) -> None:
        """Store every page of one run as it arrives; a run that stalls is a 504."""
        final: dict[str, Any] = orjson.loads(row["final"]) if row["final"] else {}
        async with aclosing(self.events(request, request["logId"])) as events:
            while True:
                try:
                    event = await asyncio.wait_for(anext(events), self.stall_timeout)
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    raise DeadlineExceededError(
                        f"no page came for {self.stall_timeout:g} s (HPS_INFERENCE_TIMEOUT); the run was stopped"
                    ) from None
                if isinstance(event, PageEvent):
                    if not await asyncio.to_thread(self._save_page, row, event):
                        raise LeaseLost()
                    self._moved_on(job_id)
                elif isinstance(event, FinalEvent):
                    final = merged_final(final, event)
                    if not await asyncio.to_thread(self.store.save_final, job_id, self.worker, final):
                        raise LeaseLost()

    def _save_page(self, row: dict[str, Any], event: PageEvent) -> bool:
        """Store one page (False: the job is no longer ours) and charge it to its owner."""
        data = json_bytes(event.result)
        saved = self.store.save_page(row["id"], self.worker, event.pageIndex, page_failed(event), data, event.totalPages)
        if saved and self.page_charges is not None:
            try:
                self.page_charges(row["owner"], 1)
            except Exception:  # noqa: BLE001 - a quota count must never fail a job
                log.exception("job %s: charging its page to its owner's quota failed", row["id"])
        return saved

    async def _conclude(self, job_id: str) -> None:
        """Every selected page is stored: retry the failed ones while runs are left,
        else end the job with its verdict."""
        row = await asyncio.to_thread(self.store.record, job_id)
        if row is None or row["status"] != JobStatus.RUNNING.value or row["lease_owner"] != self.worker:
            raise LeaseLost()
        done, failed = row["pages_done"], row["pages_failed"]
        if failed and row["attempts"] < self.settings.max_attempts:
            error = JobError(code=502, message=f"{failed} of {done} pages had failed regions or errors; retrying them")
            if not await asyncio.to_thread(self.store.retry_later, job_id, self.worker, self._delay(row), error):
                raise LeaseLost()
            return
        if done and failed == done:
            await self._finish(job_id, JobStatus.FAILED, JobError(
                code=502, message=f"no page of the document could be parsed ({failed} failed); see each page's errors"))
        else:
            await self._finish(job_id, JobStatus.PARTIAL if failed else JobStatus.SUCCEEDED, None)

    async def _give_up_or_retry(self, row: dict[str, Any], exc: DocParseError) -> None:
        error = JobError(code=exc.status, message=exc.message)
        if is_final_error(exc) or row["attempts"] >= self.settings.max_attempts:
            if not is_final_error(exc):
                error = JobError(code=exc.status, message=gave_up(row["attempts"], exc.message))
            await self._finish(row["id"], JobStatus.FAILED, error)
            return
        log.warning("job %s: run %d failed, retrying: %s", row["id"], row["attempts"], exc.message)
        await asyncio.to_thread(self.store.retry_later, row["id"], self.worker, self._delay(row), error)

    def _delay(self, row: dict[str, Any]) -> float:
        return doubling_delay(self.settings.retry_delay, row["attempts"], MAX_RETRY_DELAY)

    async def _finish(self, job_id: str, status: JobStatus, error: JobError | None) -> None:
        if not await asyncio.to_thread(self.store.finish, job_id, self.worker, status, error, self.settings.ttl):
            raise LeaseLost()
        log.info("job %s: %s", job_id, status.value)
        self._moved_on(job_id)

    async def _keep_lease(self, job_id: str, work: asyncio.Task[None]) -> None:
        """Renew the lease while the job runs; stop the work when the job stops being
        ours (cancelled: its Triton stream is closed, and with it the VLM work)."""
        every = min(self.settings.lease / 3, 1.0)
        while True:
            await asyncio.sleep(every)
            try:
                held = await asyncio.to_thread(self.store.renew, job_id, self.worker, self.settings.lease)
            except JobStoreError as exc:
                log.warning("job %s: renewing its lease failed: %s", job_id, exc.message)
                continue
            if not held:
                work.cancel()
                return

    async def _quietly(self, call: Callable[..., Any], *args: Any) -> None:
        try:
            await asyncio.to_thread(call, *args)
        except JobStoreError as exc:
            log.error("the job store failed: %s", exc.message)

    # --- housekeeping -------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Delete expired jobs now and then; deliver due callbacks."""
        last_cleanup = 0.0
        while True:
            if time.monotonic() - last_cleanup > min(HOUSEKEEPING_INTERVAL, self.settings.ttl / 2):
                last_cleanup = time.monotonic()
                with suppress(JobStoreError):
                    await asyncio.to_thread(self.store.delete_expired)
            if self.callbacks is not None:
                with suppress(JobStoreError):
                    while await self._deliver_one():
                        pass
            await asyncio.sleep(self.settings.poll_interval)

    async def _deliver_one(self) -> bool:
        """Deliver one due callback; False when none is due."""
        assert self.callbacks is not None
        lease = self.settings.webhook_timeout + 5
        row = await asyncio.to_thread(self.store.claim_callback, lease)
        if row is None:
            return False
        info = await asyncio.to_thread(self.store.info, row["id"])
        body = info.model_dump_json().encode() if info else b"{}"
        try:
            await self.callbacks.send(row["callback_url"], body)
        except Exception as exc:  # noqa: BLE001 - any failure is a failed delivery
            tries = row["callback_attempts"] + 1
            reason = str(exc) or type(exc).__name__
            log.warning("job %s: callback try %d of %d failed: %s",
                        row["id"], tries, self.settings.webhook_attempts, reason)
            if tries >= self.settings.webhook_attempts:
                await asyncio.to_thread(self.store.callback_tried, row["id"], "failed", reason, None)
            else:
                delay = doubling_delay(1.0, tries, MAX_CALLBACK_DELAY)
                await asyncio.to_thread(self.store.callback_tried, row["id"], "pending", reason, time.time() + delay)
            return True
        await asyncio.to_thread(self.store.callback_tried, row["id"], "delivered", None, None)
        return True


def gave_up(runs: int, last: str) -> str:
    """Why a job failed once its runs were used up."""
    return f"gave up after {runs} runs (HPS_JOB_MAX_ATTEMPTS); the last: {last}"


def doubling_delay(first: float, nth: int, most: float) -> float:
    """``first`` seconds before the first retry, doubled for each next one, at most
    ``most`` (the exponent is bounded: ``2.0 ** 1024`` overflows)."""
    return min(first * 2.0 ** min(max(0, nth - 1), 1000), most)


async def wait_at_most(event: asyncio.Event, timeout: float) -> None:
    """Until ``event`` is set or ``timeout`` seconds have passed."""
    with suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


def merged_final(previous: dict[str, Any], event: FinalEvent) -> dict[str, Any]:
    """What the job keeps of each run's final event: the document's type and page
    count, and the timings summed over the runs."""
    timings = previous.get("timings") or {}
    for name, value in event.timings.model_dump().items():
        timings[name] = round(timings.get(name, 0.0) + value, 6)
    return {"type": event.dataInfo.type, "numPages": event.dataInfo.numPages, "timings": timings}
