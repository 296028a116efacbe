"""``docparse compare`` through the real gateway (gunicorn, tritonserver, the VLM
stand-in), with the one VLM profile compared with itself: the request's ``model`` field
accepted, every page answered twice, and the PDF's own text layer as the gold."""

from __future__ import annotations

import json

import pytest

from docparse import cli
from scripts.gateway_local import GatewayServer
from testkit.documents import sample_pdf

pytestmark = pytest.mark.usefixtures("vlm")


def test_the_same_profile_twice_through_the_gateway(gateway: GatewayServer, tmp_path, capsys):
    (tmp_path / "doc.pdf").write_bytes(sample_pdf(pages=2))
    out = tmp_path / "cmp"

    code = cli.main(["compare", str(tmp_path / "doc.pdf"), "--models", "glm-ocr,glm-ocr", "--url", gateway.url,
                     "--gold", "text-layer", "--concurrency", "2", "--out", str(out)])

    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert result["models"] == ["glm-ocr", "glm-ocr#2"]
    for key in result["models"]:
        summary = result["summary"][key]
        assert (summary["pages"], summary["failures"]) == (2, 0)
        assert summary["latency_p50_s"] > 0 and summary["pages_per_s"] > 0
        assert 0 <= summary["cer"] and 0 <= summary["word_f1"] <= 1
    assert all(page["similarity"] is not None for page in result["documents"][0]["pages"])
    assert "<svg" in (out / "compare.html").read_text(encoding="utf-8")


def test_an_unknown_profile_is_the_gateways_422(gateway: GatewayServer, tmp_path, capsys):
    (tmp_path / "doc.pdf").write_bytes(sample_pdf(pages=1))
    code = cli.main(["compare", str(tmp_path / "doc.pdf"), "--models", "glm-ocr,no-such-vlm", "--url", gateway.url,
                     "--out", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "model 'no-such-vlm' refused by the gateway" in err and "glm-ocr" in err  # the names it has
