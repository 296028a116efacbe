"""Cross-page restructuring end to end: /restructure-pages (gateway → Triton's
restructure-pages model) on generated documents in English and Chinese, and
restructurePages on /layout-parsing, its stream and /convert."""

from __future__ import annotations

import pytest

from docparse.cli import sse_events
from testkit import pages as gen
from testkit.documents import sample_pdf
from tests.e2e.test_gateway import body_for

pytestmark = pytest.mark.triton

HEADER = ["Region", "Sales"]


def request_pages(*specs) -> list[dict]:
    """Generated pages as a /restructure-pages client sends them (from /layout-parsing)."""
    return [
        {"prunedResult": page.prunedResult.model_dump(mode="json", exclude_none=True),
         "markdownImages": page.markdown.images}
        for page in gen.document(*specs)
    ]


def english_report() -> list[dict]:
    return request_pages(
        [gen.margin("Annual Report 2024"), gen.title("1 Results"),
         gen.text("Sales rose in every region, and the board expects the trend to continu-"),
         gen.table(gen.html_table([["North", "12"]], header=HEADER)), gen.margin("- 1 -", at="bottom")],
        [gen.margin("Annual Report 2024"), gen.table(gen.html_table([["South", "9"]], header=HEADER)),
         gen.margin("- 2 -", at="bottom")],
        [gen.margin("Annual Report 2024"), gen.table(gen.html_table([["East", "7"]])),
         gen.title("1.1 Outlook"), gen.text("Costs are stable."), gen.margin("- 3 -", at="bottom")],
    )


def chinese_report() -> list[dict]:
    return request_pages(
        [gen.margin("年度报告"), gen.title("第一章 总览"), gen.text("本年度各地区销售额均有增长，董事会预计这一趋势将")],
        [gen.margin("年度报告"), gen.text("延续到明年。"), gen.title("第一节 成本"), gen.text("成本保持稳定。")],
    )


def restructured(http, pages: list[dict], **options) -> list[dict]:
    answer = http.post("/restructure-pages", json={"pages": pages, **options})
    assert answer.status_code == 200, answer.text
    envelope = answer.json()
    assert envelope["errorCode"] == 0 and envelope["logId"]
    return envelope["result"]["layoutParsingResults"]


def test_a_table_over_three_pages_becomes_one_without_its_repeated_header(http):
    pages = restructured(http, english_report())
    first = pages[0]["markdown"]["text"]
    assert first.count("<table>") == 1 and first.count("Region") == 1
    assert first.index("North") < first.index("South") < first.index("East")
    assert "<table>" not in pages[1]["markdown"]["text"]
    assert "Annual Report 2024" not in first and "- 1 -" not in first  # running text out of the Markdown
    blocks = pages[0]["prunedResult"]["parsing_res_list"]
    assert any(b["block_content"] == "Annual Report 2024" and b["block_order"] is None for b in blocks)


def test_titles_are_relevelled_and_pages_concatenated_on_request(http):
    (page,) = restructured(http, english_report(), concatenatePages=True)
    text = page["markdown"]["text"]
    assert "## 1 Results" in text and "### 1.1 Outlook" in text
    without = restructured(http, english_report(), mergeTables=False, relevelTitles=False)
    assert without[1]["markdown"]["text"].count("<table>") == 1


def test_chinese_paragraphs_join_without_a_space_and_chapters_outrank_sections(http):
    (page,) = restructured(http, chinese_report(), concatenatePages=True)
    text = page["markdown"]["text"]
    assert "董事会预计这一趋势将延续到明年。" in text
    assert "## 第一章 总览" in text and "### 第一节 成本" in text and "年度报告" not in text


@pytest.mark.parametrize(
    ("body", "message"),
    [({"pages": []}, "field 'pages'"), ({"pages": [{"prunedResult": {"width": 10}}]}, "field 'pages.0.prunedResult"),
     ({"pages": [], "mergeTabels": True}, "mergeTabels")],
)
def test_a_bad_restructure_request_names_the_field(http, body, message):
    answer = http.post("/restructure-pages", json=body)
    assert answer.status_code == 422 and message in answer.json()["errorMsg"], answer.text


def test_layout_parsing_restructures_its_pages_and_the_stream_ends_with_the_merged_document(http, vlm):
    pdf = sample_pdf(3)
    unary = http.post("/layout-parsing", json=body_for(pdf, restructurePages=True)).json()["result"]
    merged = unary["mergedMarkdown"]
    assert merged and "Page 2" not in merged  # each page's number is running text
    plain = http.post("/layout-parsing", json=body_for(pdf)).json()["result"]
    assert "mergedMarkdown" not in plain
    with http.stream("POST", "/layout-parsing/stream", json=body_for(pdf, restructurePages=True)) as response:
        events = list(sse_events(response))
    assert [name for name, _ in events] == ["page", "page", "page", "final"]
    assert events[-1][1]["mergedMarkdown"] == merged
    streamed_pages = [data["result"]["markdown"]["text"] for _, data in events[:3]]
    assert streamed_pages == [p["markdown"]["text"] for p in plain["layoutParsingResults"]]  # pages stay per page


def test_convert_merges_by_default_and_skips_on_request(http, vlm):
    files = {"file": ("r.pdf", sample_pdf(2), "application/pdf")}
    merged = http.post("/convert/file", files=files).json()
    reference = http.post("/layout-parsing", json=body_for(sample_pdf(2), restructurePages=True)).json()["result"]
    assert merged["content"] == reference["mergedMarkdown"]
    skipped = http.post("/convert/file", files=files, data={"skip_cross_page_merge": "true"}).json()
    plain = http.post("/layout-parsing", json=body_for(sample_pdf(2))).json()["result"]["layoutParsingResults"]
    assert skipped["content"] == "\n\n".join(p["markdown"]["text"] for p in plain)
    assert "imgs/p2_" in merged["content"] and "imgs/p2_" not in skipped["content"]  # the same figure path on two pages
