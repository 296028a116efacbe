import base64
import json

import pytest

from docparse.errors import InvalidRequestError
from docparse.protocol import LayoutOptions, json_bytes, log_id_for, parse_request


def test_request_fields_follow_paddleocr_vl_names():
    request = parse_request(
        {"file": "aGVsbG8=", "fileType": 0, "layoutThreshold": {"2": 0.4},
         "layoutUnclipRatio": [1.0, 1.2], "markdownIgnoreLabels": ["header"],
         "useDocUnwarping": False, "pages": "1-2"}
    )
    assert request.file_bytes() == b"hello"
    params = request.layout_params()
    assert params.threshold == {2: 0.4} and params.unclip_ratio == (1.0, 1.2)
    assert request.ignored_labels() == frozenset({"header"})
    assert request.layout_options() == {"layoutThreshold": {2: 0.4}, "layoutUnclipRatio": [1.0, 1.2]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({}, "field 'file'"),
        ({"file": "aGk=", "layoutTreshold": 0.5}, "field 'layoutTreshold': unknown field"),
        ({"file": "aGk=", "fileType": 3}, "field 'fileType'"),
        ({"file": "aGk=", "topP": 2}, "field 'topP'"),
        ({"file": "aGk=", "minPixels": 90000, "maxPixels": 50000}, "field 'maxPixels': .*below minPixels"),
    ],
)
def test_bad_requests_name_the_problem(raw, message):
    with pytest.raises(InvalidRequestError, match=message):
        parse_request(raw)


@pytest.mark.parametrize(
    ("file", "message"),
    [("@@not-base64@@", "not valid base64"), ("https://example.com/a.pdf", "URL"), ("", "field 'file'")],
)
def test_file_field_problems_are_named(file, message):
    with pytest.raises(InvalidRequestError, match=message):
        parse_request({"file": file}).file_bytes()


def test_data_uri_file_is_accepted():
    data = base64.b64encode(b"%PDF-1.7").decode()
    assert parse_request({"file": f"data:application/pdf;base64,{data}"}).file_bytes() == b"%PDF-1.7"


def test_layout_options_alone_validate_like_the_request():
    assert parse_request({"layoutNms": True}, LayoutOptions).layout_params().nms is True
    with pytest.raises(InvalidRequestError, match="file"):
        parse_request({"file": "x"}, LayoutOptions)


def test_the_log_id_is_the_callers_cut_to_the_field_limit_or_a_new_one():
    assert log_id_for({"logId": "mine"}) == "mine"
    assert log_id_for({"logId": "x" * 300}) == "x" * 128
    fresh = {log_id_for({}), log_id_for({"logId": ""}), log_id_for({"logId": 7})}
    assert len(fresh) == 3 and all(len(i) == 32 for i in fresh)


@pytest.mark.parametrize("value", [
    {"file": "QUJD" * 1000, "logId": "päge 1 — 文字", "dpi": 144, "nested": [1.5, None, True]},
    # What orjson refuses: integers past 64 bits, which a request may carry in fields
    # passed on as they are (found by the gateway fuzz test).
    {"vlmExtraArgs": {"n": 138861095351221775018596761600}, "dpi": -(2**70)},
    {"logId": "lone surrogate \ud800 here"},
])
def test_json_bytes_round_trips_any_request(value):
    encoded = json_bytes(value)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == value
