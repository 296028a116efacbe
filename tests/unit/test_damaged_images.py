"""Images damaged in ways Pillow's plugins do not report as decoding errors (found by
``make fuzz``): each is a 422 naming the damage, never an internal error."""

from __future__ import annotations

import random
import struct

import pytest

from bench.fuzz import mutations
from docparse.documents import open_document
from docparse.errors import DocParseError, InvalidDocumentError
from docparse.settings import Settings


def render_all(data: bytes) -> None:
    with open_document(data, None, Settings.load()) as document:
        for _ in document.render(list(range(document.page_count)), 36):
            pass


def test_a_tiff_frame_without_its_width_is_a_damaged_image():
    tiff = bytearray(mutations.image_seeds()["small-2p.tiff"])
    for at in mutations.tiff_entries(bytes(tiff), frame=1):
        if struct.unpack_from("<H", tiff, at)[0] == 256:  # ImageWidth → an unknown tag
            struct.pack_into("<H", tiff, at, 65000)
    with pytest.raises(InvalidDocumentError, match="could not be decoded"):  # was TypeError: Missing dimensions
        render_all(bytes(tiff))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns of every damaged tag it skips
def test_mutated_images_open_and_render_or_fail_with_a_client_error():
    rng = random.Random(2026)
    seeds = mutations.image_seeds()
    for _ in range(150):
        _, data = mutations.mutate("image", seeds[rng.choice(sorted(seeds))], rng)
        try:
            render_all(data)
        except DocParseError as exc:
            assert exc.status in (413, 422), exc.message
