"""``python -m vlmsim``: the stand-in as a server on a port, configured by flags named
after the configuration fields (``--decode-step-seconds`` for ``decode_step_seconds``)."""

from __future__ import annotations

import argparse
import re

from vlmsim.chat import ApiError
from vlmsim.config import CONFIG_FIELDS, SCHEDULING_POLICIES, TIMINGS, SimConfig, option, validated_config
from vlmsim.profiles import BATCHING_FIELDS, BATCHING_HELP, DEFAULT_PROFILE, PROFILES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vlmsim",
        description="OpenAI-compatible stand-in for vLLM serving GLM-OCR (see bench/SIMULATOR.md).",
        epilog="Every timing option can be changed later with POST /_sim/config (same names, with underscores).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8118, help="port to listen on (default %(default)s)")
    parser.add_argument("--model", default="glm-ocr", help="served model name (default %(default)s)")
    parser.add_argument("--max-concurrency", "--max-num-seqs", dest="max_num_seqs", type=int, default=64, metavar="N",
                        help="requests running at once, like vLLM's --max-num-seqs; the rest wait in FIFO "
                             "(default %(default)s)")
    parser.add_argument("--scheduling-policy", choices=SCHEDULING_POLICIES,
                        help="vLLM's: priority admits waiting requests by their 'priority' (lower first; the vllm "
                             "timing), fcfs refuses a non-zero one as vLLM does (default fcfs)")
    parser.add_argument("--max-records", type=int, default=100_000, help="calls kept for /_sim/calls (default %(default)s)")
    parser.add_argument("--log-level", default="warning", help="uvicorn's log level (default %(default)s)")
    fixed = parser.add_argument_group("fixed timing (the default)")
    fixed.add_argument("--latency", type=float, default=0.0, help="seconds per call (default %(default)s)")
    fixed.add_argument("--latency-per-pixel", type=float, default=0.0,
                       help="extra seconds per image pixel (default %(default)s)")
    batching = parser.add_argument_group(
        "vllm timing (continuous batching)",
        "A profile sets all the numbers below; a number given beside it overrides the profile's.",
    )
    batching.add_argument("--timing", choices=TIMINGS,
                          help="'fixed': latency per call; 'vllm': continuous batching (default: fixed, "
                               "or vllm when --profile is given)")
    batching.add_argument("--profile", choices=sorted(PROFILES),
                          help=f"calibrated numbers for --timing vllm (default {DEFAULT_PROFILE}); implies --timing vllm")
    batching.add_argument("--seed", type=int, help="seed of the output-length draws (default 0)")
    for name in BATCHING_FIELDS:
        batching.add_argument(option(name), type=float, metavar="NUMBER", help=BATCHING_HELP[name])
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The configuration the flags ask for; raises ApiError naming a bad field."""
    given = {
        name: getattr(args, name)
        for name in ("latency", "latency_per_pixel", "max_num_seqs", "timing", "profile", "seed", "scheduling_policy",
                     *BATCHING_FIELDS)
        if getattr(args, name) is not None
    }
    return validated_config(given, SimConfig())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ApiError as error:  # name the flag, not the field
        parser.error(re.sub(r"'(\w+)'", lambda m: option(m[1]) if m[1] in CONFIG_FIELDS else m[0], error.message))

    import uvicorn

    from vlmsim.app import create_app
    from vlmsim.simulator import Simulator

    uvicorn.run(
        create_app(Simulator(args.model, config, args.max_records)),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=2,  # stalled calls must not hold up a stop
    )
    return 0
