"""OCRFlux's API contract: plain text from Markdown, failed pages, the request it makes."""

from __future__ import annotations

import pytest

from docparse.errors import InvalidRequestError
from docparse.ocrflux import ConvertOptions, markdown_to_text
from docparse.protocol import parse_request


def test_text_is_markdown_without_its_markup():
    markdown = (
        "# Annual report\n\n## 1. Results\n\nRevenue **grew** by *12 %*, see [the table](#t) and `code`.\n\n"
        "<table><tr><th>Year</th><th>Revenue</th></tr><tr><td>2024</td><td>1 &amp; 2</td></tr></table>\n\n"
        "$$\nE = mc^2\n$$\n\n![image](imgs/fig.jpg)\n\n<!-- region 3 (text) was not recognised: VLM answered 500 -->"
    )
    assert markdown_to_text(markdown) == (
        "Annual report\n\n1. Results\n\nRevenue grew by 12 %, see the table and code.\n\n"
        "Year\tRevenue\n2024\t1 & 2\n\nE = mc^2"
    )


def test_the_layout_request_carries_retries_and_the_merge_choice():
    options = parse_request({"max_page_retries": "2", "pages": "1-2"}, ConvertOptions)
    assert options.layout_request("QUJD", "id", skip_merge_default=False) == {
        "file": "QUJD", "logId": "id", "restructurePages": True, "maxPageRetries": 2, "pages": "1-2",
    }
    skipped = parse_request({"skip_cross_page_merge": "true"}, ConvertOptions).layout_request("QUJD", "id", False)
    assert skipped["restructurePages"] is False
    assert parse_request({}, ConvertOptions).layout_request("QUJD", "id", skip_merge_default=True)["restructurePages"] is False


@pytest.mark.parametrize(("fields", "message"), [({"output_format": "pdf"}, "output_format"), ({"x": "1"}, "'x'")])
def test_bad_options_name_the_field(fields, message):
    with pytest.raises(InvalidRequestError, match=message):
        parse_request(fields, ConvertOptions)
