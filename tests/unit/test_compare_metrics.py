"""docparse compare's numbers on inputs whose answers are known by hand."""

from __future__ import annotations

import pytest

from docparse.compare import metrics


def test_markup_is_stripped_before_comparing():
    text = "# Title\n\n| a | b |\n|---|:---:|\n| 1 | **2** |\n\n<table><tr><td>x&amp;y</td></tr></table> [link](http://x) ![i](a.png)"
    assert metrics.plain_text(text) == "Title a b 1 2 x&y link"
    assert metrics.plain_text("- one\n1. two\n> three") == "one two three"


def test_words_are_letter_digit_runs_casefolded_and_cjk_by_character():
    assert metrics.words("Hello, World! it's 3.14") == ["hello", "world", "it", "s", "3", "14"]
    assert metrics.words("表格 data 你好") == ["表", "格", "data", "你", "好"]
    assert metrics.words("カタカナ 한국") == ["カ", "タ", "カ", "ナ", "한", "국"]


def test_word_f1():
    assert metrics.word_f1("a b c", "a b d") == pytest.approx(2 / 3)
    assert metrics.word_f1("a a b", "a b b c") == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert metrics.word_f1("**The** cat", "the cat") == 1.0
    assert metrics.word_f1("", "") == 1.0
    assert metrics.word_f1("x", "y") == 0.0 and metrics.word_f1("", "y") == 0.0


def test_word_f1_in_chinese_counts_characters():
    # 5 reference characters, 4 of them read, one extra: P = 4/5, R = 4/5.
    assert metrics.word_f1("你好世界呀", "你好世界们") == pytest.approx(0.8)


def test_cer_is_edit_distance_over_reference_length():
    assert metrics.cer("abc", "abd") == pytest.approx(1 / 3)
    assert metrics.cer("kitten", "sitting") == pytest.approx(3 / 7)
    assert metrics.cer("## kitten", "sitting") == pytest.approx(3 / 7)  # the heading mark is not a character read
    assert metrics.cer("a much longer answer", "ab") > 1
    assert metrics.cer("", "") == 0.0 and metrics.cer("x", "") == 1.0
    assert metrics.cer("你好", "你们好") == pytest.approx(1 / 3)


def test_similarity():
    assert metrics.similarity("abcd", "abce") == pytest.approx(0.75)
    assert metrics.similarity("**same**  text", "same text") == 1.0
    assert metrics.similarity("", "") == 1.0
    assert metrics.similarity("abc", "xyz") == 0.0


def test_percentiles_interpolate_like_numpy():
    values = [4.0, 1.0, 3.0, 2.0]
    assert metrics.percentile(values, 50) == pytest.approx(2.5)
    assert metrics.percentile(values, 95) == pytest.approx(3.85)
    assert metrics.percentile(values, 0) == 1.0 and metrics.percentile(values, 100) == 4.0
    assert metrics.percentile([7.0], 95) == 7.0
    assert metrics.percentile([], 50) is None
    assert metrics.mean([]) is None and metrics.mean([1.0, 2.0]) == 1.5
