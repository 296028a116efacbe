import base64
import json
import time

import pytest

from docparse.errors import InvalidRequestError, MalformedBodyError
from docparse.protocol import (
    LayoutOptions,
    check_json_limits,
    json_bytes,
    json_object,
    load_json,
    log_id_for,
    parse_request,
)


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
        ({"file": "aGk=", "pages": "1," * 6000}, "field 'pages': String should have at most 10000 characters"),
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
    # One that no HTTP header could carry (the VLM call's X-Request-Id) is not taken.
    assert log_id_for({"logId": "a\x04b"}) != "a\x04b" and log_id_for({"logId": "文档"}) != "文档"
    with pytest.raises(InvalidRequestError, match="field 'logId': .*printable ASCII"):
        parse_request({"file": "aGk=", "logId": "line\nbreak"})
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


# --- hostile JSON: limits before parsing, short messages -------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64 levels"),
        (b'{"file": "aGk=", "markdownIgnoreLabels": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested deeper than 64"),
        (b"{" + b",".join(b'"k%d": 1' % i for i in range(20_000)) + b"}", "more than 10000 entries"),
        (b"[" + b"0," * 50_000 + b"0]", "more than 10000 entries"),
        (b'"' + b'""' * 50_000, "more than 10000 entries"),  # strings with no entries to count
        ("1" * 5000, "not valid JSON"),  # an integer past Python's 4300 digits: not a 500
    ],
)
def test_hostile_json_is_refused_naming_the_limit(raw, message):
    with pytest.raises(MalformedBodyError, match=message):
        json_object(raw, MalformedBodyError)


def test_json_limits_skip_what_strings_hold():
    brackets = "[{,]}" * 100_000
    body = json.dumps({"file": brackets, "logId": 'quote \\" and [[[ \\\\', "layoutNms": True})
    assert json_object(body)["file"] == brackets
    nested = json.loads("[" * 64 + "]" * 64)
    assert load_json("[" * 64 + "]" * 64) == nested
    with pytest.raises(InvalidRequestError, match="input 'x' is nested deeper than 64 levels"):
        load_json("[" * 65 + "]" * 65, what="input 'x'")


def test_json_limits_cost_little_on_a_large_file():
    body = json.dumps({"file": "QUJD" * 25_000_000, "layoutThreshold": {str(i): 0.5 for i in range(20)}}).encode()
    started = time.perf_counter()
    check_json_limits(body)
    assert time.perf_counter() - started < 0.5  # about 10 ms here; json.loads takes 200 ms


def test_a_million_unknown_fields_get_a_short_answer():
    raw = b"{" + b",".join(b'"k%d": 1' % i for i in range(9_000)) + b', "file": "aGk="}'
    with pytest.raises(InvalidRequestError) as refused:
        parse_request(raw)
    message = refused.value.message
    assert message.startswith("field 'k0': unknown field; field 'k1': unknown field")
    assert message.endswith("and 8995 more problems") and message.count("unknown field") == 5


def test_echoed_names_and_values_are_cut_short():
    with pytest.raises(InvalidRequestError) as refused:
        parse_request({"file": "aGk=", "x" * 100_000: 1})
    assert len(refused.value.message) < 100 and "…" in refused.value.message
