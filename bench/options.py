"""The command line of ``python -m bench.load``: its flags, their checks (a bad value is
a UsageError with the reason, never a traceback) and the Options of a run."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.documents import Document, UsageError, load_document, load_documents
from bench.loadgen import ClosedLoop, OpenLoop
from bench.point import Window
from bench.stack import StackConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO_ROOT / "bench" / "results"


@dataclass(frozen=True)
class Options:
    """What one run sends, how, to what stack, and where its results go."""

    target: str
    route: str
    documents: list[Document]
    layout: bool
    loads: list[ClosedLoop | OpenLoop]
    window: Window
    warmup: float
    timeout: float
    overhead_requests: int
    overhead_document: Document
    config: StackConfig
    out: Path


def positive_list(text: str, kind: type, flag: str) -> list:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a comma-separated list of numbers, like 1,4,16") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"{flag} {text!r}: every value must be > 0")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Benchmark the whole service (VLM stand-in, tritonserver, gateway) with real documents.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    what = parser.add_argument_group("what to send")
    what.add_argument("--target", choices=["gateway", "triton", "vlm"], default="gateway",
                      help="HTTP through the gateway, gRPC straight to Triton, or each image document "
                           "straight to the VLM stand-in as it is (the capacity bound: no service at all)")
    what.add_argument("--route", choices=["stream", "unary"], default="stream",
                      help="gateway route: /layout-parsing/stream (has per-stage timings) or /layout-parsing")
    what.add_argument("--document", action="append", metavar="SPEC",
                      help="pdf:N (generated N-page PDF), image (generated page PNG), pages:FILE.pdf[@DPI] "
                           "(every page of the PDF as a PNG, one document each) or a file path; "
                           "repeat to cycle through several (default: pdf:2)")
    what.add_argument("--no-layout", action="store_true", help="send useLayoutDetection=false (one region per page)")
    load = parser.add_argument_group("load (one point per value)")
    load.add_argument("--concurrency", metavar="LIST", help="closed loop: clients at once, e.g. 1,4,16,64 (default)")
    load.add_argument("--rate", metavar="LIST", help="open loop: documents per second, e.g. 0.5,1,2")
    load.add_argument("--arrival", choices=["poisson", "uniform"], default="poisson", help="open-loop arrivals")
    load.add_argument("--max-in-flight", type=int, default=256, help="open loop: requests at once; later ones wait")
    load.add_argument("--duration", type=float, help="seconds measured per point (default 10)")
    load.add_argument("--requests", type=int, help="or: requests finished per point")
    load.add_argument("--warmup", type=float, default=3.0,
                      help="seconds before measuring (closed loop: also until one request per client finished)")
    load.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    load.add_argument("--overhead-requests", type=int, default=20,
                      help="requests per overhead measurement at concurrency 1 (0: skip it)")
    load.add_argument("--overhead-document", default="image", metavar="SPEC",
                      help="the one-page document of the overhead measurement, as --document (default: image)")
    service = parser.add_argument_group("the service")
    service.add_argument("--vlm-latency", type=float, default=0.2, help="seconds per VLM call (stand-in)")
    service.add_argument(
        "--vlm-profile", default=None,
        help="calibrated continuous-batching timing of the stand-in instead of --vlm-latency "
             "(bench/SIMULATOR.md), e.g. glm-ocr-a40",
    )
    service.add_argument("--vlm-slots", type=int, default=64, help="VLM calls running at once (--max-num-seqs)")
    service.add_argument("--vlm-max-concurrency", type=int, help="HPS_VLM_MAX_CONCURRENCY (default: --vlm-slots)")
    service.add_argument("--gateway-workers", type=int, default=2, help="gunicorn workers")
    service.add_argument("--max-concurrent-requests", type=int, default=64, help="HPS_MAX_CONCURRENT_REQUESTS per worker")
    service.add_argument("--set", action="append", default=[], metavar="HPS_NAME=VALUE",
                         help="any other setting for Triton and the gateway (repeatable)")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<timestamp>)")
    return parser


def parse_options(argv: list[str]) -> Options:
    """Options from the command line; raises UsageError with the reason."""
    args = build_parser().parse_args(argv)
    check_values(args)
    settings = hps_settings(args.set)
    loads: list[ClosedLoop | OpenLoop]
    if args.rate:
        loads = [OpenLoop(rate, args.arrival, args.max_in_flight) for rate in positive_list(args.rate, float, "--rate")]
    else:
        loads = [ClosedLoop(c) for c in positive_list(args.concurrency or "1,4,16,64", int, "--concurrency")]
    window = Window(None, args.requests) if args.requests is not None else Window(args.duration or 10.0, None)
    out = args.out or DEFAULT_RESULTS / datetime.now().strftime("%Y%m%d-%H%M%S")
    return Options(
        target=args.target,
        route=args.route,
        documents=[document for spec in (args.document or ["pdf:2"]) for document in load_documents(spec)],
        layout=not args.no_layout,
        loads=loads,
        window=window,
        warmup=args.warmup,
        timeout=args.timeout,
        overhead_requests=args.overhead_requests,
        overhead_document=load_document(args.overhead_document),
        config=stack_config(args, settings),
        out=out,
    )


def check_values(args: argparse.Namespace) -> None:
    """Refuse flags that contradict each other and values out of range (argparse checks
    only their types)."""
    if args.concurrency and args.rate:
        raise UsageError("give --concurrency or --rate, not both")
    if args.duration is not None and args.requests is not None:
        raise UsageError("give --duration or --requests, not both")
    if args.duration is not None and args.duration <= 0 or args.requests is not None and args.requests < 1:
        raise UsageError("--duration must be > 0 and --requests >= 1")
    for flag, value in (("--warmup", args.warmup), ("--overhead-requests", args.overhead_requests)):
        if value < 0:
            raise UsageError(f"{flag} must be >= 0, got {value}")
    for flag, value in (("--vlm-slots", args.vlm_slots), ("--gateway-workers", args.gateway_workers),
                        ("--max-concurrent-requests", args.max_concurrent_requests),
                        ("--max-in-flight", args.max_in_flight), ("--timeout", args.timeout)):
        if value <= 0:
            raise UsageError(f"{flag} must be > 0, got {value}")
    if args.vlm_latency < 0:
        raise UsageError(f"--vlm-latency must be >= 0, got {args.vlm_latency}")
    from vlmsim.profiles import PROFILES

    if args.vlm_profile is not None and args.vlm_profile not in PROFILES:
        raise UsageError(f"--vlm-profile {args.vlm_profile!r}: known profiles are {', '.join(sorted(PROFILES))}")
    if args.vlm_max_concurrency is not None and args.vlm_max_concurrency < 1:
        raise UsageError(f"--vlm-max-concurrency must be >= 1, got {args.vlm_max_concurrency}")
    if args.target != "gateway" and args.route == "unary":
        raise UsageError("--route unary is a gateway route; Triton is always streamed")


def hps_settings(items: list[str]) -> dict[str, str]:
    """The ``--set NAME=VALUE`` settings for Triton and the gateway."""
    settings = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name.startswith(("HPS_", "UVICORN_", "GPU_")):
            raise UsageError(f"--set {item!r}: expected HPS_NAME=VALUE")
        settings[name] = value
    return settings


def stack_config(args: argparse.Namespace, settings: dict[str, str]) -> StackConfig:
    """The stack the run starts: the VLM stand-in, then the service; stage marks are on
    whenever the overhead is measured."""
    return StackConfig(
        vlm_latency=args.vlm_latency,
        vlm_slots=args.vlm_slots,
        vlm_max_concurrency=args.vlm_max_concurrency,
        simulator_options={"profile": args.vlm_profile} if args.vlm_profile else {},
        gateway_workers=args.gateway_workers,
        max_concurrent_requests=args.max_concurrent_requests,
        settings=settings,
        trace=args.overhead_requests > 0,
    )
