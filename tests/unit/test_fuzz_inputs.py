"""The fuzz run's inputs (bench/fuzz): made again the same from a seed, every family and
operation present, and mutators that do what their names say."""

from __future__ import annotations

import io
import json
import random
import struct
import subprocess
import sys
import zlib
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from bench.fuzz import mutations
from bench.fuzz.inputs import plan
from bench.fuzz.probes import Probe
from gateway.app import create_app


@pytest.fixture(scope="module")
def spec() -> dict:
    return create_app().openapi()


def test_a_seed_makes_the_same_inputs_and_another_seed_others(spec):
    first = [(p.kind, p.path, p.body) for p in plan(spec, 120, seed=3)]
    assert first == [(p.kind, p.path, p.body) for p in plan(spec, 120, seed=3)]
    assert first != [(p.kind, p.path, p.body) for p in plan(spec, 120, seed=4)]


def test_a_plan_has_every_family_and_operation(spec):
    probes = list(plan(spec, 400, seed=1))
    assert len(probes) == 400 and [p.index for p in probes] == list(range(400))
    families = Counter(p.kind.split()[0] for p in probes)
    assert set(families) == {"openapi", "protocol", "request", "pdf", "image"}
    assert families["openapi"] >= 90 and families["pdf"] + families["image"] >= 180
    generated = {(p.method, p.path.split("?")[0]) for p in probes if p.kind.startswith("openapi")}
    for path, operations in spec["paths"].items():
        template = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)))  # /jobs/{job_id}
        for method in map(str.upper, operations):
            assert any(m == method and template.fullmatch(sent) for m, sent in generated), (method, path)


def test_a_probe_survives_its_reproducer_file(tmp_path):
    probe = Probe("pdf bit flips", "POST", "/layout-parsing", {"Content-Type": "application/json"}, b"{\x00}", 7)
    probe.save(tmp_path / "7.json", {"outcome": "x"})
    assert Probe.from_json(json.loads((tmp_path / "7.json").read_text())) == probe
    assert (tmp_path / "7.body").read_bytes() == b"{\x00}"
    assert "--data-binary @7.body" in (tmp_path / "7.sh").read_text()


def test_png_size_is_declared_with_a_valid_crc():
    png = mutations.png_with_size(mutations.image_seeds()["small.png"], 2**31 - 1, 1)
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (2**31 - 1, 1)
    assert struct.unpack(">I", png[29:33])[0] == zlib.crc32(png[12:29]) & 0xFFFFFFFF


def test_jpeg_and_tiff_sizes_are_what_pillow_reads():
    jpeg = mutations.jpeg_with_size(mutations.image_seeds()["small.jpeg"], 65535, 3)
    assert Image.open(io.BytesIO(jpeg)).size == (65535, 3)
    tiff = mutations.tiff_with_size(mutations.image_seeds()["small-2p.tiff"], 5, 7, frame=1)
    image = Image.open(io.BytesIO(tiff))
    first = image.size
    image.seek(1)
    assert image.size == (5, 7) and first != (5, 7)


def test_pdf_mutators_splice_objects_and_repeat_the_xref():
    pdf = mutations.pdf_seeds()["sample-1p"]
    rng = random.Random(0)
    spliced = [mutations.splice_objects(pdf, rng) for _ in range(20)]
    assert all(s != pdf for s in spliced)
    assert any(len(mutations.PDF_OBJECT.findall(s)) > len(mutations.PDF_OBJECT.findall(pdf)) for s in spliced)
    repeated = [mutations.duplicate_xref(pdf, rng) for _ in range(20)]
    assert all(r.startswith(pdf) and r.count(b"trailer") > pdf.count(b"trailer") for r in repeated)
    assert any(b"/Prev" in r[len(pdf):] for r in repeated)


def test_generic_mutators_change_the_bytes_and_truncation_shortens():
    data = mutations.pdf_seeds()["blank"]
    rng = random.Random(1)
    for name, mutator in mutations.GENERIC.items():
        assert mutator(data, rng) != data, name
    assert all(0 < len(mutations.truncate(data, rng)) < len(data) for _ in range(50))


def test_mutators_take_any_input_however_small():
    """A deleted-bytes mutant of the 429-byte PDF emptied it and stopped a 30,000-input run."""
    rng = random.Random(7)
    table = {**mutations.GENERIC, **mutations.PDF_ONLY, **mutations.IMAGE_ONLY}
    for size in (1, 2, 3, 10, 600):
        for name, mutator in table.items():
            for _ in range(30):
                assert isinstance(mutator(rng.randbytes(size), rng), bytes), name


def test_the_seed_files_are_the_same_bytes_in_every_process():
    """pdfium wrote a time and a random ID into the pageless PDF: a seed made other
    mutants in each run, and two runs of one seed differed."""
    code = ("import hashlib; from bench.fuzz.mutations import pdf_seeds, image_seeds; "
            "print(hashlib.sha1(b''.join([*pdf_seeds().values(), *image_seeds().values()])).hexdigest())")
    root = Path(__file__).resolve().parents[2]
    digests = {subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                              check=True, timeout=120).stdout for _ in range(2)}
    assert len(digests) == 1
