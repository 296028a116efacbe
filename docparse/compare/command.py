"""``docparse compare FILES... --models a,b``: the arguments, the run, where the reports went.

    docparse compare a.pdf b.png --models glm-ocr,glm-ocr-large --gold gold/ --out cmp/

Registered by ``docparse.cli.build_parser``; the same gateway URL, API key and one-line
errors as the other commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from docparse.cli import CliError, gateway_url
from docparse.compare import gold, report, run


def models_option(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",")]
    if len(names) != 2 or not all(names):
        raise argparse.ArgumentTypeError("give two model names, e.g. --models glm-ocr,other (the same twice is allowed)")
    return names


def compare_command(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    files = [Path(name) for name in args.files]
    for path in files:
        run.file_type(path)  # every file checked before any request
    if len({path.name for path in files}) != len(files):
        raise CliError("two files have the same name: the reports key documents by name")
    references = gold.load(args.gold, files)
    url = gateway_url(args.url)
    runs = run.run(url, files, args.models, args.concurrency)
    result = report.summarize(runs, references, url, args.concurrency)
    paths = report.write(result, Path(args.out))
    print(f"wrote {paths[0]}, {paths[1]} and {paths[2]}")
    return 0


def add_compare_command(commands: argparse._SubParsersAction, url_help: str) -> None:
    compare = commands.add_parser("compare", help="run the same documents through two VLM profiles and compare them")
    compare.add_argument("files", nargs="+", help="PDFs or images")
    compare.add_argument("--models", required=True, type=models_option, help="the two VLM profiles, e.g. a,b")
    compare.add_argument("--concurrency", type=int, default=4, help="requests at a time (default 4)")
    compare.add_argument("--gold", help="reference text: a folder of <stem>.md/.txt (or <stem>.<page>.md), "
                                        "or 'text-layer' for a born-digital PDF's own text")
    compare.add_argument("--out", default=".", help="where compare.md, .html and .json go (default: here)")
    compare.add_argument("--url", help=url_help)
    compare.set_defaults(run=compare_command)
