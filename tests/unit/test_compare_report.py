"""docparse compare's reports, built from fixed runs: the numbers in compare.json and
compare.md, and a compare.html that carries its charts and fetches nothing."""

from __future__ import annotations

import json
import re

import pytest

from docparse.compare import report
from docparse.compare.gold import Gold
from docparse.compare.run import Call, ModelRun


def fixed_runs() -> list[ModelRun]:
    a = ModelRun("a", 2.0, [Call("doc.pdf", "a", 1.0, ["# kitten", "one two three"], 200),
                            Call("img.png", "a", 3.0, ["abcd"], 200)])
    b = ModelRun("b", 4.0, [Call("doc.pdf", "b", 2.0, ["sitting", "one two four"], 200),
                            Call("img.png", "b", 0.5, [], 503, "the VLM is overloaded")])
    return [a, b]


GOLD = {"doc.pdf": Gold(pages=["sitting", "one two three"]), "img.png": Gold(document="abcd")}


@pytest.fixture()
def result() -> dict:
    return report.summarize(fixed_runs(), GOLD, "http://gw", 2)


def test_the_summary_per_model(result):
    a, b = result["summary"]["a"], result["summary"]["b"]
    assert (a["documents"], a["failures"], a["pages"]) == (2, 0, 3)
    assert a["pages_per_s"] == pytest.approx(1.5) and b["pages_per_s"] == pytest.approx(0.5)
    assert a["latency_p50_s"] == pytest.approx(2.0) and a["latency_p95_s"] == pytest.approx(2.9)
    assert b["failures"] == 1 and b["latency_p50_s"] == pytest.approx(1.25)
    # a: doc.pdf joined "kitten one two three" against "sitting one two three" (3 edits / 21; F1 3/4),
    # img.png exact. b: doc.pdf "sitting one two four" (5 edits / 21; F1 3/4); img.png failed: F1 0, CER 1.
    assert a["cer"] == pytest.approx((3 / 21 + 0) / 2) and a["word_f1"] == pytest.approx((0.75 + 1) / 2)
    assert b["cer"] == pytest.approx((5 / 21 + 1) / 2) and b["word_f1"] == pytest.approx(0.75 / 2)


def test_pages_compare_the_two_outputs_and_score_against_the_gold(result):
    doc, img = result["documents"]
    first, second = doc["pages"]
    assert first["similarity"] == pytest.approx(4 / 7)  # kitten/sitting: 3 edits over 7
    assert second["similarity"] == pytest.approx(1 - 5 / 13)  # three/four: 5 edits over 13
    assert first["scores"]["a"] == {"word_f1": 0.0, "cer": pytest.approx(3 / 7)}
    assert second["scores"]["b"]["word_f1"] == pytest.approx(2 / 3)
    assert first["markdown"] == {"a": "# kitten", "b": "sitting"}
    assert img["similarity"] is None and img["pages"][0]["similarity"] is None  # b failed
    assert "scores" not in img["pages"][0] and img["scores"]["a"] == {"word_f1": 1.0, "cer": 0.0}
    assert result["failures"] == [{"document": "img.png", "model": "b", "status": 503, "error": "the VLM is overloaded"}]
    assert result["mean_page_similarity"] == pytest.approx((4 / 7 + 1 - 5 / 13) / 2)


def test_the_same_model_twice_gets_two_keys():
    runs = fixed_runs()
    runs[1].model = "a"
    assert report.summarize(runs, {}, "http://gw", 1)["models"] == ["a", "a#2"]


def test_the_files_written(result, tmp_path):
    md, page, data = report.write(result, tmp_path)
    text = md.read_text(encoding="utf-8")
    assert "| a | 2 | 0 | 3 | 1.50 | 2.00 | 2.90 | 0.875 | 0.071 |" in text
    assert "| b | 2 | 1 | 2 | 0.50 | 1.25 |" in text
    assert "| doc.pdf | 1 | 0.571 | 0.000 | 0.429 | 1.000 | 0.000 |" in text
    assert "| img.png | b | 503 | the VLM is overloaded |" in text
    assert json.loads(data.read_text(encoding="utf-8")) == json.loads(json.dumps(result))
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 3 and html.count("</svg>") == 3
    assert "Latency per model" in html and "Similarity of the two outputs per page" in html and "Word F1 and CER" in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)
    assert "<script" not in html and "<link" not in html and "@import" not in html


def test_without_gold_there_is_no_score_chart(tmp_path):
    result = report.summarize(fixed_runs(), {}, "http://gw", 2)
    assert result["summary"]["a"]["word_f1"] is None and result["scoring_method"] is None
    html = report.write(result, tmp_path)[1].read_text(encoding="utf-8")
    assert html.count("<svg") == 2
