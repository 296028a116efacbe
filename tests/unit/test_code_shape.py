"""The shape the project keeps (issue #13): no source file outside tests over 500 lines,
no function over 60. A file or function past these is a sign to split it by concern."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60


def source_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    return [REPO_ROOT / name for name in listed if not name.startswith("tests/") and (REPO_ROOT / name).is_file()]


def test_there_are_source_files_to_check():
    names = {path.relative_to(REPO_ROOT).as_posix() for path in source_files()}
    assert {"docparse/pipeline.py", "gateway/app.py", "vlmsim/app.py", "bench/load.py"} <= names


def test_no_source_file_is_over_500_lines():
    long = {}
    for path in source_files():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            long[path.relative_to(REPO_ROOT).as_posix()] = lines
    assert not long, long


def test_no_function_is_over_60_lines():
    long = {}
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO_ROOT).as_posix()}:{node.lineno} {node.name}"] = length
    assert not long, long
