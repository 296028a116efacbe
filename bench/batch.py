"""``POST /api/ocr/batch`` under load (issue #16, BENCHMARKS.md "GLM-OCR API batch"):
does a batch of twice as many images as the VLM has slots keep the VLM full?

Starts the stack (``bench.stack``) once with the VLM stand-in at N slots (``--slots``,
default 64; its ``max_num_seqs`` = N and the orchestrator's HPS_VLM_MAX_CONCURRENCY = N,
so the service may fill it and no more) and HPS_MAX_BATCH_IMAGES = the batch size
(``--images``, default 2N). Then, for each ``--clients`` value, C clients send batches
back to back (a closed loop), each batch the same image repeated: by default the
paragraph of the generated test page (``testkit.documents.sample_image``, 1191x1684 at
144 dpi) cut out where its text block is (953x253 px: a region crop such as a layout
step hands the VLM), read with ``--task text``; ``--image page`` sends the whole page
instead. The VLM stand-in runs the calibrated continuous-batching profile
``glm-ocr-a40`` (``--vlm-profile``; ``--vlm-latency S`` for the fixed timing instead).

Each value of ``--clients`` is a point of ``bench.point`` (warm-up until every client
has had a batch back, a ``--duration`` window, then the batches in flight finish
uncounted): the VLM's utilisation (busy slot-seconds / (N x window), as
``bench.sampling``), images/s (images read without error in batches answered in the
window), batch latency, errors (whole batches, and images with their own error), CPU
seconds per image of every process, and the machine's load (its busy cores against the
stack's, from /proc).

    python -m bench.batch                                  # N=64, 128-image batches, 1 client, 30 s
    python -m bench.batch --clients 1,2 --duration 20
    python -m bench.batch --slots 16 --image page --task text

Results go to ``--out`` (default bench/results/<timestamp>/): batch.json, batch.md, and
the servers' logs in stack/.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import AsyncIterator

import aiohttp

from bench.batch_report import (
    TARGET_UTILISATION,
    IdealLoad,
    ideal_utilisation,
    markdown,
    point_summary,
    vlm_bound,
    vlm_model,
)
from bench.documents import Document, UsageError
from bench.loadgen import ClosedLoop
from bench.machine import provenance
from bench.options import DEFAULT_RESULTS, hps_settings, positive_list
from bench.point import Run, Window, measure_point
from bench.senders import GatewaySender, RequestFailed, envelope_message
from bench.stack import BenchStack, StackConfig, explain_failure
from scripts.processes import LaunchError

TASK_LABELS = {"text": "text", "table": "table", "formula": "display_formula"}  # the test page's block per task
DEFAULT_PROFILE = "glm-ocr-a40"


@dataclass(frozen=True)
class BatchImage:
    name: str
    data: bytes
    width: int
    height: int

    def describe(self) -> str:
        return f"{self.name} ({self.width}x{self.height} PNG, {len(self.data) / 1024:.0f} KiB)"


def crop_box(label: str, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixels of the test page's ``label`` block (``testkit.layout_template``) on a page
    of ``width`` x ``height``."""
    from testkit.layout_template import TEMPLATE

    x1, y1, x2, y2 = dict(TEMPLATE)[label]
    return round(x1 * width), round(y1 * height), round(x2 * width), round(y2 * height)


def batch_image(kind: str, task: str) -> BatchImage:
    """The image every batch repeats: the test page whole (``page``) or the block of it
    that ``task`` reads (``crop``), as a PNG."""
    from PIL import Image

    from testkit.documents import sample_image

    page = sample_image()
    if kind == "page":
        with Image.open(io.BytesIO(page)) as image:
            return BatchImage("test page", page, *image.size)
    with Image.open(io.BytesIO(page)) as image:
        crop = image.crop(crop_box(TASK_LABELS[task], *image.size))
    buffer = io.BytesIO()
    crop.save(buffer, format="PNG")
    return BatchImage(f"{TASK_LABELS[task]} block of the test page", buffer.getvalue(), *crop.size)


