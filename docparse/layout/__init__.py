"""Layout detection: the detector interface and the one place that picks a backend."""

from __future__ import annotations

from docparse.layout.base import LayoutDetector
from docparse.layout.paddlex_backend import PaddlexLayoutDetector
from docparse.settings import Settings

__all__ = ["LayoutDetector", "PaddlexLayoutDetector", "build_layout_detector"]


def build_layout_detector(settings: Settings) -> LayoutDetector:
    """The detector ``settings.layout.backend`` names, loaded and ready.

    Raises ``ModelSetupError`` when the model cannot be loaded.
    """
    if settings.layout.backend == "paddlex":
        return PaddlexLayoutDetector(
            settings.layout.model_name,
            settings.layout.model_dir,
            settings.layout.device_name,
            settings.layout.batch_size,
        )
    if settings.layout.backend == "cpu":
        # Imported here: onnxruntime and rapid-layout are needed only by this backend.
        from docparse.layout.cpu_backend import CpuLayoutDetector

        return CpuLayoutDetector(settings.layout.batch_size)
    raise ValueError(f"unknown layout backend {settings.layout.backend!r}")
