"""Side by side: our service and the GLM-OCR SDK on the same documents and the same VLM
simulator, at several decode-slot counts (BENCHMARKS.md, "Peer").

For each slot count one stack is started (simulator → tritonserver → gateway,
``bench.stack``). Both sides get the same batch: every test PDF ``--repeat`` times, all
submitted at once, layout off (one "Text Recognition:" call per page), pages rendered at
the same DPI; each side's figure is pages / wall seconds from the first submission to
the last result. Ours goes through the gateway's streaming route; the SDK
(``bench/peer_glmocr.py``, in its own virtualenv ``bench/.venv-peer``, see bench/PEER.md)
runs in self-hosted mode with ``max_workers`` equal to the slots.

    python -m bench.peer [--slots 16,64] [--latency 0.5] [--repeat 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.documents import load_document
from bench.machine import machine_info
from bench.options import positive_list
from bench.senders import GatewaySender, RequestRecord, send, vlm_region_counter
from bench.report import markdown_table
from bench.stack import BenchStack, StackConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = REPO_ROOT / "bench" / ".venv-peer" / "bin" / "python"
PEER_SCRIPT = REPO_ROOT / "bench" / "peer_glmocr.py"
PEER_SETUP = "python3.11 -m venv bench/.venv-peer && bench/.venv-peer/bin/pip install --no-deps -r bench/peer-requirements.txt"


async def ours(stack: BenchStack, pdfs: list[Path], repeat: int, dpi: int) -> dict:
    """Our pages/s for the whole batch submitted at once through the gateway."""
    documents = [load_document(str(path)) for path in pdfs]
    options = {"useLayoutDetection": False, "dpi": dpi}
    sender = GatewaySender(stack.gateway.url, "stream", timeout=600)
    count = vlm_region_counter()
    try:
        await send(sender, documents[0], options, time.perf_counter(), count)  # warm-up
        stack.simulator.reset()
        started = time.perf_counter()
        records: list[RequestRecord] = await asyncio.gather(*(
            send(sender, document, options, started, count)
            for _ in range(repeat) for document in documents
        ))
        wall = time.perf_counter() - started
    finally:
        await sender.aclose()
    pages = sum(len(record.pages) for record in records)
    return {
        "side": "docparse-hps",
        "documents": len(records),
        "pages": pages,
        "wall_seconds": round(wall, 3),
        "pages_per_second": round(pages / wall, 3),
        "errors": [str(record.error) for record in records if record.error],
        "simulator": stack.simulator.stats(),
    }


def peer(stack: BenchStack, pdfs: list[Path], repeat: int, dpi: int, slots: int, out: Path) -> dict:
    """The GLM-OCR SDK's pages/s for the same batch, run in its own virtualenv."""
    stack.simulator.reset()
    result_path = out / f"peer-{slots}.json"
    command = [
        str(PEER_PYTHON), str(PEER_SCRIPT), "--vlm-url", stack.simulator.url,
        "--documents", *map(str, pdfs), "--repeat", str(repeat),
        "--max-workers", str(slots), "--dpi", str(dpi), "--out", str(result_path),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if finished.returncode != 0:
        raise RuntimeError(f"the GLM-OCR SDK run failed ({finished.returncode}): {finished.stderr[-2000:]}")
    result = json.loads(result_path.read_text())
    result["side"] = "glmocr-sdk"
    result["simulator"] = stack.simulator.stats()
    return result


def markdown(results: dict) -> str:
    header = ["decode slots", "DocParse HPS pages/s", "GLM-OCR SDK pages/s", "ratio",
              "peak VLM calls in flight (ours / SDK)", "errors (ours / SDK)"]
    rows = [
        [str(point["slots"]), f"{point['ours']['pages_per_second']:.2f}", f"{point['peer']['pages_per_second']:.2f}",
         f"{point['ratio']:.2f}x",
         f"{point['ours']['simulator']['peak_in_flight']} / {point['peer']['simulator']['peak_in_flight']}",
         f"{len(point['ours']['errors'])} / {len(point['peer']['errors'])}"]
        for point in results["points"]
    ]
    return "\n".join([
        f"# Side by side: DocParse HPS and the GLM-OCR SDK ({results['started']})", "",
        f"{results['documents']} PDFs of {results['pages_per_document']} pages × {results['repeat']}, "
        f"submitted at once; layout off on both sides; {results['dpi']} dpi; VLM simulator with "
        f"{results['latency']} s per call; machine: {results['machine']['cpus']} CPUs.", "",
        markdown_table(header, rows),
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", default="16,64", help="decode slots of the simulator, comma-separated")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per VLM call (fixed timing)")
    parser.add_argument("--documents", type=int, default=3, help="distinct test PDFs")
    parser.add_argument("--pages", type=int, default=10, help="pages per PDF")
    parser.add_argument("--repeat", type=int, default=4, help="each PDF submitted this many times")
    parser.add_argument("--dpi", type=int, default=144, help="render DPI on both sides")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results/peer-<time>)")
    args = parser.parse_args(argv)
    try:
        slot_counts = positive_list(args.slots, int, "--slots")
    except Exception as exc:  # noqa: BLE001 - a usage error, reported as such
        parser.error(str(exc))
    if not PEER_PYTHON.exists():
        print(f"error: the GLM-OCR SDK's virtualenv is missing; make it with:\n  {PEER_SETUP}", file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = args.out or REPO_ROOT / "bench" / "results" / f"peer-{started.replace(':', '')}"
    out.mkdir(parents=True, exist_ok=True)

    from testkit.documents import sample_pdf

    pdfs = []
    for index in range(args.documents):
        path = out / f"doc{index}.pdf"
        path.write_bytes(sample_pdf(pages=args.pages))
        pdfs.append(path)
    results = {
        "schema": "docparse-peer/1", "started": started, "latency": args.latency, "dpi": args.dpi,
        "documents": args.documents, "pages_per_document": args.pages, "repeat": args.repeat,
        "machine": machine_info(), "points": [],
    }
    for slots in slot_counts:
        config = StackConfig(vlm_latency=args.latency, vlm_slots=slots)
        with BenchStack(config, out / f"stack-{slots}") as stack:
            mine = asyncio.run(ours(stack, pdfs, args.repeat, args.dpi))
            theirs = peer(stack, pdfs, args.repeat, args.dpi, slots, out)
        ratio = mine["pages_per_second"] / theirs["pages_per_second"]
        results["points"].append({"slots": slots, "ours": mine, "peer": theirs, "ratio": round(ratio, 3)})
        print(f"slots={slots}: ours {mine['pages_per_second']:.2f} pages/s, "
              f"GLM-OCR SDK {theirs['pages_per_second']:.2f} pages/s, ratio {ratio:.2f}x", flush=True)
    (out / "peer.json").write_text(json.dumps(results, indent=2))
    (out / "peer.md").write_text(markdown(results))
    print(markdown(results))
    print(out / "peer.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
