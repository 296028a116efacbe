"""The CLI's and the launcher's error paths, for real: no gateway on a port, a port taken."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from docparse import cli
from scripts.processes import free_port
from testkit.documents import sample_pdf

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_parse_with_no_gateway_says_it_cannot_reach_it(tmp_path, capsys):
    document = tmp_path / "doc.pdf"
    document.write_bytes(sample_pdf(pages=1))
    url = f"http://127.0.0.1:{free_port()}"

    code = cli.main(["parse", str(document), "--url", url, "--out", str(tmp_path / "out")])

    assert code == 1
    err = capsys.readouterr().err
    assert f"cannot reach the gateway at {url}: is it running? (make run)" in err
    assert not (tmp_path / "out").exists()


def test_health_with_no_gateway_exits_1(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["health", "--url", url]) == 1
    assert "cannot reach the gateway" in capsys.readouterr().err


def test_the_url_comes_from_docparse_url(monkeypatch, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DOCPARSE_URL", url)
    assert cli.main(["health"]) == 1
    assert url in capsys.readouterr().err


def test_a_missing_file_is_a_readable_error(tmp_path, capsys):
    assert cli.main(["parse", str(tmp_path / "nope.pdf")]) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_figure_paths_must_stay_inside_the_output_folder(tmp_path):
    page = {"markdown": {"text": "x", "images": {"../escape.jpg": "AAAA"}}}
    for bad in ("../escape.jpg", "/etc/escape.jpg", "imgs/../../escape.jpg"):
        page["markdown"]["images"] = {bad: "AAAA"}
        try:
            result = {"layoutParsingResults": [page], "dataInfo": {}}
            cli.write_outputs(tmp_path / "doc.pdf", tmp_path / "out", result)
        except cli.CliError as exc:
            assert "refusing" in str(exc)
        else:
            raise AssertionError(f"{bad} was written")
    assert not (tmp_path / "escape.jpg").exists()


def test_run_local_refuses_a_port_in_use_before_starting_anything():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "scripts.run_local", "--port", str(port)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert f"port {port} is in use; set HPS_PORT=" in result.stderr
    assert "Traceback" not in result.stderr
    assert "starting tritonserver" not in result.stderr