def multipart_body(fields: dict[str, str], files: list[tuple[str, str, bytes, str]], boundary: str) -> bytes:
    """A multipart/form-data body: the text ``fields``, then ``files`` as (field, file
    name, bytes, content type), each in its own part."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    for field, filename, data, content_type in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                     f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


class BatchSender(GatewaySender):
    """A batch of ``count`` copies of ``image`` to ``/api/ocr/batch``, seen as
    ``bench.senders`` sees a request: each image's result is a "page" (arriving when
    the batch's answer does), then a final event. The request's ``logId`` goes with it;
    the rest of the body is prepared once."""

    def __init__(self, url: str, timeout: float, image: BatchImage, count: int, task: str) -> None:
        super().__init__(url, "batch", timeout)
        self.name = "gateway /api/ocr/batch"
        self.task = task
        self.boundary = uuid.uuid4().hex
        files = [("images", f"image-{index}.png", image.data, "image/png") for index in range(count)]
        self.files_body = multipart_body({}, files, self.boundary)  # the files part, closed

    def body(self, log_id: str) -> bytes:
        return multipart_body({"task": self.task, "logId": log_id}, [], self.boundary).removesuffix(
            f"--{self.boundary}--\r\n".encode()) + self.files_body

    async def events(self, body: dict) -> AsyncIterator[dict]:
        headers = {"Content-Type": f"multipart/form-data; boundary={self.boundary}"}
        try:
            async with self.http.post(f"{self.url}/api/ocr/batch", data=self.body(body["logId"]),
                                      headers=headers) as response:
                answer = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RequestFailed(type(exc).__name__, str(exc) or repr(exc)) from None
        if response.status != 200:
            raise RequestFailed(f"HTTP {response.status}", envelope_message(answer))
        for item in json.loads(answer)["results"]:
            yield {"type": "page", "pageIndex": item["index"], "result": item}
        yield {"type": "final", "dataInfo": None, "timings": None}


def read_without_error(item: dict) -> int:
    """1 for an image of a batch that was read, 0 for one answered with its own error
    (``bench.point`` counts this as the "regions" of the image's "page")."""
    return 0 if "error" in item else 1


async def benchmark(stack: BenchStack, args: argparse.Namespace, image: BatchImage) -> list[dict]:
    """One point per value of ``--clients``."""
    sender = BatchSender(stack.gateway.url, args.timeout, image, args.images, args.task)
    batch = Document(f"{args.images} x {image.describe()}", "", 1)
    run = Run(stack, sender, [batch], {}, Window(args.duration, None), args.warmup, read_without_error)
    points = []
    try:
        for clients in args.clients:
            print(f"{clients} client(s), batches of {args.images} …", file=sys.stderr, flush=True)
            point = await measure_point(run, ClosedLoop(clients, args.stagger))
            print(f"  VLM utilisation {point['vlm_utilisation']['value']:.3f}, {point['regions_per_s']:.1f} images/s, "
                  f"{point['requests']['failed']} batches failed", file=sys.stderr, flush=True)
            points.append({"clients": clients, **point})
    finally:
        await sender.aclose()
    return points


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.batch", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--slots", type=int, default=64,
                        help="N: the VLM's max_num_seqs and the orchestrator's HPS_VLM_MAX_CONCURRENCY")
    parser.add_argument("--images", type=int, help="images per batch (default 2N); HPS_MAX_BATCH_IMAGES is this")
    parser.add_argument("--clients", default="1", metavar="LIST", help="clients sending batches back to back; "
                        "one point per value, e.g. 1,2")
    parser.add_argument("--stagger", type=float, default=0.0,
                        help="seconds between the clients' starts (0: together; they may then stay in step)")
    parser.add_argument("--image", choices=["crop", "page"], default="crop",
                        help="each image: the test page's block for --task (a region crop) or the whole page")
    parser.add_argument("--task", choices=sorted(TASK_LABELS), default="text", help="the batch's task")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured per point")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds before measuring (and until every client had a batch back)")
    parser.add_argument("--vlm-profile", default=None,
                        help=f"the stand-in's continuous-batching profile (bench/SIMULATOR.md; default {DEFAULT_PROFILE})")
    parser.add_argument("--vlm-latency", type=float,
                        help="the stand-in's fixed timing instead: seconds per call, whatever else runs")
    parser.add_argument("--gateway-workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--set", action="append", default=[], metavar="HPS_NAME=VALUE",
                        help="any other setting for Triton and the gateway (repeatable)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a batch may take")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<timestamp>)")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.clients = positive_list(args.clients, int, "--clients")
        args.settings = hps_settings(args.set)
    except UsageError as exc:
        parser.error(str(exc))
    args.images = args.images or 2 * args.slots
    if min(args.slots, args.images, args.gateway_workers) < 1 or args.duration <= 0 or args.timeout <= 0:
        parser.error("--slots, --images and --gateway-workers must be >= 1, --duration and --timeout > 0")
    if args.warmup < 0 or args.stagger < 0 or args.vlm_latency is not None and args.vlm_latency < 0:
        parser.error("--warmup, --stagger and --vlm-latency must be >= 0")
    if args.vlm_latency is not None and args.vlm_profile is not None:
        parser.error("give --vlm-profile or --vlm-latency, not both")
    from vlmsim.profiles import PROFILES

    if args.vlm_latency is None:
        args.vlm_profile = args.vlm_profile or DEFAULT_PROFILE
        if args.vlm_profile not in PROFILES:
            parser.error(f"--vlm-profile {args.vlm_profile!r}: known profiles are {', '.join(sorted(PROFILES))}")
    args.out = args.out or DEFAULT_RESULTS / datetime.now().strftime("%Y%m%d-%H%M%S")
    return args


