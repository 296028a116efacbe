"""The label → task → prompt table: GLM-OCR's defaults and the settings overrides."""

import pytest

from docparse.recognition.tasks import TaskTable
from docparse.settings import RecognitionSettings
from docparse.types import Task


@pytest.mark.parametrize(
    ("labels", "task"),
    [
        (["abstract", "algorithm", "content", "doc_title", "figure_title", "paragraph_title",
          "reference_content", "text", "vertical_text", "vision_footnote", "seal", "formula_number"],
         Task.TEXT),
        (["table"], Task.TABLE),
        (["display_formula", "inline_formula"], Task.FORMULA),
        (["chart", "image"], Task.IMAGE),
        (["header", "footer", "number", "footnote", "aside_text", "reference", "footer_image",
          "header_image"], Task.DROP),
    ],
)
def test_glm_ocr_default_tasks(labels, task):
    table = TaskTable()
    assert {label: table.task_for(label) for label in labels} == {label: task for label in labels}


def test_an_unknown_label_is_read_as_text():
    assert TaskTable().task_for("marginalia") is Task.TEXT


def test_glm_ocr_default_prompts():
    table = TaskTable()
    assert table.prompt_for(Task.TEXT) == "Text Recognition:"
    assert table.prompt_for(Task.TABLE) == "Table Recognition:"
    assert table.prompt_for(Task.FORMULA) == "Formula Recognition:"


@pytest.mark.parametrize("task", [Task.IMAGE, Task.DROP])
def test_tasks_that_are_not_sent_have_no_prompt(task):
    with pytest.raises(ValueError, match=task.value):
        TaskTable().prompt_for(task)


def test_settings_override_labels_and_prompts_and_keep_the_rest():
    settings = RecognitionSettings(label_tasks={"seal": "drop", "chart": "table"}, task_prompts={"text": "OCR:"})
    table = TaskTable.from_settings(settings)
    assert table.task_for("seal") is Task.DROP
    assert table.task_for("chart") is Task.TABLE
    assert table.task_for("doc_title") is Task.TEXT
    assert table.prompt_for(Task.TEXT) == "OCR:"
    assert table.prompt_for(Task.TABLE) == "Table Recognition:"


def test_overrides_from_the_environment(monkeypatch):
    monkeypatch.setenv("HPS_LABEL_TASKS", '{"footnote": "text"}')
    monkeypatch.setenv("HPS_TASK_PROMPTS", '{"formula": "LaTeX:"}')
    table = TaskTable.from_settings(RecognitionSettings())
    assert table.task_for("footnote") is Task.TEXT
    assert table.prompt_for(Task.FORMULA) == "LaTeX:"


def test_a_prompt_for_a_task_that_is_never_sent_is_refused():
    with pytest.raises(ValueError, match="image"):
        TaskTable.from_settings(RecognitionSettings(task_prompts={"image": "Describe:"}))
