"""HPS_VLM_PROFILES: parsing, presets, defaults, and errors that name profile and field."""

from __future__ import annotations

import json

import pytest

from docparse.recognition.presets import PRESETS
from docparse.recognition.profiles import read_profiles
from docparse.settings import Settings, SettingsError, VlmSettings


def test_unset_gives_one_profile_from_the_vlm_settings():
    vlm = VlmSettings(url="http://vlm:9/v1", model="glm-ocr", max_concurrency=7, api_key="k")
    (profile,) = vlm.profile_list
    assert (profile.name, profile.url, profile.model, profile.max_concurrency, profile.api_key) == (
        "glm-ocr", "http://vlm:9/v1", "glm-ocr", 7, "k"
    )
    assert profile.mode == "region" and profile.prompts == {}


def test_json_list_with_presets_in_order():
    raw = json.dumps([
        {"name": "glm", "preset": "glm-ocr", "url": "http://a:1/v1", "max_concurrency": 3},
        {"name": "flux", "preset": "ocrflux-3b", "url": "http://b:2/v1/"},
        {"name": "paddle", "preset": "paddleocr-vl", "prompts": {"text": "Read:"}},
    ])
    glm, flux, paddle = read_profiles(raw, VlmSettings())
    assert glm.prompts["table"] == "Table Recognition:" and glm.max_concurrency == 3
    assert flux.mode == "page" and flux.output == "json" and flux.url == "http://b:2/v1"
    assert flux.prompts["page"].startswith("Below is the image of one page of a document.")
    assert paddle.prompts == {"text": "Read:", "table": "Table Recognition:", "formula": "Formula Recognition:"}
    assert paddle.url == VlmSettings().url


def test_yaml_file(tmp_path):
    path = tmp_path / "profiles.yaml"
    path.write_text("- name: lighton\n  preset: lightonocr-2-1b\n  url: http://l:3/v1\n  max_concurrency: 2\n")
    (profile,) = read_profiles(str(path), VlmSettings())
    assert (profile.mode, profile.prompts, profile.max_concurrency) == ("page", {"page": ""}, 2)


def test_every_preset_is_a_valid_profile():
    for name in PRESETS:
        (profile,) = read_profiles(json.dumps([{"name": name, "preset": name}]), VlmSettings())
        assert profile.model == PRESETS[name]["model"]


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"name": "a", "model": "m", "mode": "page"}, ["'a'", "needs prompts.page"]),
        ({"name": "b", "model": "m", "max_concurrency": 0}, ["'b'", "field max_concurrency"]),
        ({"name": "c", "model": "m", "url": "ftp://x"}, ["'c'", "field url"]),
        ({"name": "d", "model": "m", "prompts": {"page": "x"}}, ["'d'", "do not fit mode 'region'"]),
        ({"name": "e", "preset": "nope"}, ["'e'", "unknown 'nope'"]),
        ({"model": "m", "colour": 1}, ["'#1'", "field name", "field colour"]),
    ],
)
def test_errors_name_the_profile_and_field(entry, words):
    with pytest.raises(SettingsError) as caught:
        read_profiles(json.dumps([entry]), VlmSettings())
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_duplicate_names_and_bad_shapes_are_refused():
    with pytest.raises(SettingsError, match="'x' is used twice"):
        read_profiles(json.dumps([{"name": "x", "model": "m"}, {"name": "x", "model": "n"}]), VlmSettings())
    with pytest.raises(SettingsError, match="non-empty list"):
        read_profiles("[]", VlmSettings())
    with pytest.raises(SettingsError, match="readable file"):
        read_profiles("/no/such/file.yaml", VlmSettings())


def test_settings_load_names_the_variable(monkeypatch):
    monkeypatch.setenv("HPS_VLM_PROFILES", json.dumps([{"name": "a", "model": "m", "mode": "page"}]))
    with pytest.raises(SettingsError, match="HPS_VLM_PROFILES: profile 'a'"):
        Settings.load()


def test_one_recognizer_per_profile_with_its_own_bound_and_prompts():
    from docparse.recognition import build_recognizers

    raw = json.dumps([
        {"name": "glm", "preset": "glm-ocr", "url": "http://a:1/v1", "max_concurrency": 3},
        {"name": "flux", "preset": "ocrflux-3b", "url": "http://b:2/v1", "max_concurrency": 2},
    ])
    recognizers = build_recognizers(Settings(vlm=VlmSettings(profiles=raw)))
    assert list(recognizers) == ["glm", "flux"]
    glm, flux = recognizers["glm"], recognizers["flux"]
    assert (glm.client.settings.max_concurrency, flux.client.settings.max_concurrency) == (3, 2)
    assert (glm.page_mode, flux.page_mode) == (False, True)
    assert [e.chat_url for e in flux.client.pool.endpoints] == ["http://b:2/v1/chat/completions"] and flux.settings.crops.max_pixels == 1024 * 1024
    assert list(build_recognizers(Settings())) == ["glm-ocr"]


def test_unknown_model_is_refused_listing_the_names():
    from docparse.errors import InvalidRequestError
    from docparse.pipeline import DocumentPipeline

    first, second = object(), object()
    pipeline = DocumentPipeline(recognizer=first, tasks=None, detect=None, layout_model="x",  # type: ignore[arg-type]
                                recognizers={"a": first, "b": second})
    assert pipeline.recognizer_for(None) is first and pipeline.recognizer_for("b") is second
    with pytest.raises(InvalidRequestError, match="unknown model 'c'; known: a, b"):
        pipeline.recognizer_for("c")
