"""Region recognition engines behind one interface (``base.Recognizer``)."""

from __future__ import annotations

from docparse.errors import ModelSetupError
from docparse.recognition.base import Recognizer
from docparse.settings import Settings


def build_recognizer(settings: Settings) -> Recognizer:
    """The engine ``settings.recognition.engine`` names. Each engine is imported only when chosen,
    so one engine's dependencies are never needed to run another."""
    if settings.recognition.engine == "vlm":
        from docparse.recognition.vlm import VlmRecognizer

        return VlmRecognizer.from_settings(settings)
    if settings.recognition.engine == "cpu":
        from docparse.recognition.cpu_ocr import CpuOcrRecognizer

        return CpuOcrRecognizer()
    raise ModelSetupError(f"unknown recognizer {settings.recognition.engine!r}; known: vlm, cpu")
