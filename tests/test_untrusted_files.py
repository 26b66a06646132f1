"""Files made by someone else: crafted PNG text chunks, cache files and links in a scanned folder, oversized inputs.

Each test makes its crafted files itself and checks that they name no file outside the folder, put no markup into
the page, loop nothing and crash nothing, and that every read is bounded per file before it happens.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest

from sd_reimagine.errors import ReimagineError
from sd_reimagine.images import MAX_BYTES, image_digest, open_image, png_bytes
from sd_reimagine.infotext import Lineage
from sd_reimagine.lineage_tree import CACHE_FILE, HASH_CHUNK, LineageScanner
from sd_reimagine.lineage_view import Thumbnails, page_of, render_page, summary
from sd_reimagine.png_text import MAX_TEXT, PngTextError, read_png_text
from sd_reimagine.testing.lineage_folder import noise_picture, reimagine_infotext, write_node

ORIGINAL = "0123456789"
SCRIPT = '"><img src=x onerror=alert(1)>'


def crafted(path: Path, seed: int, references: list[tuple[str, float]], chunks: dict[str, str], prompt: str = "a cat"):
    """A Reimagine output whose text chunks say what the test wants (`chunks` may replace its own hash)."""
    picture = noise_picture(seed)
    infotext = reimagine_infotext(Lineage(tuple(references), (), 2), seed, 100, prompt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(picture, infotext, chunks))
    return image_digest(picture)


def whole_page(tree, root: str, thumbnails: Thumbnails | None = None) -> str:
    return render_page(page_of(tree, root, 1), thumbnails or Thumbnails(), "reimagine")


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


# --- hashes from text chunks -----------------------------------------------------------------------------------


def test_a_hash_chunk_that_is_a_path_reads_and_writes_nothing_outside_the_folder(tmp_path):
    secret = tmp_path / "secret-96.jpg"
    secret.write_bytes(b"SECRET BYTES OUTSIDE THE FOLDER")
    folder = tmp_path / "out"
    true_hash = crafted(folder / "00000-1.png", 1, [(ORIGINAL, 1.0)], {HASH_CHUNK: "../../secret"})
    outside_before = files_under(tmp_path) - files_under(folder)
    tree = LineageScanner(disk_cache=False).tree(folder)
    page = whole_page(tree, ORIGINAL)
    assert base64.b64encode(secret.read_bytes()).decode()[:20] not in page
    assert list(tree.children[ORIGINAL]) == [true_hash]  # the chunk was no hash: the pixels gave the true one
    assert files_under(tmp_path) - files_under(folder) == outside_before  # no thumbnail written outside


def test_a_hash_chunk_with_markup_never_reaches_the_page(tmp_path):
    folder = tmp_path / "out"
    crafted(folder / "00000-1.png", 1, [(ORIGINAL, 1.0), (SCRIPT, 1.0)], {HASH_CHUNK: SCRIPT}, prompt=SCRIPT)
    tree = LineageScanner(disk_cache=False).tree(folder)
    page = whole_page(tree, ORIGINAL)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the prompt is shown, as text
    assert set(tree.roots) == {ORIGINAL}  # the markup "reference" named no root


# --- self-parents, cycles and links ----------------------------------------------------------------------------


def test_an_image_that_is_its_own_parent_is_shown_as_a_marked_root(tmp_path):
    picture = noise_picture(5)
    own = image_digest(picture)[:10]
    infotext = reimagine_infotext(Lineage(((own, 1.0),), (own,), 2), 5, 100)
    (tmp_path / "self.png").write_bytes(png_bytes(picture, infotext, {HASH_CHUNK: image_digest(picture)}))
    tree = LineageScanner(disk_cache=False).tree(tmp_path)
    assert tree.roots == [image_digest(picture)] and tree.marks == {image_digest(picture): "its own parent"}
    page = whole_page(tree, tree.roots[0])
    assert "self.png" in page and "shown as a root: its own parent" in page
    assert "1 shown as roots" in summary(tree, None)


def test_parents_in_a_cycle_are_shown_once_under_one_marked_root(tmp_path):
    a_picture, b_picture = noise_picture(6), noise_picture(7)
    a, b = image_digest(a_picture), image_digest(b_picture)
    for name, picture, parent, seconds in (("a.png", a_picture, b, 1), ("b.png", b_picture, a, 2)):
        infotext = reimagine_infotext(Lineage(((parent[:10], 1.0),), (parent[:10],), 2), 1, 100)
        (tmp_path / name).write_bytes(png_bytes(picture, infotext, {HASH_CHUNK: image_digest(picture)}))
        os.utime(tmp_path / name, (1_700_000_000 + seconds, 1_700_000_000 + seconds))
    tree = LineageScanner(disk_cache=False).tree(tmp_path)
    assert tree.roots == [a] and tree.marks == {a: "in a cycle of parents"}  # the older one leads
    assert [(node.key, depth) for node, depth in tree.subtree(a)] == [(a, 0), (b, 1)]  # each once, no loop
    assert "shown as a root: in a cycle of parents" in whole_page(tree, a)


def test_a_link_to_itself_or_out_of_the_folder_is_skipped_not_followed(tmp_path):
    folder = tmp_path / "out"
    write_node(folder / "00000-1.png", noise_picture(1), [(ORIGINAL, 1.0, None)], seed=1)
    outside = write_node(tmp_path / "private" / "x.png", noise_picture(2), [(ORIGINAL, 1.0, None)], seed=2)
    os.symlink("self.png", folder / "self.png")  # a link to itself: stat fails with ELOOP
    os.symlink(outside.path, folder / "elsewhere.png")
    tree = LineageScanner().tree(folder)
    assert (tree.stats.nodes, tree.stats.skipped) == (1, 2)
    assert outside.digest not in tree.nodes
    assert LineageScanner().tree(folder).stats.skipped == 2  # and again from the cache file


# --- bounds per file -------------------------------------------------------------------------------------------


def png_with_chunks(chunks: list[bytes]) -> bytes:
    """A tiny PNG with the given raw text chunks (type + data) before its pixels."""
    plain = png_bytes(noise_picture(1, 8))
    idat = plain.index(b"IDAT") - 4
    raw = b"".join(struct.pack(">I", len(c) - 4) + c + struct.pack(">I", zlib.crc32(c)) for c in chunks)
    return plain[:idat] + raw + plain[idat:]


def ztxt(keyword: str, size: int) -> bytes:
    return b"zTXt" + keyword.encode() + b"\0\0" + zlib.compress(b"a" * size, 9)


def test_many_compressed_text_chunks_stop_at_the_files_text_budget(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_chunks([ztxt(f"k{i}", MAX_TEXT - 1) for i in range(3)]))  # each below the chunk cap
    assert path.stat().st_size < 100_000
    with pytest.raises(PngTextError, match="in one file"):
        read_png_text(path)


def test_many_plain_text_chunks_stop_at_the_files_text_budget(tmp_path):
    path = tmp_path / "long.png"
    chunks = [b"tEXt" + f"k{i}".encode() + b"\0" + b"a" * (MAX_TEXT // 2) for i in range(3)]
    path.write_bytes(png_with_chunks(chunks))
    with pytest.raises(PngTextError, match="in one file"):
        read_png_text(path)
    tree = LineageScanner(disk_cache=False).tree(tmp_path)
    assert tree.stats.skipped == 1


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as file:
        file.truncate(size)
    return path


def test_an_input_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    big = sparse_file(tmp_path / "big.png", MAX_BYTES + 40 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(ReimagineError, match=f"is {big.stat().st_size} bytes; at most {MAX_BYTES}"):
            open_image(big, name="big.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak


# --- the cache file --------------------------------------------------------------------------------------------


def good_record(path: Path, key: str) -> list:
    stat = path.stat()
    node = {"key": key, "references": [[ORIGINAL, 1.0]], "generation": 1, "prompt": "p", "mtime_ns": 0}
    return [stat.st_size, stat.st_mtime_ns, "node", node]


BAD_CACHES = {
    "a list": lambda record: [],
    "an infinite number": lambda record: 1e999,
    "numbers for names": lambda record: {"version": 1, "files": [1, 2, 3]},
    "a size that is no integer": lambda record: {"version": 1, "files": {"00000-1.png": [1e999, *record[1:]]}},
    "a key with markup": lambda record: {"version": 1, "files": {"00000-1.png": [*record[:3], {"key": SCRIPT}]}},
    "a key that is a path": lambda record: {
        "version": 1,
        "files": {"00000-1.png": [*record[:3], {**record[3], "key": "../../x"}]},
    },
    "a prompt that is no text": lambda record: {
        "version": 1,
        "files": {"00000-1.png": [*record[:3], {**record[3], "prompt": {"a": 1}}]},
    },
}


@pytest.mark.parametrize("shape", list(BAD_CACHES))
def test_a_cache_file_of_another_shape_is_ignored_and_rebuilt_with_one_log_line(tmp_path, caplog, shape):
    written = write_node(tmp_path / "00000-1.png", noise_picture(1), [(ORIGINAL, 1.0, None)], seed=1)
    text = json.dumps(BAD_CACHES[shape](good_record(written.path, written.digest)))
    (tmp_path / CACHE_FILE).write_text(text.replace("Infinity", "1e999"))
    with caplog.at_level(logging.WARNING, logger="sd_reimagine"):
        tree = LineageScanner().tree(tmp_path)
        render_page(page_of(tree, ORIGINAL, 1), Thumbnails(), "p")
    assert tree.stats.read == 1 and set(tree.nodes) == {ORIGINAL, written.digest}
    assert [r.getMessage() for r in caplog.records if "ignored and rebuilt" in r.getMessage()] != []
    assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
    assert json.loads((tmp_path / CACHE_FILE).read_text())["files"]["00000-1.png"][3]["key"] == written.digest


def test_a_cache_file_over_the_size_limit_is_not_read(tmp_path, caplog):
    from sd_reimagine.lineage_cache import MAX_CACHE_BYTES

    write_node(tmp_path / "00000-1.png", noise_picture(1), [(ORIGINAL, 1.0, None)], seed=1)
    sparse_file(tmp_path / CACHE_FILE, MAX_CACHE_BYTES + 1)
    with caplog.at_level(logging.WARNING, logger="sd_reimagine"):
        tree = LineageScanner().tree(tmp_path)
    assert tree.stats.read == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"Reimagine lineage: the cache file {tmp_path / CACHE_FILE} is ignored and rebuilt "
        f"(unexpected {MAX_CACHE_BYTES + 1} bytes, more than {MAX_CACHE_BYTES})"
    ]
