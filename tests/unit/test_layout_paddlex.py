"""The PaddleX layout detector, run through the real ``paddlex.create_model`` path on the
stand-in models of ``testkit/tiny_doclayout.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from docparse.errors import ModelSetupError
from docparse.layout import build_layout_detector
from docparse.layout.paddlex_backend import PaddlexLayoutDetector, layout_boxes, predict_options
from docparse.settings import LayoutSettings, Settings
from docparse.types import LayoutParams
from testkit.layout_template import LOW_SCORE_BOX, TEMPLATE
from testkit.tiny_doclayout import MODELS, build_model_dir, model_label

TEMPLATE_LABELS = [label for label, _ in TEMPLATE]


def white_page(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), 255, dtype=np.uint8)


@pytest.fixture(scope="module")
def v3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("layout") / "PP-DocLayoutV3", "PP-DocLayoutV3")


@pytest.fixture(scope="module")
def detector(v3_dir: Path) -> PaddlexLayoutDetector:
    return PaddlexLayoutDetector("PP-DocLayoutV3", v3_dir)


def spy_on_predict(detector: PaddlexLayoutDetector, monkeypatch: pytest.MonkeyPatch) -> list:
    """Records the arguments of every PaddleX ``predict`` call, then runs it."""
    calls: list = []
    real_predict = detector._model.predict

    def predict(images, **kwargs):
        calls.append((images, kwargs))
        return real_predict(images, **kwargs)

    monkeypatch.setattr(detector._model, "predict", predict)
    return calls


# --- detection -----------------------------------------------------------------------


def test_one_batch_of_two_page_sizes_gets_the_template_in_each_pages_pixels(detector, monkeypatch):
    calls = spy_on_predict(detector, monkeypatch)
    sizes = [(800, 600), (1684, 1191)]

    found = detector.detect([white_page(h, w) for h, w in sizes], LayoutParams())

    assert len(calls) == 1 and len(calls[0][0]) == 2
    assert len(found) == 2
    for (height, width), boxes in zip(sizes, found):
        assert [b.label for b in boxes] == TEMPLATE_LABELS
        for box, (_, (fx1, fy1, fx2, fy2)) in zip(boxes, TEMPLATE):
            expected = (fx1 * width, fy1 * height, fx2 * width, fy2 * height)
            assert box.coordinate == pytest.approx(expected, abs=2), box.label
            assert box.score == pytest.approx(0.95)
        assert [b.order for b in boxes] == list(range(1, len(TEMPLATE) + 1))
        assert all(b.cls_id == MODELS["PP-DocLayoutV3"].labels.index(b.label) for b in boxes)
        assert all(b.polygon is not None and len(b.polygon) >= 4 for b in boxes)


def test_a_lower_threshold_lets_the_low_score_box_through(detector):
    page = [white_page(800, 600)]

    default = detector.detect(page, LayoutParams())[0]
    low = detector.detect(page, LayoutParams(threshold=0.1))[0]
    per_class = detector.detect(page, LayoutParams(threshold={22: 0.1}))[0]  # 22 = text

    assert len(low) == len(default) + 1
    extra = [b for b in low if b.score < 0.5]
    assert [(b.label, round(b.score, 2)) for b in extra] == [(LOW_SCORE_BOX[0], LOW_SCORE_BOX[2])]
    assert len(per_class) == len(default) + 1


def test_layout_options_reach_paddlex(detector):
    page = [white_page(800, 600)]

    plain = {b.label: b for b in detector.detect(page, LayoutParams())[0]}
    options = LayoutParams(nms=True, unclip_ratio=(2.0, 1.0), merge_bboxes_mode="large")
    wide = {b.label: b for b in detector.detect(page, options)[0]}

    assert plain["number"].coordinate == pytest.approx((270, 760, 330, 784), abs=1)
    assert wide["number"].coordinate == pytest.approx((240, 760, 360, 784), abs=1)
    assert wide["header"].coordinate == (0.0, 16.0, 600.0, 40.0)  # widened, clipped to the page


def test_pages_reach_paddlex_as_bgr(detector, monkeypatch):
    calls = spy_on_predict(detector, monkeypatch)
    red = np.zeros((50, 40, 3), dtype=np.uint8)
    red[..., 0] = 255

    detector.detect([red], LayoutParams())

    received = calls[0][0][0]
    assert received.shape == (50, 40, 3)
    assert received[0, 0].tolist() == [0, 0, 255]


def test_no_pages_means_no_predict_call(detector, monkeypatch):
    calls = spy_on_predict(detector, monkeypatch)
    assert detector.detect([], LayoutParams()) == []
    assert calls == []


def test_batch_size_bounds_each_forward_pass(v3_dir, monkeypatch):
    small = PaddlexLayoutDetector("PP-DocLayoutV3", v3_dir, batch_size=2)
    calls = spy_on_predict(small, monkeypatch)

    found = small.detect([white_page(100 + i, 80) for i in range(3)], LayoutParams())

    assert len(calls) == 1 and calls[0][1]["batch_size"] == 2
    assert [len(boxes) > 0 for boxes in found] == [True, True, True]


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_name_loads_and_detects(name, tmp_path):
    detector = PaddlexLayoutDetector(name, build_model_dir(tmp_path / name, name))

    boxes = detector.detect([white_page(842, 595)], LayoutParams())[0]

    assert detector.name == name
    assert [b.label for b in boxes] == [model_label(name, label) for label in TEMPLATE_LABELS]
    if MODELS[name].order_columns:
        assert [b.order for b in boxes] == list(range(1, len(boxes) + 1))
    else:
        assert all(b.order is None for b in boxes)
    assert all((b.polygon is not None) == MODELS[name].masks for b in boxes)


def test_build_layout_detector_uses_the_settings(v3_dir):
    settings = Settings(layout=LayoutSettings(model_dir=v3_dir, model_name="PP-DocLayoutV3", batch_size=3))

    detector = build_layout_detector(settings)

    assert isinstance(detector, PaddlexLayoutDetector)
    assert (detector.name, detector.model_dir, detector.device, detector.batch_size) == (
        "PP-DocLayoutV3", v3_dir, "cpu", 3,
    )


# --- set-up errors ---------------------------------------------------------------------


@pytest.fixture()
def paddlex_must_not_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the detector gets as far as calling PaddleX."""

    def load(self):
        raise AssertionError("PaddleX was called before the model directory was checked")

    monkeypatch.setattr(PaddlexLayoutDetector, "_load", load)


