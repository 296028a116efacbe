"""Information extraction's own rules: what counts as a schema or a template, the
prompt GLM-OCR is trained on, and answers checked against the schema."""

from __future__ import annotations

import json

import pytest

from docparse.errors import InvalidRequestError
from docparse.extraction import (
    DEFAULT_PROMPT,
    InvalidAnswerError,
    checked_answer,
    parse_schema,
    prompt_for,
    response_format,
)

ID_CARD = {"id_number": "", "name": "", "address": {"city": "", "zip": ""}, "dates": [{"issued": ""}], "age": 0}


def test_a_glm_ocr_template_becomes_a_schema_requiring_every_key():
    schema = parse_schema(json.dumps(ID_CARD))
    assert schema["required"] == list(ID_CARD)
    assert schema["properties"]["address"]["properties"]["city"] == {"type": "string"}
    assert schema["properties"]["dates"]["items"]["properties"]["issued"] == {"type": "string"}
    assert schema["properties"]["age"] == {"type": "number"}


@pytest.mark.parametrize("template", [{"type": "", "items": [""]}, {"type": 12}, {"properties": ""}])
def test_a_template_with_keys_named_like_schema_keywords_stays_a_template(template):
    assert parse_schema(template)["properties"].keys() == template.keys()


def test_a_json_schema_is_taken_as_it_is():
    schema = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    assert parse_schema(schema) == schema


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{oops", "field 'schema': not valid JSON"),
        ("[1, 2]", "field 'schema': must be a JSON object"),
        ("{}", "field 'schema': must be a JSON object"),
        ({"type": "object", "properties": {"a": {"type": "text"}}}, "not a valid JSON Schema"),
    ],
)
def test_a_bad_schema_is_refused_naming_the_field(value, message):
    with pytest.raises(InvalidRequestError, match=message):
        parse_schema(value)


def test_the_prompt_is_glm_ocrs_with_the_schemas_template():
    prompt = prompt_for(parse_schema(ID_CARD))
    prefix, template = prompt.split("\n", 1)
    assert prefix == DEFAULT_PROMPT == "请按下列JSON格式输出图中信息:"
    assert json.loads(template) == {"id_number": "", "name": "", "address": {"city": "", "zip": ""},
                                    "dates": [{"issued": ""}], "age": ""}
    assert response_format({"type": "object"})["json_schema"]["schema"] == {"type": "object"}


def test_an_answer_that_fits_is_data_even_inside_a_code_fence():
    schema = parse_schema({"name": "", "age": 0})
    assert checked_answer('```json\n{"name": "Ann", "age": 41}\n```', schema) == {"name": "Ann", "age": 41}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("Name: Ann", "not JSON"),
        ('{"name": "Ann"}', "answer: 'age' is a required property"),
        ('{"name": 5, "age": "x"}', "answer.age: 'x' is not of type 'number'"),
    ],
)
def test_an_answer_that_does_not_fit_says_why_and_keeps_the_raw_answer(raw, message):
    with pytest.raises(InvalidAnswerError) as caught:
        checked_answer(raw, parse_schema({"name": "", "age": 0}))
    assert message in caught.value.message and caught.value.raw == raw and caught.value.status == 422
