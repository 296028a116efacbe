"""Which task each layout label gets, and which prompt each task sends to the VLM.

GLM-OCR's own defaults (its repository zai-org/GLM-OCR, ``glmocr/config.yaml``), overridable from the settings
so that a deployment can drop or re-route labels without a code change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from docparse.settings import RecognitionSettings
from docparse.types import Task


def _labels(task: Task, *labels: str) -> dict[str, Task]:
    return {label: task for label in labels}


DEFAULT_LABEL_TASKS: Mapping[str, Task] = MappingProxyType({
    **_labels(
        Task.TEXT,
        "abstract", "algorithm", "content", "doc_title", "figure_title", "paragraph_title",
        "reference_content", "text", "vertical_text", "vision_footnote", "seal", "formula_number",
    ),
    **_labels(Task.TABLE, "table"),
    **_labels(Task.FORMULA, "display_formula", "inline_formula"),
    **_labels(Task.IMAGE, "chart", "image"),
    **_labels(
        Task.DROP,
        "header", "footer", "number", "footnote", "aside_text", "reference",
        "footer_image", "header_image",
    ),
})

DEFAULT_PROMPTS: Mapping[Task, str] = MappingProxyType({
    Task.TEXT: "Text Recognition:",
    Task.TABLE: "Table Recognition:",
    Task.FORMULA: "Formula Recognition:",
})

# Labels the table does not know are read as text: a new detector class is still read.
UNKNOWN_LABEL_TASK = Task.TEXT


@dataclass(frozen=True)
class TaskTable:
    """Label → task and task → prompt. Only TEXT, TABLE and FORMULA have prompts: IMAGE
    regions are kept as pictures and DROP regions are left out, neither is sent."""

    label_tasks: Mapping[str, Task] = field(default_factory=lambda: dict(DEFAULT_LABEL_TASKS))
    prompts: Mapping[Task, str] = field(default_factory=lambda: dict(DEFAULT_PROMPTS))

    def __post_init__(self) -> None:
        not_sent = sorted(task.value for task in self.prompts if task not in DEFAULT_PROMPTS)
        if not_sent:
            raise ValueError(
                f"prompts given for task(s) {', '.join(not_sent)}, which are never sent to the "
                f"VLM; only {', '.join(t.value for t in DEFAULT_PROMPTS)} have prompts"
            )

    @classmethod
    def from_settings(cls, settings: RecognitionSettings) -> "TaskTable":
        """GLM-OCR's defaults with ``label_tasks`` and ``task_prompts`` laid over them."""
        return cls(
            label_tasks={**DEFAULT_LABEL_TASKS, **settings.label_tasks},
            prompts={**DEFAULT_PROMPTS, **settings.task_prompts},
        )

    def task_for(self, label: str) -> Task:
        return self.label_tasks.get(label, UNKNOWN_LABEL_TASK)

    def prompt_for(self, task: Task) -> str:
        try:
            return self.prompts[task]
        except KeyError:
            raise ValueError(f"task {task.value!r} has no prompt: it is not sent to the VLM") from None
