"""The comparison's numbers (``summarize``: what compare.json holds) and its Markdown
tables; compare.html is html.py's. Kept apart from the sending so that the numbers can be
checked on fixed data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docparse.compare import metrics
from docparse.compare.gold import Gold
from docparse.compare.run import Call, ModelRun

SIMILARITY = ("1 - Levenshtein distance / longer length, on the text with Markdown/HTML markup "
              "stripped and whitespace runs as one space")
SCORING = ("word F1: bag of casefolded words (letter/digit runs, each CJK character a word); "
           "CER: Levenshtein distance / reference length; both after stripping Markdown/HTML markup; "
           "a failed document scores as empty output; a model's value is the mean over documents")


def labels(runs: list[ModelRun]) -> list[str]:
    """A key per run: its model, with ``#2`` when the same model is compared with itself."""
    seen: list[str] = []
    for run in runs:
        seen.append(run.model if run.model not in seen else f"{run.model}#{len(seen) + 1}")
    return seen


def page_at(pages: list[str], index: int) -> str:
    return pages[index] if index < len(pages) else ""


def scores(call: Call, gold: Gold | None) -> tuple[dict | None, list[dict]]:
    """(the document's word F1 and CER, each page's) for one model; (None, []) without gold."""
    if gold is None:
        return None, []
    per_page = [{"word_f1": metrics.word_f1(page_at(call.pages, i), text), "cer": metrics.cer(page_at(call.pages, i), text)}
                for i, text in enumerate(gold.pages or [])]
    reference = "\n\n".join(gold.pages) if gold.pages is not None else gold.document or ""
    answer = "\n\n".join(call.pages)
    return {"word_f1": metrics.word_f1(answer, reference), "cer": metrics.cer(answer, reference)}, per_page


def document_entry(calls: list[Call], keys: list[str], gold: Gold | None) -> dict[str, Any]:
    """One document: each model's call, and page by page the outputs, their similarity
    (when both models answered) and each model's scores against the gold."""
    scored = [scores(call, gold) for call in calls]
    both = all(call.ok for call in calls)
    count = max([len(call.pages) for call in calls] + [len(gold.pages or []) if gold else 0])
    pages = []
    for index in range(count):
        texts = [page_at(call.pages, index) for call in calls]
        page: dict[str, Any] = {"page": index + 1, "markdown": dict(zip(keys, texts)),
                                "similarity": metrics.similarity(texts[0], texts[1]) if both else None}
        if gold and gold.pages is not None and index < len(gold.pages):
            page["scores"] = {key: per_page[index] for key, (_, per_page) in zip(keys, scored)}
        pages.append(page)
    entry: dict[str, Any] = {
        "document": calls[0].document,
        "calls": {key: {"ok": call.ok, "status": call.status, "error": call.error,
                        "latency_s": call.latency_s, "pages": len(call.pages)} for key, call in zip(keys, calls)},
        "similarity": metrics.similarity("\n\n".join(calls[0].pages), "\n\n".join(calls[1].pages)) if both else None,
        "pages": pages,
    }
    if gold is not None:
        entry["scores"] = {key: document for key, (document, _) in zip(keys, scored)}
    return entry


def model_entry(run: ModelRun, key: str, documents: list[dict]) -> dict[str, Any]:
    """A model's totals: latency percentiles, pages/s over its wall time, failures, and
    the mean of its documents' scores."""
    latencies = [call.latency_s for call in run.calls]
    pages = sum(len(call.pages) for call in run.calls)
    scored = [doc["scores"][key] for doc in documents if "scores" in doc]
    return {
        "model": run.model, "documents": len(run.calls), "failures": sum(not call.ok for call in run.calls),
        "pages": pages, "wall_s": run.wall_s, "pages_per_s": pages / run.wall_s if run.wall_s > 0 else None,
        "latency_p50_s": metrics.percentile(latencies, 50), "latency_p95_s": metrics.percentile(latencies, 95),
        "word_f1": metrics.mean([s["word_f1"] for s in scored]), "cer": metrics.mean([s["cer"] for s in scored]),
    }


def summarize(runs: list[ModelRun], gold: dict[str, Gold], url: str, concurrency: int) -> dict[str, Any]:
    """Everything compare.json holds, from the runs (the same documents, in the same
    order, in each) and the gold text by document name."""
    keys = labels(runs)
    documents = [document_entry(list(calls), keys, gold.get(calls[0].document))
                 for calls in zip(*(run.calls for run in runs))]
    similarities = [page["similarity"] for doc in documents for page in doc["pages"] if page["similarity"] is not None]
    return {
        "url": url, "concurrency": concurrency, "models": keys,
        "similarity_method": SIMILARITY, "scoring_method": SCORING if gold else None,
        "mean_page_similarity": metrics.mean(similarities),
        "summary": {key: model_entry(run, key, documents) for key, run in zip(keys, runs)},
        "failures": [{"document": call.document, "model": key, "status": call.status, "error": call.error}
                     for key, run in zip(keys, runs) for call in run.calls if not call.ok],
        "documents": documents,
    }


def number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """compare.md: the models' table, the pages' table, the failures."""
    keys = result["models"]
    lines = [f"# Comparing {' and '.join(keys)}", "",
             f"{len(result['documents'])} document(s) through {result['url']}/layout-parsing, "
             f"{result['concurrency']} request(s) at a time, one model after the other.", "",
             "| model | documents | failed | pages | pages/s | latency p50 (s) | latency p95 (s) | word F1 | CER |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key in keys:
        m = result["summary"][key]
        lines.append(f"| {key} | {m['documents']} | {m['failures']} | {m['pages']} | {number(m['pages_per_s'], 2)} | "
                     f"{number(m['latency_p50_s'], 2)} | {number(m['latency_p95_s'], 2)} | "
                     f"{number(m['word_f1'])} | {number(m['cer'])} |")
    lines += ["", f"Similarity: {result['similarity_method']}. Mean over pages: {number(result['mean_page_similarity'])}."]
    if result["scoring_method"]:
        lines += ["", f"Scoring: {result['scoring_method']}."]
    lines += ["", "| document | page | similarity | " + " | ".join(f"F1 {k} | CER {k}" for k in keys) + " |",
              "| --- | ---: | ---: | " + " | ".join("---: | ---:" for _ in keys) + " |"]
    for doc in result["documents"]:
        for page in doc["pages"]:
            cells = [f"{number(page['scores'][k]['word_f1'])} | {number(page['scores'][k]['cer'])}" if "scores" in page
                     else "– | –" for k in keys]
            lines.append(f"| {doc['document']} | {page['page']} | {number(page['similarity'])} | " + " | ".join(cells) + " |")
    if result["failures"]:
        lines += ["", "## Failures", "", "| document | model | status | error |", "| --- | --- | ---: | --- |"]
        lines += [f"| {f['document']} | {f['model']} | {f['status'] or '–'} | {str(f['error']).replace('|', '/')} |"
                  for f in result["failures"]]
    return "\n".join(lines) + "\n"


def write(result: dict[str, Any], out: Path) -> list[Path]:
    """compare.md, compare.html and compare.json in ``out``."""
    from docparse.compare.html import page as html_page

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "compare.md", out / "compare.html", out / "compare.json"]
    paths[0].write_text(markdown(result), encoding="utf-8")
    paths[1].write_text(html_page(result), encoding="utf-8")
    paths[2].write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return paths
