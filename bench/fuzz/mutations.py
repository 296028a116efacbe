"""Byte-level mutations of real documents: what a broken scanner, a cut-off upload or a
hostile client sends. Each mutator takes the bytes and a seeded ``random.Random`` and
returns new bytes, so an input is reproduced from the seed alone.

The seeds are testkit's generated PDFs and images (the files every other test uses), a
few of them made smaller so that a mutant that still parses costs the stack little.
"""

from __future__ import annotations

import functools
import io
import random
import re
import struct
import zlib
from typing import Callable

from PIL import Image

from testkit import documents

Mutator = Callable[[bytes, random.Random], bytes]

# Values a parser trusts at its peril: zero, negative, the edges of 16/32-bit integers.
ABSURD_NUMBERS = [b"0", b"-1", b"65535", b"2147483647", b"4294967295", b"99999999999999999999", b"1e308", b"-0.0"]
# Bytes that mean something to a PDF or image parser, inserted whole.
TOKENS = [b"\x00", b"\xff", b"%%EOF", b"endobj", b"obj", b"stream", b"endstream", b"xref", b"trailer",
          b"<<", b">>", b"(", b")", b"[", b"]", b"/", b"\xff\xd8", b"IEND", b"\r\n"]
PDF_OBJECT = re.compile(rb"(\d+)\s+(\d+)\s+obj\b.*?endobj", re.DOTALL)
PDF_NUMBER = re.compile(rb"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


@functools.cache
def pdf_seeds() -> dict[str, bytes]:
    """The PDFs mutated: content on every page, an empty one, an encrypted one, one with
    no pages, one whose forms nest (100 squares: cheap, but a cycle away from costly)."""
    return {
        "sample-1p": documents.sample_pdf(1),
        "sample-2p": documents.sample_pdf(2),
        "blank": documents.blank_pdf(1),
        "encrypted": documents.encrypted_pdf(),
        "pageless": documents.pageless_pdf(),
        "nested-forms": documents.nested_forms_pdf(2),
    }


@functools.cache
def image_seeds() -> dict[str, bytes]:
    """testkit's page image as PNG and JPEG at full size, and a quarter of it in every
    supported format (a 6 MB BMP or TIFF per input would make the run about bytes)."""
    page = Image.open(io.BytesIO(documents.sample_image("PNG")))
    small = page.resize((page.width // 4, page.height // 4))
    seeds = {"page.png": documents.sample_image("PNG"), "page.jpeg": documents.sample_image("JPEG")}
    for fmt in ("PNG", "JPEG", "TIFF", "BMP", "WEBP"):
        buffer = io.BytesIO()
        small.save(buffer, format=fmt)
        seeds[f"small.{fmt.lower()}"] = buffer.getvalue()
    frames = [small, small.rotate(180)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    seeds["small-2p.tiff"] = buffer.getvalue()
    return seeds


# --- generic mutators -------------------------------------------------------------------


def bit_flips(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice([1, 2, 4, 8, 16, 64])):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def insert_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        chunk = rng.choice(TOKENS) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 64))
        at = rng.randrange(len(out) + 1)
        out[at:at] = chunk
    return bytes(out)


def delete_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if len(out) <= 1:  # a small seed can be all but gone
            break
        at = rng.randrange(len(out))
        del out[at:at + rng.choice([1, 2, 8, 64, 512])]
    return bytes(out) or data[:1]


def truncate(data: bytes, rng: random.Random) -> bytes:
    """Cut anywhere: within the header, in the middle, or just before the end."""
    if len(data) < 2:
        return b""
    where = rng.choice([rng.randrange(1, 64), rng.randrange(1, len(data)), len(data) - rng.randrange(1, 64)])
    return data[:max(1, min(where, len(data) - 1))]


# --- PDF structure ----------------------------------------------------------------------


def splice_objects(data: bytes, rng: random.Random) -> bytes:
    """Objects of another PDF put into this one: one replacing an object of the same
    number (the xref still points at the old offsets), or inserted as they are."""
    donor = rng.choice([pdf for pdf in pdf_seeds().values() if pdf != data])
    objects, donated = list(PDF_OBJECT.finditer(data)), list(PDF_OBJECT.finditer(donor))
    if not objects or not donated:
        return insert_bytes(data, rng)
    target, gift = rng.choice(objects), rng.choice(donated)
    if rng.random() < 0.5:
        body = gift.group(0)[gift.group(0).index(b"obj"):]
        return data[:target.start()] + target.group(1) + b" " + target.group(2) + b" " + body + data[target.end():]
    at = rng.choice([target.start(), target.end()])
    return data[:at] + b"\n" + gift.group(0) + b"\n" + data[at:]


def duplicate_xref(data: bytes, rng: random.Random) -> bytes:
    """The cross-reference section and trailer again: repeated, pointing at itself
    (a /Prev cycle), or at a catalog and a size that do not exist."""
    start = data.rfind(b"\nxref") + 1  # not the "xref" of "startxref"
    if start == 0:
        return duplicate_xref_free(data, rng)
    tail = data[start:]
    choice = rng.randrange(3)
    if choice == 0:
        return data + b"\n" + tail * rng.randint(1, 3)
    offset = len(data) + 1
    if choice == 1:
        trailer = b"trailer\n<< /Size 9 /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (offset, offset)
    else:
        trailer = b"trailer\n<< /Size %s /Root 99999 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            rng.choice(ABSURD_NUMBERS), offset)
    return data + b"\nxref\n0 1\n0000000000 65535 f \n" + trailer


def duplicate_xref_free(data: bytes, rng: random.Random) -> bytes:
    """A PDF without a classic xref table (pdfium writes streams): a trailer anyway."""
    return data + b"\ntrailer\n<< /Root 1 0 R /Size %s >>\nstartxref\n0\n%%%%EOF\n" % rng.choice(ABSURD_NUMBERS)


def absurd_numbers(data: bytes, rng: random.Random) -> bytes:
    """Numbers of the file (a /Count, a /Length, a MediaBox corner, an offset) replaced
    by absurd ones."""
    numbers = list(PDF_NUMBER.finditer(data))
    if not numbers:
        return bit_flips(data, rng)
    out, shift = bytearray(data), 0
    for match in sorted(rng.sample(numbers, min(len(numbers), rng.randint(1, 3))), key=lambda m: m.start()):
        value = rng.choice(ABSURD_NUMBERS)
        out[match.start() + shift:match.end() + shift] = value
        shift += len(value) - (match.end() - match.start())
    return bytes(out)


# --- image headers ----------------------------------------------------------------------

# Declared widths and heights: none, one pixel, 16-bit and 32-bit edges.
ABSURD_SIZES = [0, 1, 65535, 100_000, 2**31 - 1, 2**32 - 1]


def absurd_image_size(data: bytes, rng: random.Random) -> bytes:
    """The image's header declares another width and height (with a valid PNG CRC, so
    the decoder believes it): nothing, one pixel, or gigapixels in a few kilobytes."""
    width, height = rng.choice(ABSURD_SIZES), rng.choice(ABSURD_SIZES)
    if data.startswith(b"\x89PNG"):
        return png_with_size(data, width, height)
    if data.startswith(b"\xff\xd8"):
        return jpeg_with_size(data, min(width, 65535), min(height, 65535))
    if data.startswith(b"BM"):
        return data[:18] + struct.pack("<ii", to_int32(width), to_int32(height)) + data[26:]
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return tiff_with_size(data, width, height)
    return absurd_numbers(data, rng)


def to_int32(value: int) -> int:
    return value - 2**32 if value >= 2**31 else value


def png_with_size(data: bytes, width: int, height: int) -> bytes:
    """IHDR (the first chunk, at byte 8) with another size and its CRC recomputed."""
    header = bytearray(data[16:29])  # width, height, depth, colour type, ...
    header[0:8] = struct.pack(">II", width, height)
    crc = zlib.crc32(b"IHDR" + bytes(header)) & 0xFFFFFFFF
    return data[:16] + bytes(header) + struct.pack(">I", crc) + data[33:]


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """The frame header (SOF0-SOF2: length, precision, height, width) with another size."""
    for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]
    return data


def tiff_with_size(data: bytes, width: int, height: int, frame: int = 0) -> bytes:
    """ImageWidth (256) and ImageLength (257) of ``frame``'s IFD set to a LONG value."""
    order = "<" if data.startswith(b"II") else ">"
    out = bytearray(data)
    for at in tiff_entries(data, frame):
        (tag,) = struct.unpack_from(order + "H", data, at)
        if tag in (256, 257):
            struct.pack_into(order + "HII", out, at + 2, 4, 1, width if tag == 256 else height)
    return bytes(out)


def tiff_entries(data: bytes, frame: int) -> list[int]:
    """Offsets of the 12-byte entries of frame ``frame``'s IFD (the chain from byte 4)."""
    order = "<" if data.startswith(b"II") else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    for _ in range(frame):
        (entries,) = struct.unpack_from(order + "H", data, ifd)
        (ifd,) = struct.unpack_from(order + "I", data, ifd + 2 + 12 * entries)
    (entries,) = struct.unpack_from(order + "H", data, ifd)
    return [ifd + 2 + 12 * n for n in range(entries)]


#: Every mutator by the name the report counts it under; structural ones apply to
#: their format only.
GENERIC: dict[str, Mutator] = {
    "bit flips": bit_flips, "inserted bytes": insert_bytes, "deleted bytes": delete_bytes, "truncated": truncate,
}
PDF_ONLY: dict[str, Mutator] = {
    "spliced objects": splice_objects, "duplicated xref": duplicate_xref, "absurd numbers": absurd_numbers,
}
IMAGE_ONLY: dict[str, Mutator] = {"absurd size": absurd_image_size}


def mutate(kind: str, data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """(mutator name, mutant) of ``data``, a ``kind`` ("pdf" or "image") seed."""
    table = {**GENERIC, **(PDF_ONLY if kind == "pdf" else IMAGE_ONLY)}
    name = rng.choice(sorted(table))
    return name, table[name](data, rng)
