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


def build_recognizers(settings: Settings) -> dict[str, Recognizer]:
    """One recognizer per name a request's ``model`` may give, the default first: a VLM
    recognizer (own client, own bound) per profile of ``HPS_VLM_PROFILES``, or the CPU
    recognizer alone under its own name (HPS_RECOGNIZER=cpu ignores profiles)."""
    if settings.recognition.engine != "vlm":
        recognizer = build_recognizer(settings)
        return {recognizer.name: recognizer}
    from docparse.recognition.vlm import VlmRecognizer

    if settings.vlm.profiles is None:  # today's one VLM, exactly as before
        return {settings.vlm.model: VlmRecognizer.from_settings(settings)}
    return {profile.name: VlmRecognizer.from_profile(profile, settings) for profile in settings.vlm.profile_list}