@pytest.fixture()
def broken_dir(v3_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(v3_dir, tmp_path / "model"))


def test_unset_model_dir_says_how_to_get_the_weights(paddlex_must_not_load):
    with pytest.raises(ModelSetupError) as error:
        PaddlexLayoutDetector("PP-DocLayoutV3", None)
    assert "HPS_LAYOUT_MODEL_DIR is not set" in error.value.message
    assert "never downloaded" in error.value.message
    assert "PP-DocLayoutV3" in error.value.message


def test_missing_model_dir_is_named(paddlex_must_not_load, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelSetupError, match="does not exist") as error:
        PaddlexLayoutDetector("PP-DocLayoutV3", missing)
    assert str(missing) in error.value.message


@pytest.mark.parametrize(
    "removed, named",
    [
        (["inference.yml"], "inference.yml"),
        (["inference.pdiparams"], "inference.pdiparams"),
        (["inference.json"], "inference.json (or inference.pdmodel)"),
        (["inference.yml", "inference.pdiparams"], "inference.yml, inference.pdiparams"),
    ],
)
def test_missing_model_files_are_named(paddlex_must_not_load, broken_dir, removed, named):
    for name in removed:
        (broken_dir / name).unlink()
    with pytest.raises(ModelSetupError) as error:
        PaddlexLayoutDetector("PP-DocLayoutV3", broken_dir)
    assert str(broken_dir) in error.value.message
    assert f"is missing {named}." in error.value.message


def test_model_name_mismatch_names_both(paddlex_must_not_load, v3_dir):
    with pytest.raises(ModelSetupError) as error:
        PaddlexLayoutDetector("PP-DocLayoutV2", v3_dir)
    assert str(v3_dir) in error.value.message
    assert "'PP-DocLayoutV3'" in error.value.message and "'PP-DocLayoutV2'" in error.value.message


def test_unknown_model_name_lists_the_supported_ones(paddlex_must_not_load, v3_dir):
    with pytest.raises(ModelSetupError) as error:
        PaddlexLayoutDetector("PP-DocLayout-S", v3_dir)
    assert all(name in error.value.message for name in MODELS)


def test_paddlex_load_failure_names_the_directory(broken_dir):
    (broken_dir / "inference.json").write_text("not a program")
    with pytest.raises(ModelSetupError, match="PaddleX could not load") as error:
        PaddlexLayoutDetector("PP-DocLayoutV3", broken_dir)
    assert str(broken_dir) in error.value.message


# --- conversion and options ------------------------------------------------------------


def test_boxes_are_clipped_to_the_page_and_numbered_in_list_order():
    items = [
        {"cls_id": 12, "label": "header", "score": np.float32(0.9), "coordinate": [-5, 2, 120, 9],
         "order": None, "polygon_points": np.array([[-5, 2], [120, 2], [120, 9], [-5, 9]])},
        {"cls_id": 22, "label": "text", "score": 0.8, "coordinate": [150, 10, 160, 20], "order": 1},
        {"cls_id": 22, "label": "text", "score": 0.7, "coordinate": [10, 30, 90, 60], "order": 2},
    ]

    ordered = layout_boxes(items, width=100, height=50, reading_order=True)
    plain = layout_boxes(items, width=100, height=50, reading_order=False)

    assert [b.coordinate for b in ordered] == [(0.0, 2.0, 100.0, 9.0), (10.0, 30.0, 90.0, 50.0)]
    assert ordered[0].polygon == ((0.0, 2.0), (100.0, 2.0), (100.0, 9.0), (0.0, 9.0))
    assert [b.order for b in ordered] == [1, 2]  # the box beyond the right edge is gone
    assert [b.order for b in plain] == [None, None]
    assert (ordered[0].label, ordered[0].cls_id, ordered[0].score) == ("header", 12, pytest.approx(0.9))


# --- options -------------------------------------------------------------------------


def test_predict_options_leave_unset_ones_out_and_make_numbers_floats():
    assert predict_options(LayoutParams()) == {}
    options = predict_options(
        LayoutParams(threshold=1, nms=False, unclip_ratio={"2": [1, 2]}, merge_bboxes_mode="small")
    )
    assert options == {
        "threshold": 1.0,
        "layout_nms": False,
        "layout_unclip_ratio": {2: (1.0, 2.0)},
        "layout_merge_bboxes_mode": "small",
    }
    assert isinstance(options["threshold"], float)
    assert predict_options(LayoutParams(threshold={3: 0.2}, unclip_ratio=1))["layout_unclip_ratio"] == 1.0
