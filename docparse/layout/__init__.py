"""Layout detection: the detector interface and the one place that picks a backend."""

from __future__ import annotations

from docparse.layout.base import LayoutDetector
from docparse.layout.paddlex_backend import PaddlexLayoutDetector
from docparse.settings import Settings

__all__ = ["LayoutDetector", "PaddlexLayoutDetector", "build_layout_detector"]


def build_layout_detector(settings: Settings) -> LayoutDetector:
    """The detector ``settings.layout_backend`` names, loaded and ready.

    Raises ``ModelSetupError`` when the model cannot be loaded.
    """
    if settings.layout_backend == "paddlex":
        return PaddlexLayoutDetector(
            settings.layout_model_name,
            settings.layout_model_dir,
            settings.layout_device_name,
            settings.layout_batch_size,
        )
    if settings.layout_backend == "cpu":
        # Imported here: onnxruntime and rapid-layout are needed only by this backend.
        from docparse.layout.cpu_backend import CpuLayoutDetector

        return CpuLayoutDetector(settings.layout_batch_size)
    raise ValueError(f"unknown layout backend {settings.layout_backend!r}")
