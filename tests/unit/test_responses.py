"""The response contract: what is sent is what the models say, and one stream of events
becomes the unary answer."""

from __future__ import annotations

import json

import pytest

from docparse.errors import InternalError
from docparse.protocol import json_bytes
from docparse.responses import (
    DataInfo,
    DocumentSummary,
    FinalEvent,
    LayoutDetBox,
    LayoutDetResult,
    MarkdownResult,
    ModelSettings,
    PageEvent,
    PageResult,
    PageSize,
    ParsingBlock,
    PrunedResult,
    RegionCounts,
    Timings,
    collect_events,
    parse_event,
)


def page(index: int, blocks: list[ParsingBlock] | None = None) -> PageResult:
    return PageResult(
        prunedResult=PrunedResult(
            page_index=index,
            width=100,
            height=200,
            model_settings=ModelSettings(use_layout_detection=True, layout_model="m", recognizer="r"),
            parsing_res_list=blocks or [],
            layout_det_res=LayoutDetResult(boxes=[LayoutDetBox(cls_id=1, label="text", score=0.9, coordinate=[0, 0, 1, 1])]),
        ),
        markdown=MarkdownResult(text=f"page {index}", images={}, isStart=True, isEnd=True),
        regions=RegionCounts(recognized=len(blocks or []), failed=0),
    )


def final(pages: int) -> FinalEvent:
    sizes = [PageSize(width=100, height=200)] * pages
    info = DataInfo(type="pdf", numPages=pages, pages=sizes)
    return FinalEvent(logId="id", dataInfo=info, summary=DocumentSummary(pages=pages), timings=Timings())


def test_optional_paddlex_fields_are_left_out_when_unset_not_sent_as_null():
    block = ParsingBlock(block_label="text", block_content="hi", block_bbox=[0, 0, 1, 1], block_id=0, block_order=None)
    sent = json.loads(json_bytes(page(0, [block])))
    item = sent["prunedResult"]["parsing_res_list"][0]
    assert "error" not in item and "block_image" not in item
    assert item["block_order"] is None  # PaddleX sends this one as null
    assert "order" not in sent["prunedResult"]["layout_det_res"]["boxes"][0]
    assert "error" not in sent["prunedResult"]
    assert sent["outputImages"] is None and sent["inputImage"] is None
    failed = block.model_copy(update={"error": "VLM answered 500"})
    assert json.loads(json_bytes(failed))["error"] == "VLM answered 500"


def test_events_survive_the_wire_typed():
    event = PageEvent(logId="id", pageIndex=2, totalPages=3, result=page(2))
    again = parse_event(json_bytes(event))
    assert again == event
    assert parse_event(json.loads(json_bytes(final(1)))) == final(1)  # from what an SSE client decoded


def test_a_list_of_models_is_json_too():
    boxes = [LayoutDetBox(cls_id=1, label="text", score=0.5, coordinate=[1, 2, 3, 4], order=1)]
    assert json.loads(json_bytes(boxes)) == [
        {"cls_id": 1, "label": "text", "score": 0.5, "coordinate": [1.0, 2.0, 3.0, 4.0], "order": 1}
    ]


def test_collect_events_orders_pages_and_needs_the_final():
    events = [PageEvent(logId="id", pageIndex=i, totalPages=2, result=page(i)) for i in (1, 0)]
    answer = collect_events("id", [*events, final(2)])
    assert [p.prunedResult.page_index for p in answer.result.layoutParsingResults] == [0, 1]
    assert (answer.logId, answer.errorCode, answer.errorMsg) == ("id", 0, "Success")
    assert answer.result.dataInfo.numPages == 2
    with pytest.raises(InternalError, match="final"):
        collect_events("id", events)


def test_unknown_fields_in_an_event_are_refused():
    sent = json.loads(json_bytes(final(1)))
    sent["surprise"] = 1
    with pytest.raises(ValueError, match="surprise"):
        parse_event(sent)
