"""``docparse compare`` end to end against a real HTTP server that answers /layout-parsing
like the gateway for two models, with known Markdown and known delays per model."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from pathlib import Path
from typing import Iterator

import pytest

from docparse import cli
from scripts.processes import free_port
from testkit.documents import sample_image, sample_pdf
from tests.support.scripted_http import Received, Reply, ScriptedServer

# Per model: the pages it reads, and how long it takes to answer.
PAGES = {"a": ["# Hello world", "one two three"], "b": ["Hello world", "one two four"]}
DELAY = {"a": 0.3, "b": 0.05}


def envelope(pages: list[str]) -> dict:
    results = [{"markdown": {"text": text, "images": {}}, "prunedResult": {}} for text in pages]
    return {"logId": "x", "errorCode": 0, "errorMsg": "Success", "result": {"layoutParsingResults": results, "dataInfo": {}}}


class Gateway:
    """A ScriptedServer on its own event loop in a thread, answering by the body's model."""

    def __init__(self, unavailable: set[tuple[str, str]] = frozenset()) -> None:
        self.unavailable = unavailable  # (model, file type) answered 503
        self.bodies: list[dict] = []
        self.keys: set[str | None] = set()

    async def answer(self, received: Received) -> Reply:
        body = json.loads(received.body)
        self.bodies.append(body)
        self.keys.add(received.headers.get("authorization"))
        model = body.get("model")
        if model not in PAGES:
            return Reply(422, json={"errorCode": 422, "errorMsg": f"model: unknown VLM profile {model!r}; known: a, b"})
        if (model, body["fileType"]) in self.unavailable:
            return Reply(503, json={"errorCode": 503, "errorMsg": "the VLM is overloaded"}, delay=DELAY[model])
        pages = PAGES[model] if body["fileType"] == 0 else PAGES[model][:1]
        return Reply(json=envelope(pages), delay=DELAY[model])

    def serve(self) -> Iterator[str]:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server = ScriptedServer(self.answer)
        asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result(10)
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            asyncio.run_coroutine_threadsafe(server.__aexit__(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


@pytest.fixture()
def documents(tmp_path) -> list[Path]:
    (tmp_path / "doc.pdf").write_bytes(sample_pdf(pages=2))
    (tmp_path / "scan.png").write_bytes(sample_image("PNG"))
    gold = tmp_path / "gold"
    gold.mkdir()
    (gold / "doc.1.md").write_text("Hello world", encoding="utf-8")
    (gold / "doc.2.md").write_text("one two three", encoding="utf-8")
    (gold / "scan.txt").write_text("Hello", encoding="utf-8")
    return [tmp_path / "doc.pdf", tmp_path / "scan.png"]


def compare(url: str, documents: list[Path], *options: str) -> int:
    return cli.main(["compare", *map(str, documents), "--url", url, *options])


def test_two_models_compared_with_gold(documents, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DOCPARSE_API_KEY", "secret-key")
    gateway = Gateway()
    for url in gateway.serve():
        out = tmp_path / "cmp"
        assert compare(url, documents, "--models", "a,b", "--gold", str(tmp_path / "gold"),
                       "--concurrency", "2", "--out", str(out)) == 0
    assert f"wrote {out / 'compare.md'}, {out / 'compare.html'} and {out / 'compare.json'}" in capsys.readouterr().out
    assert gateway.keys == {"Bearer secret-key"}
    assert sorted((b["model"], b["fileType"]) for b in gateway.bodies) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert base64.b64decode(gateway.bodies[0]["file"])[:4] in (b"%PDF", b"\x89PNG")
    result = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    a, b = result["summary"]["a"], result["summary"]["b"]
    assert (a["pages"], a["failures"], b["pages"], b["failures"]) == (3, 0, 3, 0)
    assert 0.3 <= a["latency_p50_s"] < 2 and 0.05 <= b["latency_p50_s"] < a["latency_p50_s"]
    assert b["pages_per_s"] > a["pages_per_s"]  # two requests at a time: about 3 / 0.3 s against 3 / 0.05 s
    doc = result["documents"][0]
    assert [page["similarity"] for page in doc["pages"]] == [1.0, pytest.approx(1 - 5 / 13)]
    assert doc["pages"][1]["scores"]["a"] == {"word_f1": 1.0, "cer": 0.0}
    assert doc["pages"][1]["scores"]["b"] == {"word_f1": pytest.approx(2 / 3), "cer": pytest.approx(5 / 13)}
    # scan.png: both read "Hello world" against "Hello": F1 2/3, CER 6/5.
    assert result["documents"][1]["scores"]["a"] == {"word_f1": pytest.approx(2 / 3), "cer": pytest.approx(6 / 5)}
    assert a["word_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert b["cer"] == pytest.approx((5 / 25 + 6 / 5) / 2)  # "hello world one two four" vs "…three": 5 edits / 25


def test_a_model_answering_503_is_counted_as_failures(documents, tmp_path):
    gateway = Gateway(unavailable={("b", 1)})
    for url in gateway.serve():
        assert compare(url, documents, "--models", "a,b", "--out", str(tmp_path)) == 0
    result = json.loads((tmp_path / "compare.json").read_text(encoding="utf-8"))
    assert result["summary"]["b"]["failures"] == 1 and result["summary"]["a"]["failures"] == 0
    assert result["failures"] == [{"document": "scan.png", "model": "b", "status": 503, "error": "the VLM is overloaded"}]
    assert result["documents"][1]["similarity"] is None and result["documents"][0]["similarity"] is not None
    assert "| scan.png | b | 503 | the VLM is overloaded |" in (tmp_path / "compare.md").read_text(encoding="utf-8")


def test_an_unknown_model_says_what_the_server_said(documents, tmp_path, capsys):
    for url in Gateway().serve():
        assert compare(url, documents, "--models", "a,nope", "--out", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "model 'nope' refused by the gateway: model: unknown VLM profile 'nope'; known: a, b" in err
    assert not (tmp_path / "compare.json").exists()


def test_errors_a_user_understands(documents, tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert compare(url, documents, "--models", "a,b", "--out", str(tmp_path)) == 1
    assert f"cannot reach the gateway at {url}" in capsys.readouterr().err

    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04 not a pdf")
    assert compare(url, [tmp_path / "notes.docx"], "--models", "a,b") == 1
    assert "notes.docx: not a PDF or an image" in capsys.readouterr().err

    (tmp_path / "gold" / "scan.txt").unlink()
    assert compare(url, documents, "--models", "a,b", "--gold", str(tmp_path / "gold")) == 1
    err = capsys.readouterr().err
    assert "no gold text for scan.png" in err and "scan.md" in err and "Traceback" not in err

    assert compare(url, documents, "--models", "a,b", "--gold", "text-layer") == 1
    assert "--gold text-layer needs a PDF" in capsys.readouterr().err


def test_gold_from_the_text_layer(tmp_path):
    from docparse.compare import gold
    from testkit.documents import page_number_text

    (tmp_path / "doc.pdf").write_bytes(sample_pdf(pages=2))
    pages = gold.load("text-layer", [tmp_path / "doc.pdf"])["doc.pdf"].pages
    assert len(pages) == 2 and page_number_text(2) in pages[1]
