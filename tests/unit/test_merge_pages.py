"""What restructure_pages, merged_markdown and concatenate_pages answer, page by page and
as one document (docparse.merge, issue #17)."""

from __future__ import annotations

import json

import pytest

from docparse.merge import MergedDocument, MergeOptions, concatenate_pages, merged_markdown, restructure_pages
from docparse.protocol import json_bytes
from docparse.responses import PageResult
from testkit.pages import FIGURE_DATA, IGNORED, Spec, document, failed, figure, html_table, margin, table, text, title

OPTIONS = MergeOptions()


def sample():
    return document(
        [title("Report", label="doc_title", height=60), text("It starts here and"), margin("- 1 -", "bottom")],
        [margin("Report 2024"), text("goes on here."), figure(), table(html_table([["a", "1"]], ["k", "v"]))],
        failed(2),
        [margin("Report 2024"), text("More words."), figure(), Spec("text", "", error="VLM returned 500")],
    )


def test_every_block_stays_in_its_page_with_its_label_box_and_id():
    pages = sample()
    for before, after in zip(pages, restructure_pages(pages, OPTIONS, IGNORED, prettify=True)):
        keep = [(b.block_label, b.block_bbox, b.block_id) for b in before.prunedResult.parsing_res_list]
        assert [(b.block_label, b.block_bbox, b.block_id) for b in after.prunedResult.parsing_res_list] == keep
        assert after.prunedResult.layout_det_res == before.prunedResult.layout_det_res
        PageResult.model_validate(json.loads(json_bytes(after)))  # still the contract


def test_reading_positions_count_the_blocks_left_in_the_markdown():
    second = restructure_pages(sample(), OPTIONS, IGNORED, prettify=True)[1]
    assert [(b.block_content[:12], b.block_order) for b in second.prunedResult.parsing_res_list] == [
        ("Report 2024", None), ("", None), ("", 1), ("<table><tr><", 2)]


def test_a_failed_page_keeps_its_place_as_it_came_and_as_a_comment_in_the_document():
    pages = sample()
    assert restructure_pages(pages, OPTIONS, IGNORED, prettify=True)[2] == pages[2]
    document_text = merged_markdown(pages, OPTIONS, IGNORED, prettify=True).text
    assert "\n\n<!-- page 3 could not be parsed: layout detection failed -->\n\n" in document_text
    silent = pages[2].model_copy(update={"markdown": pages[2].markdown.model_copy(update={"text": ""})})
    assert merged_markdown([silent], OPTIONS, IGNORED, prettify=True).text == \
        "<!-- page 3 could not be parsed: layout detection failed -->"
    assert "<!-- region 3 (text) was not recognised: VLM returned 500 -->" in document_text


def test_figures_two_pages_share_a_key_for_are_both_kept_under_their_own_keys():
    merged = merged_markdown(sample(), OPTIONS, IGNORED, prettify=True)
    key = "imgs/img_in_image_box_200_260_800_560.jpg"
    renamed = "imgs/p4_img_in_image_box_200_260_800_560.jpg"
    assert merged.images == {key: FIGURE_DATA, renamed: FIGURE_DATA}
    assert f"![image]({key})" in merged.text and f"![image]({renamed})" in merged.text


def test_the_merged_document_reads_every_page_in_order():
    merged = merged_markdown(sample(), OPTIONS, IGNORED, prettify=True)
    assert merged.text.split("\n\n") == [
        "# Report", "It starts here and goes on here.",
        "![image](imgs/img_in_image_box_200_260_800_560.jpg)",
        "<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>",
        "<!-- page 3 could not be parsed: layout detection failed -->",
        "More words.", "![image](imgs/p4_img_in_image_box_200_260_800_560.jpg)",
        "<!-- region 3 (text) was not recognised: VLM returned 500 -->",
    ]
    plain = merged_markdown(sample(), OPTIONS, IGNORED, prettify=False)
    assert plain.text == merged.text.replace("\n\n", "\n")


def test_concatenated_pages_are_one_page_result_with_every_block():
    pages = sample()
    one = concatenate_pages(pages, OPTIONS, IGNORED, prettify=True)
    PageResult.model_validate(json.loads(json_bytes(one)))
    assert one.markdown.text == merged_markdown(pages, OPTIONS, IGNORED, prettify=True).text
    assert one.markdown.images == merged_markdown(pages, OPTIONS, IGNORED, prettify=True).images
    blocks = one.prunedResult.parsing_res_list
    assert len(blocks) == sum(len(p.prunedResult.parsing_res_list) for p in pages)
    boxes = one.prunedResult.layout_det_res.boxes
    assert all(boxes[b.block_id].coordinate == [float(v) for v in b.block_bbox] for b in blocks)
    assert [b.block_order for b in blocks if b.block_order is not None] == [1, 2, 3, 4, 5, 6, 7]
    assert [b.block_image for b in blocks if b.block_image] == [
        "imgs/img_in_image_box_200_260_800_560.jpg", "imgs/p4_img_in_image_box_200_260_800_560.jpg"]
    assert (one.prunedResult.page_index, one.prunedResult.error) == (0, None)
    assert one.regions.failed == 1


def test_no_pages():
    assert restructure_pages([], OPTIONS, IGNORED, prettify=True) == []
    assert merged_markdown([], OPTIONS, IGNORED, prettify=True) == MergedDocument("", {})
    with pytest.raises(ValueError):
        concatenate_pages([], OPTIONS, IGNORED, prettify=True)


def test_with_every_rule_off_a_page_reads_as_the_pipeline_wrote_it():
    pages = sample()
    off = MergeOptions(merge_tables=False, merge_paragraphs=False, relevel_titles=False, drop_running_text=False)
    for before, after in zip(pages, restructure_pages(pages, off, IGNORED, prettify=True)):
        assert after.markdown.text == before.markdown.text
        assert after.prunedResult.parsing_res_list == before.prunedResult.parsing_res_list


def test_the_readmes_before_and_after_example_is_what_the_merge_gives():
    """README.md, "Merge rules": its example, kept true."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Merge rules"):readme.index("**`/restructure-pages`**")]
    blocks = [b.split("```", 1)[0].strip("\n") for b in section.split("```markdown\n")[1:]]
    *pages, after = blocks
    header = ["Region", "Sales"]
    doc = document(
        [title("1 Results"), text("Sales rose in every region, and the board expects the trend to con-"),
         margin("- 1 -", at="bottom")],
        [margin("Annual Report 2024"), text("tinue into next year."),
         table(html_table([["North", "12"]], header=header)), margin("- 2 -", at="bottom")],
        [margin("Annual Report 2024"), table(html_table([["South", "9"]], header=header)),
         title("1.1 Outlook"), text("Costs are stable."), margin("- 3 -", at="bottom")],
    )
    assert [p.markdown.text for p in doc] == pages
    assert merged_markdown(doc, MergeOptions(), IGNORED, True).text == after
