"""layout_detection: a thin adapter over docparse.layout (see config.pbtxt for tensors).

One ``execute`` gets a dynamic batch; pages that share options go through the detector
in one forward pass. A bad request gets its own error; it never fails the batch.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from docparse.errors import InvalidRequestError
from docparse.layout import build_layout_detector
from docparse.logs import configure_logging
from docparse.protocol import LayoutOptions, parse_request
from docparse.settings import Settings
from docparse.types import LayoutParams
from docparse_triton.common import error_response, input_json, json_tensor
from docparse_triton.stub_watchdog import start_watchdog


def page_image(request) -> np.ndarray:
    image = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise InvalidRequestError(
            f"input 'image' must be one RGB page of shape [H, W, 3], got {list(image.shape)}"
        )
    return image


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        start_watchdog(args["model_instance_name"])  # no stub outlives its server
        settings = Settings.load()
        configure_logging(settings.general.log_level)
        # Fails here, naming the directory and what is missing, if the model is absent.
        self.detector = build_layout_detector(settings)

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        groups: dict[str, tuple[LayoutParams, list[tuple[int, np.ndarray]]]] = {}
        for position, request in enumerate(requests):
            try:
                image = page_image(request)
                options = input_json(request, "options", required=False) or {}
                params = parse_request(options, LayoutOptions).layout_params()
                key = json.dumps(options, sort_keys=True)
                groups.setdefault(key, (params, []))[1].append((position, image))
            except Exception as exc:  # noqa: BLE001 - this request's error only
                responses[position] = error_response(exc)
        for params, items in groups.values():
            try:
                found = self.detector.detect([image for _, image in items], params)
                for (position, _), boxes in zip(items, found):
                    det_boxes = [box.to_det_box() for box in boxes]
                    responses[position] = pb_utils.InferenceResponse(
                        [json_tensor("boxes", det_boxes, shape=(1, 1))]
                    )
            except Exception as exc:  # noqa: BLE001 - fails this group, not the server
                for position, _ in items:
                    responses[position] = error_response(exc)
        return responses
