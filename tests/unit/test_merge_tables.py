"""Tables continued on the next page become one table (docparse.merge, issue #17)."""

from __future__ import annotations

from docparse.merge import MergeOptions, merged_markdown, restructure_pages
from docparse.merge.tables import column_count, merge_tables, parse_table
from testkit.pages import IGNORED, document, failed, html_table, margin, pipe_table, table, text

HEADER = ["Item", "Quantity", "Price"]
CN_HEADER = ["名称", "数量（件）", "单价"]


def rows(*names: str) -> list[list[str]]:
    return [[name, str(i + 1), f"{i + 1}.00"] for i, name in enumerate(names)]


def merged(pages, **options) -> str:
    return merged_markdown(pages, MergeOptions(**options), IGNORED, prettify=True).text


def tables_in(markdown: str) -> list[str]:
    return [part for part in markdown.split("\n\n") if part.startswith(("<table", "|"))]


def test_a_table_over_two_pages_with_its_header_repeated_is_one_table_with_one_header():
    pages = document(
        [text("Stock at the end of the year."), table(html_table(rows("apple", "pear"), HEADER)),
         margin("- 1 -", "bottom")],
        [margin("Annual report"), table(html_table(rows("plum"), HEADER)), text("All prices include tax.")],
    )
    [one] = tables_in(merged(pages))
    assert one == html_table(rows("apple", "pear") + rows("plum"), HEADER)
    assert one.count("<th>Item</th>") == 1


def test_a_table_over_two_pages_without_a_repeated_header_keeps_every_row():
    first = html_table(rows("apple", "pear"), HEADER)
    pages = document([table(first)], [table(html_table([["plum", "3", "3.00"]]))])
    assert tables_in(merged(pages)) == [html_table(rows("apple", "pear") + [["plum", "3", "3.00"]], HEADER)]


def test_a_table_over_three_pages_lands_whole_on_the_first_page():
    pages = document(
        [text("Inventory."), table(html_table(rows("a1", "a2"), HEADER))],
        [margin("Annual report"), table(html_table([["b1", "9", "9.00"]], HEADER)), margin("- 2 -", "bottom")],
        [table(html_table([["c1", "7", "7.00"]])), text("End of the inventory.")],
    )
    expected = html_table(rows("a1", "a2") + [["b1", "9", "9.00"], ["c1", "7", "7.00"]], HEADER)
    assert tables_in(merged(pages)) == [expected]

    first, second, third = restructure_pages(pages, MergeOptions(), IGNORED, prettify=True)
    assert tables_in(first.markdown.text) == [expected]
    assert second.markdown.text == "Annual report"  # in the margin of one page only: not running text
    moved = [b for b in second.prunedResult.parsing_res_list + third.prunedResult.parsing_res_list
             if b.block_label == "table"]
    assert [(b.block_content, b.block_order) for b in moved] == [("", None), ("", None)]
    assert third.markdown.text == "End of the inventory."
    assert [b.block_order for b in third.prunedResult.parsing_res_list] == [None, 1]


def test_a_chinese_table_whose_repeated_header_is_written_in_full_width_forms_keeps_one_header():
    cont_header = ["名称", "数量(件)", "单价"]  # the next page's header read with ASCII brackets
    pages = document(
        [text("年末库存如下："), table(html_table([["苹果", "3", "2.00"]], CN_HEADER))],
        [margin("年度报告"), table(html_table([["梨", "5", "1.50"]], cont_header))],
    )
    assert tables_in(merged(pages)) == [html_table([["苹果", "3", "2.00"], ["梨", "5", "1.50"]], CN_HEADER)]


def test_columns_are_counted_with_colspan_and_rowspan():
    spanned = "<table><tr><td colspan=\"2\">Name</td><td>Qty</td></tr><tr><td>a</td><td>b</td><td>1</td></tr></table>"
    assert parse_table(spanned).columns == 3
    down = "<table><tr><td rowspan=\"2\">x</td><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr></table>"
    assert column_count(parse_table(down).rows) == 3
    plain = html_table([["c", "d", "2"]])
    assert merge_tables(spanned, plain) == spanned.replace("</table>", plain[len("<table>"):])


def test_tables_of_different_shape_or_width_or_cut_by_text_stay_apart():
    two = html_table([["a", "1"]], ["k", "v"])
    three = html_table(rows("b"), HEADER)
    assert len(tables_in(merged(document([table(two)], [table(three)])))) == 2
    narrow = document([table(three)], [table(html_table(rows("c")), left=300, right=700)])
    assert len(tables_in(merged(narrow))) == 2
    text_after = document([table(three), text("Notes below the table.")], [table(html_table(rows("c")))])
    assert len(tables_in(merged(text_after))) == 2
    text_before = document([table(three)], [text("A new section."), table(html_table(rows("c")))])
    assert len(tables_in(merged(text_before))) == 2


def test_nothing_is_merged_across_a_failed_page_or_with_merge_tables_off():
    first, second = table(html_table(rows("a"), HEADER)), table(html_table(rows("b"), HEADER))
    across = document([first], failed(1), [second])
    markdown = merged(across)
    assert len(tables_in(markdown)) == 2
    assert "<!-- page 2 could not be parsed: layout detection failed -->" in markdown
    assert len(tables_in(merged(document([first], [second]), merge_tables=False))) == 2


def test_markdown_pipe_tables_merge_with_and_without_a_repeated_header():
    start = pipe_table([["apple", "1"]], ["Item", "Qty"])
    repeated = pipe_table([["pear", "2"]], ["Item", "Qty"])
    assert tables_in(merged(document([table(start)], [table(repeated)]))) == [
        "| Item | Qty |\n| --- | --- |\n| apple | 1 |\n| pear | 2 |"
    ]
    # Without the header, the recogniser still writes a pipe table: its first row on top.
    bare = pipe_table([["plum", "3"]], ["pear", "2"])
    assert tables_in(merged(document([table(start)], [table(bare)]))) == [
        "| Item | Qty |\n| --- | --- |\n| apple | 1 |\n| pear | 2 |\n| plum | 3 |"
    ]
    assert merge_tables(start, html_table([["pear", "2"]])) is None  # HTML and pipe: not one table


def test_a_continued_note_before_the_rest_of_the_table_does_not_part_it():
    for note in ["Table 3 (continued)", "续表 3-1", "表 3（续）", "(cont'd)"]:
        pages = document([table(html_table(rows("a"), HEADER))],
                         [text(note, height=30), table(html_table(rows("b"), HEADER))])
        assert merged(pages) == f"{html_table(rows('a') + rows('b'), HEADER)}\n\n{note}"
    body = document([text("The survey went on and"), text("The war continued.")], [text("after it ended.")])
    assert merged(body) == "The survey went on and\n\nThe war continued.\n\nafter it ended."
