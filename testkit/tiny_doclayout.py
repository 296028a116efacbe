"""A stand-in PP-DocLayout model: a tiny Paddle graph with the real model's inputs and
outputs, saved the way PaddleX exports models.

The real weights cannot be downloaded here, so tests load this directory through the
real ``paddlex.create_model(name, model_dir=...)`` path and run PaddleX's own
pre-processing, Paddle Inference and post-processing on it.

For every page of a batch the graph predicts the boxes of ``layout_template.TEMPLATE``
(score ``MAIN_SCORE``) plus ``LOW_SCORE_BOX``, in the page's original pixel coordinates,
which it computes from ``im_shape / scale_factor`` as RT-DETR does. The image is an input
the graph really consumes (scaled by a zero weight), so it cannot be pruned away, but it
changes nothing.

Output signature per model family (as PaddleX 3.7.2 post-processes them):

- PP-DocLayout-L, PP-DocLayout_plus-L: boxes ``[M, 6]`` (class, score, x1, y1, x2, y2)
  and the per-image box count ``[N]``; PaddleX keeps the rows in output order.
- PP-DocLayoutV2: boxes ``[M, 8]`` with two reading-order columns (order, votes);
  PaddleX sorts by them.
- PP-DocLayoutV3: boxes ``[M, 7]`` with one reading-order column, the box count, and
  instance masks ``[M, 200, 200]`` (a quarter of the 800x800 input) from which PaddleX
  draws polygons.

The V2/V3 graphs emit their rows in reverse reading order, so only the reading-order
column can put them back in ``TEMPLATE`` order.

Build one from the shell: ``python -m testkit.tiny_doclayout OUT_DIR [NAME]``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from testkit.layout_template import LOW_SCORE_BOX, MAIN_SCORE, TEMPLATE

# Label lists of the real models, in class-id order (PaddleX 3.7.2:
# modules/base/utils/pdparams2safetensors/inference_meta.py for V2/V3 and plus-L,
# repo_apis/PaddleDetection_api/object_det/official_categories.py for L).
_LABELS_V2_V3 = (
    "abstract", "algorithm", "aside_text", "chart", "content", "display_formula",
    "doc_title", "figure_title", "footer", "footer_image", "footnote", "formula_number",
    "header", "header_image", "image", "inline_formula", "number", "paragraph_title",
    "reference", "reference_content", "seal", "table", "text", "vertical_text",
    "vision_footnote",
)  # fmt: skip
_LABELS_L = (
    "paragraph_title", "image", "text", "number", "abstract", "content", "figure_title",
    "formula", "table", "table_title", "reference", "doc_title", "footnote", "header",
    "algorithm", "footer", "seal", "chart_title", "chart", "formula_number",
    "header_image", "footer_image", "aside_text",
)  # fmt: skip
_LABELS_PLUS_L = (
    "paragraph_title", "image", "text", "number", "abstract", "content", "figure_title",
    "formula", "table", "reference", "doc_title", "footnote", "header", "algorithm",
    "footer", "seal", "chart", "formula_number", "aside_text", "reference_content",
)  # fmt: skip

# The PP-DocLayout(-plus)-L models have one "formula" class where V2/V3 split display
# and inline formulas; TEMPLATE uses the V2/V3 names.
_OLDER_NAMES = {"display_formula": "formula"}

MASK_SIZE = 200  # V3 masks are a quarter of its 800x800 input


@dataclass(frozen=True)
class ModelSpec:
    """What differs between the four models as far as PaddleX can tell."""

    labels: tuple[str, ...]
    input_size: int  # the square Resize target of the real model's Preprocess
    order_columns: int  # 0 = no reading order, 1 = V3's order, 2 = V2's (order, votes)
    masks: bool


MODELS: dict[str, ModelSpec] = {
    "PP-DocLayoutV3": ModelSpec(_LABELS_V2_V3, 800, order_columns=1, masks=True),
    "PP-DocLayoutV2": ModelSpec(_LABELS_V2_V3, 800, order_columns=2, masks=False),
    "PP-DocLayout-L": ModelSpec(_LABELS_L, 640, order_columns=0, masks=False),
    "PP-DocLayout_plus-L": ModelSpec(_LABELS_PLUS_L, 800, order_columns=0, masks=False),
}


def model_label(name: str, label: str) -> str:
    """``label`` (a TEMPLATE label) as the model ``name`` calls it."""
    labels = MODELS[name].labels
    if label in labels:
        return label
    older = _OLDER_NAMES.get(label)
    if older in labels:
        return older
    raise ValueError(f"{name} has no class for TEMPLATE label {label!r}")


def predicted_regions(name: str) -> list[tuple[str, tuple[float, float, float, float], float]]:
    """(label, page fractions, score) of every box the stand-in predicts, in reading
    order: TEMPLATE, then the low-score box."""
    regions = [(model_label(name, label), box, MAIN_SCORE) for label, box in TEMPLATE]
    low_label, low_box, low_score = LOW_SCORE_BOX
    return regions + [(model_label(name, low_label), low_box, low_score)]


def _inference_yml(name: str, spec: ModelSpec) -> dict:
    """The fields PaddleX reads from a real RT-DETR style inference.yml."""
    return {
        "mode": "paddle",
        "draw_threshold": 0.5,
        "metric": "COCO",
        "use_dynamic_shape": False,
        "Global": {"model_name": name},
        "arch": "DETR",
        "min_subgraph_size": 3,
        "Preprocess": [
            {
                "type": "Resize",
                "target_size": [spec.input_size, spec.input_size],
                "keep_ratio": False,
                "interp": 2,
            },
            {"type": "NormalizeImage", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "norm_type": "none"},
            {"type": "Permute"},
        ],
        "label_list": list(spec.labels),
    }


def _build_layer(name: str, spec: ModelSpec):
    import paddle

    regions = predicted_regions(name)
    emitted = list(range(len(regions)))
    if spec.order_columns:
        emitted.reverse()  # only the order column restores reading order
    fractions = np.array([regions[i][1] for i in emitted], dtype=np.float32)
    heads = np.array(
        [[spec.labels.index(regions[i][0]), regions[i][2]] for i in emitted], dtype=np.float32
    )
    order = np.array(emitted, dtype=np.float32)[:, None]
    tails = [order, np.ones_like(order)][: spec.order_columns]
    columns = 6 + spec.order_columns

    class StandIn(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("fractions", paddle.to_tensor(fractions))
            self.register_buffer("heads", paddle.to_tensor(heads))
            if tails:
                self.register_buffer("tails", paddle.to_tensor(np.concatenate(tails, axis=1)))
            if spec.masks:
                # Mask cell centres as page fractions: the mask grid spans the whole page.
                grid = (np.arange(MASK_SIZE, dtype=np.float32) + 0.5) / MASK_SIZE
                self.register_buffer("grid", paddle.to_tensor(grid))
            self.image_weight = self.create_parameter(
                [1], default_initializer=paddle.nn.initializer.Constant(0.0)
            )

        def forward(self, im_shape, image, scale_factor):
            origin = paddle.floor(im_shape / scale_factor + 0.5)  # [N, 2] original h, w
            height, width = origin[:, 0:1], origin[:, 1:2]
            size = paddle.concat([width, height, width, height], axis=1)  # [N, 4]
            boxes = self.fractions.unsqueeze(0) * size.unsqueeze(1)  # [N, K, 4]
            image_term = image.mean(axis=[1, 2, 3]) * self.image_weight  # always 0
            boxes = boxes + image_term.reshape([-1, 1, 1])
            ones = paddle.ones_like(boxes[:, :, :1])  # [N, K, 1]
            parts = [self.heads.unsqueeze(0) * ones, boxes]
            if tails:
                parts.append(self.tails.unsqueeze(0) * ones)
            rows = paddle.concat(parts, axis=-1).reshape([-1, columns])
            counts = (ones[:, 0, 0] * len(regions)).astype("int32")
            if not spec.masks:
                return rows, counts
            return rows, counts, self._masks(ones)

        def _masks(self, ones):
            """A filled rectangle per box: [N * K, S, S] int32, like the real model's."""
            x1, y1, x2, y2 = (self.fractions[:, i : i + 1] for i in range(4))  # [K, 1]
            inside_x = paddle.logical_and(self.grid >= x1, self.grid < x2)  # [K, S]
            inside_y = paddle.logical_and(self.grid >= y1, self.grid < y2)
            box = inside_y.astype("float32").unsqueeze(2) * inside_x.astype("float32").unsqueeze(1)
            masks = box.unsqueeze(0) * ones.unsqueeze(-1)  # [N, K, S, S]
            return masks.reshape([-1, MASK_SIZE, MASK_SIZE]).astype("int32")

    return StandIn()


def build_model_dir(out: Path, name: str = "PP-DocLayoutV3") -> Path:
    """Write a loadable stand-in model ``name`` to ``out`` and return ``out``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    import paddle
    import yaml

    spec = MODELS[name]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layer = _build_layer(name, spec)
    layer.eval()
    input_spec = [
        paddle.static.InputSpec([None, 2], "float32", name="im_shape"),
        paddle.static.InputSpec([None, 3, None, None], "float32", name="image"),
        paddle.static.InputSpec([None, 2], "float32", name="scale_factor"),
    ]
    static = paddle.jit.to_static(layer, input_spec=input_spec, full_graph=True)
    paddle.jit.save(static, str(out / "inference"))
    with open(out / "inference.yml", "w", encoding="utf-8") as f:
        yaml.safe_dump(_inference_yml(name, spec), f, sort_keys=False)
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(f"usage: python -m testkit.tiny_doclayout OUT_DIR [{'|'.join(MODELS)}]")
    print(build_model_dir(Path(sys.argv[1]), *sys.argv[2:]))