def stack_config(args: argparse.Namespace, image: BatchImage) -> StackConfig:
    """N slots in the stand-in and in the orchestrator's bound; a batch of the asked size
    admitted (and its body, with room for the multipart headers)."""
    settings = {"HPS_MAX_BATCH_IMAGES": str(args.images)}
    body = args.images * (len(image.data) + 256)
    if body > 100 * 2**20:  # HPS_MAX_BODY_BYTES' default
        settings["HPS_MAX_BODY_BYTES"] = str(2 * body)
    return StackConfig(
        vlm_latency=args.vlm_latency or 0.0, vlm_slots=args.slots, vlm_max_concurrency=args.slots,
        gateway_workers=args.gateway_workers, settings={**settings, **args.settings},
        simulator_options={"profile": args.vlm_profile} if args.vlm_profile else {},
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    image = batch_image(args.image, args.task)
    started = datetime.now().astimezone()
    loadavg_before = os.getloadavg()
    try:
        with BenchStack(stack_config(args, image), args.out / "stack") as stack:
            points = asyncio.run(benchmark(stack, args, image))
            description = stack.describe()
            last_call = stack.simulator.calls()[-1]
            simulator = {key: value for key, value in stack.simulator.stats().items()
                         if key in ("timing", "profile", "max_num_seqs")}
    except (LaunchError, RuntimeError, OSError, RequestFailed) as exc:
        return explain_failure(exc, args.out / "stack")
    params, prompt_tokens, task = vlm_model(simulator, description["config"], last_call)
    for point in points:
        ideal = ideal_utilisation(params, args.slots, prompt_tokens, task,
                                  IdealLoad(point["clients"], args.images, args.stagger))
        point["summary"] = point_summary(point, args.images, ideal)
    results = {
        "schema": "docparse-bench-batch/1",
        "run": {"started": started.isoformat(timespec="seconds"), "command": ["python", "-m", "bench.batch", *argv],
                "seconds": round(time.time() - started.timestamp(), 1), "slots": args.slots, "images": args.images,
                "image": {"kind": args.image, "name": image.name, "width": image.width, "height": image.height,
                          "bytes": len(image.data)},
                "task": args.task, "stagger_s": args.stagger, "duration_s": args.duration, "warmup_s": args.warmup,
                "target_utilisation": TARGET_UTILISATION},
        **provenance(loadavg_before), "stack": description,
        "simulator": {**simulator, "vlm_bound": vlm_bound(simulator, description["config"], last_call)},
        "points": points,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "batch.md").write_text(markdown(results))
    print(markdown(results))
    print("\n".join(str(args.out / name) for name in ("batch.json", "batch.md")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
