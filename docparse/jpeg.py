"""JPEG encoding of large pictures on several cores at once.

libjpeg-turbo encodes on one core: 3.8 ms for a 1.6 MP VLM input here, the largest single
cost of a one-region request after resizing. A baseline JPEG with a restart interval is
a sequence of independent pieces: after each restart marker the decoder starts its DC
prediction afresh, exactly as at the start of a file. So horizontal strips, each a whole
number of MCU rows, can be encoded as separate JPEGs in parallel and joined: the header
of the first with the full height and a restart interval of one strip, then each strip's
entropy-coded data, separated by the restart markers RST0..RST7 in turn.

The result is byte for byte the file libjpeg writes itself with that restart interval
(``cv2.IMWRITE_JPEG_RST_INTERVAL``; tests/unit/test_jpeg.py checks it), and it decodes to
exactly the pixels of the file without one: strips are whole MCU rows and 4:2:0 chroma
subsampling never looks past an MCU.
"""

from __future__ import annotations

import math
import os
import struct
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

# Pictures smaller than this are encoded whole: their encoding takes well under a
# millisecond, little more than handing a strip to another thread.
PARALLEL_MIN_PIXELS = 512 * 512
# Strips per picture: one per core, at most 4.
STRIPS = max(1, min(4, os.cpu_count() or 1))
MCU = 16  # pixels: the MCU of 4:2:0 subsampling, which the encoder is told to use
MAX_RESTART_INTERVAL = 0xFFFF  # MCUs: the DRI segment's field is 16 bits

_SOI, _EOI, _SOF0, _SOS, _DRI, _RST0 = 0xD8, 0xD9, 0xC0, 0xDA, 0xDD, 0xD0

_helpers = ThreadPoolExecutor(max_workers=max(1, STRIPS - 1), thread_name_prefix="jpeg-strip")


def encode_jpeg(pixels: np.ndarray, quality: int, bgr: bool = False) -> bytes:
    """``pixels`` (RGB, RGBA or grey; alpha is dropped; BGR or BGRA with ``bgr``, as
    pdfium renders and OpenCV decodes) as a baseline 4:2:0 colour JPEG.

    Large pictures are encoded in strips, the calling thread taking the first: a strip
    still waiting for a helper when the caller is done is encoded by the caller, so a
    busy process (every core already at work) is never slower than encoding whole."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    height, width = pixels.shape[:2]
    strip_height = math.ceil(math.ceil(height / MCU) / STRIPS) * MCU
    restart_interval = math.ceil(width / MCU) * (strip_height // MCU)
    if height * width < PARALLEL_MIN_PIXELS or strip_height >= height or restart_interval > MAX_RESTART_INTERVAL:
        return _encode(pixels, params, bgr)
    strips = [pixels[top : top + strip_height] for top in range(0, height, strip_height)]
    pending = [_helpers.submit(_encode, strip, params, bgr) for strip in strips[1:]]
    parts = [_encode(strips[0], params, bgr)]
    for future, strip in zip(pending, strips[1:]):
        parts.append(_encode(strip, params, bgr) if future.cancel() else future.result())
    return join_strips(parts, height, restart_interval)


def _encode(pixels: np.ndarray, params: list[int], is_bgr: bool = False) -> bytes:
    """One JPEG file; OpenCV's encoder takes BGR, so other channels are converted first."""
    if pixels.ndim == 2:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    elif pixels.shape[2] == 4:  # alpha is dropped, as Pillow's convert("RGB") does
        bgr = cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR if is_bgr else cv2.COLOR_RGBA2BGR)
    else:
        bgr = pixels if is_bgr else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, params)
    if not ok:
        raise ValueError(f"JPEG encoding failed for a picture of shape {pixels.shape}")
    return encoded.tobytes()


def join_strips(parts: list[bytes], height: int, restart_interval: int) -> bytes:
    """One JPEG from the JPEGs of consecutive strips, all but the last ``restart_interval``
    MCUs each (same width, tables and settings, as ``encode_jpeg`` makes them)."""
    header, _ = _split(parts[0])
    joined = bytearray(header[:2])  # SOI
    position = 2
    while position < len(header):
        marker = header[position + 1]
        end = position + 2 + struct.unpack_from(">H", header, position + 2)[0]
        segment = bytearray(header[position:end])
        if marker == _SOF0:  # the height: 2 bytes after the length and the precision
            struct.pack_into(">H", segment, 5, height)
        elif marker == _SOS:
            joined += struct.pack(">BBHH", 0xFF, _DRI, 4, restart_interval)
        joined += segment
        position = end
    for index, part in enumerate(parts):
        if index:
            joined += bytes((0xFF, _RST0 + (index - 1) % 8))
        joined += _split(part)[1]
    joined += bytes((0xFF, _EOI))
    return bytes(joined)


def _split(jpeg: bytes) -> tuple[bytes, bytes]:
    """(header up to and including the SOS segment, entropy-coded data before EOI)."""
    if jpeg[:2] != bytes((0xFF, _SOI)) or jpeg[-2:] != bytes((0xFF, _EOI)):
        raise ValueError("not a whole JPEG file")
    position = 2
    while True:
        if jpeg[position] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {position}")
        marker = jpeg[position + 1]
        position += 2 + struct.unpack_from(">H", jpeg, position + 2)[0]
        if marker == _DRI:
            raise ValueError("the strip already has a restart interval")
        if marker == _SOS:
            return jpeg[:position], jpeg[position:-2]
