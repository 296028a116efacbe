"""Pixel sizes: fitting a page under a pixel budget the way pdfium rounds."""

from __future__ import annotations

import math
import random

import pytest

from docparse.render import fit_scale


def pixels(width: float, height: float, scale: float) -> int:
    return math.ceil(width * scale) * math.ceil(height * scale)


def test_a_page_under_the_budget_keeps_its_scale():
    assert fit_scale(595.2756, 841.8898, 2.0, 12_000_000) == 2.0


def test_a_page_exactly_at_the_budget_keeps_its_scale():
    assert fit_scale(100, 50, 1.0, 5_000) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_fitted_pages_are_under_the_budget_and_nearly_fill_it(seed):
    rng = random.Random(seed)
    for _ in range(200):
        width, height = rng.uniform(10, 5_000), rng.uniform(10, 5_000)
        budget = rng.randint(10_000, 20_000_000)
        scale = rng.uniform(0.5, 6.0)
        fitted = fit_scale(width, height, scale, budget)
        assert fitted <= scale
        assert pixels(width, height, fitted) <= budget
        if fitted < scale:  # smaller only as far as needed
            assert pixels(width, height, fitted) >= 0.98 * budget - (width + height) * fitted - 1
