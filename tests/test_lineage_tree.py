"""The lineage tree: PNG text chunks read without decoding, nodes and links, roots, skipped files, the caches."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sd_reimagine.errors import ParamError
from sd_reimagine.images import open_image, png_bytes
from sd_reimagine.infotext import Lineage
from sd_reimagine.lineage_tree import CACHE_FILE, HASH_CHUNK, LineageScanner, own_hash_chunks
from sd_reimagine.lineage_view import Thumbnails, page_of, render_page, root_label, root_of_label
from sd_reimagine.png_text import PngTextError, read_png_text, read_png_text_stream
from sd_reimagine.standalone.output import save_png
from sd_reimagine.testing.lineage_folder import noise_picture, reimagine_infotext, write_node

ORIGINAL = "0123456789"  # an uploaded original: not in the folder
OTHER = "abcdefabcd"


def png_with(texts: dict[str, str], compressed: bool = False) -> bytes:
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value, zip=compressed)
    buffer = io.BytesIO()
    noise_picture(1, 16).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_chunk_reader_reads_text_latin1_utf8_and_compressed():
    data = png_with({"parameters": "a cat, Seed: 1", "note": "größe ü ✓"})
    assert read_png_text_stream(io.BytesIO(data)) == {"parameters": "a cat, Seed: 1", "note": "größe ü ✓"}
    assert read_png_text_stream(io.BytesIO(png_with({"parameters": "x" * 5000}, compressed=True)))["parameters"] == (
        "x" * 5000
    )


def test_chunk_reader_stops_at_the_first_idat(tmp_path):
    data = png_with({"parameters": "before"})
    idat = data.index(b"IDAT") - 4
    after = struct.pack(">I", 5) + b"tEXt" + b"late\0x" + struct.pack(">I", zlib.crc32(b"tEXtlate\0x"))
    cut = data[:idat] + data[idat : idat + 20]  # pixel data cut short: the text is still read
    assert read_png_text_stream(io.BytesIO(cut)) == {"parameters": "before"}
    assert "late" not in read_png_text_stream(io.BytesIO(data[:-12] + after + data[-12:]))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"GIF89a....", "not a PNG"),
        (png_with({"parameters": "x"})[:30], "truncated"),
    ],
)
def test_chunk_reader_refuses_broken_files(data, message):
    with pytest.raises(PngTextError, match=message):
        read_png_text_stream(io.BytesIO(data))


def test_chunk_reader_refuses_a_bad_crc(tmp_path):
    data = bytearray(png_with({"parameters": "hello"}))
    data[data.index(b"hello")] ^= 1
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    with pytest.raises(PngTextError, match="CRC"):
        read_png_text(path)


def test_saved_outputs_carry_their_own_pixel_hash(tmp_path):
    picture = noise_picture(3)
    infotext = reimagine_infotext(Lineage(((ORIGINAL, 1.0),)), seed=5, noise_level=100)
    path = save_png(picture, infotext, tmp_path, seed=5)
    assert read_png_text(path)[HASH_CHUNK] == open_image(path).digest  # what a child will record, prefix-wise
    plain = save_png(picture, "a photo\nSteps: 20, Seed: 5, Size: 32x32", tmp_path, seed=5)
    assert HASH_CHUNK not in read_png_text(plain)  # only Reimagine outputs
    assert own_hash_chunks(picture, None) == {}


@pytest.fixture
def family(tmp_path):
    """original -> a -> (b, c); c + another original -> d (two parents, one missing); plus noise files."""
    folder = tmp_path / "out"
    a = write_node(folder / "00000-1.png", noise_picture(10), [(ORIGINAL, 1.0, None)], seed=1)
    b = write_node(folder / "00001-2.png", noise_picture(11), [(a.digest[:10], 1.0, 1)], seed=2, noise_level=300)
    c = write_node(folder / "sub" / "00002-3.png", noise_picture(12), [(a.digest[:10], 1.0, 1)], seed=3)
    d = write_node(folder / "00003-4.png", noise_picture(13), [(c.digest[:10], 0.7, 2), (OTHER, 0.3, None)], seed=4)
    (folder / "plain.png").write_bytes(png_bytes(noise_picture(14), "just a photo\nSteps: 20, Seed: 1, Size: 8x8"))
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (folder / "notes.txt").write_text("not an image")
    return folder, a, b, c, d


def test_tree_links_parents_roots_and_two_parent_children(family):
    folder, a, b, c, d = family
    tree = LineageScanner(disk_cache=False).tree(folder)
    assert (tree.stats.nodes, tree.stats.ignored, tree.stats.skipped, tree.stats.files) == (4, 1, 1, 6)
    assert set(tree.roots) == {ORIGINAL, OTHER}
    assert tree.children[ORIGINAL] == [a.digest]
    assert tree.children[a.digest] == [b.digest, c.digest]
    assert tree.children[c.digest] == [d.digest] and tree.children[OTHER] == [d.digest]
    node = tree.nodes[d.digest]
    assert node.references == ((c.digest[:10], 0.7), (OTHER, 0.3)) and node.parents == (c.digest[:10],)
    assert (node.generation, node.seed, node.noise_level) == (3, "4", "200")
    assert tree.nodes[b.digest].noise_level == "300" and tree.nodes[b.digest].prompt.startswith("a lighthouse")
    assert [(n.key, depth) for n, depth in tree.subtree(ORIGINAL)] == [
        (ORIGINAL, 0),
        (a.digest, 1),
        (b.digest, 2),
        (c.digest, 2),
        (d.digest, 3),
    ]
    assert tree.nodes[ORIGINAL].path is None and tree.nodes[ORIGINAL].label == f"reference {ORIGINAL}"


def test_a_missing_parent_becomes_a_root(family):
    folder, a, b, c, d = family
    c.path.unlink()  # d's parent is gone: d hangs under c's short hash as a root
    tree = LineageScanner(disk_cache=False).tree(folder)
    assert c.digest[:10] in tree.roots and tree.children[c.digest[:10]] == [d.digest]
    assert d.digest in tree.children[OTHER]


def test_subfolders_only_when_recursive(family):
    folder, a, b, c, d = family
    tree = LineageScanner(disk_cache=False).tree(folder, recursive=False)
    assert c.digest not in tree.nodes and tree.stats.nodes == 3


def test_a_file_without_the_hash_chunk_is_decoded_once(tmp_path):
    old = write_node(tmp_path / "00000-1.png", noise_picture(20), [(ORIGINAL, 1.0, None)], seed=1, with_hash=False)
    child = write_node(tmp_path / "00001-2.png", noise_picture(21), [(old.digest[:10], 1.0, 1)], seed=2)
    scanner = LineageScanner()
    tree = scanner.tree(tmp_path)
    assert tree.stats.decoded == 1 and tree.children[old.digest] == [child.digest]
    assert LineageScanner().tree(tmp_path).stats.decoded == 0  # the disk cache has its hash


def test_cache_hits_when_nothing_changed_and_misses_a_changed_file(family):
    folder, a, b, c, d = family
    scanner = LineageScanner()
    cold = scanner.tree(folder)
    assert (cold.stats.read, cold.stats.cached) == (6, 0) and (folder / CACHE_FILE).is_file()
    warm = scanner.tree(folder)
    assert (warm.stats.read, warm.stats.cached) == (0, 6) and warm.nodes is cold.nodes  # links reused
    reopened = LineageScanner().tree(folder)  # a new process: the folder's cache file
    assert (reopened.stats.read, reopened.stats.cached) == (0, 6)
    assert reopened.children == cold.children and reopened.nodes[d.digest] == cold.nodes[d.digest]

    e = write_node(b.path, noise_picture(30), [(OTHER, 1.0, None)], seed=9)  # b overwritten: another picture
    os.utime(b.path, ns=(os.stat(b.path).st_atime_ns, os.stat(b.path).st_mtime_ns + 1_000_000))
    changed = LineageScanner().tree(folder)
    assert (changed.stats.read, changed.stats.cached) == (1, 5)
    assert b.digest not in changed.nodes and e.digest in changed.children[OTHER]
    assert scanner.tree(folder).stats.read == 1  # the in-memory cache sees the change too


def test_a_broken_cache_file_is_rebuilt(family):
    folder = family[0]
    (folder / CACHE_FILE).write_text("{not json")
    tree = LineageScanner().tree(folder)
    assert tree.stats.read == 6 and json.loads((folder / CACHE_FILE).read_text())["version"] == 1


def test_a_folder_that_is_not_there_is_refused_by_name(tmp_path):
    with pytest.raises(ParamError, match="folder=.*nowhere' is not allowed: an existing folder"):
        LineageScanner().tree(tmp_path / "nowhere")


def test_find_takes_full_and_short_hashes_and_refuses_unknown(family):
    folder, a, *_ = family
    tree = LineageScanner(disk_cache=False).tree(folder)
    assert tree.find(a.digest).path == str(a.path) and tree.find(a.digest[:10].upper()).key == a.digest
    with pytest.raises(ParamError, match="node='ffff' is not allowed"):
        tree.find("ffff")


def test_a_page_shows_only_its_nodes_and_makes_their_thumbnails_lazily(family):
    folder, a, b, c, d = family
    tree = LineageScanner(disk_cache=False).tree(folder)
    thumbnails = Thumbnails()
    first = page_of(tree, ORIGINAL, 1, size=2)
    assert (first.count, first.total, [n.key for n, _ in first.rows]) == (3, 5, [ORIGINAL, a.digest])
    html = render_page(first, thumbnails, "reimagine")
    assert thumbnails.made == 1 and f'data-reimagine-node="{a.digest}"' in html and b.digest not in html
    assert "data:image/jpeg;base64," in html and f"reference {ORIGINAL}" in html
    assert page_of(tree, ORIGINAL, 99, size=2).number == 3  # clamped
    assert len(list((folder / ".reimagine-lineage-thumbs").iterdir())) == 1  # the root has no file, no thumbnail
    assert root_of_label(root_label(tree, ORIGINAL)) == ORIGINAL


def test_thumbnails_come_from_the_file_cache_when_present(family):
    folder, a, *_ = family
    tree = LineageScanner(disk_cache=False).tree(folder)
    page = page_of(tree, ORIGINAL, 1, size=2)
    render_page(page, Thumbnails(), "p")
    again = Thumbnails()
    render_page(page, again, "p")
    assert again.made == 0
    with Image.open(a.path) as image:
        assert image.size == (32, 32)


def test_where_folders_are_hidden_every_scan_uses_the_output_folder(family):
    from sd_reimagine.lineage_ui import LineageHost

    folder = str(family[0])
    hidden = LineageHost("p", lambda: folder, False, lambda path: (path,), [])
    assert hidden.folder("/etc") == folder and hidden.folder("") == folder
    assert LineageHost("p", lambda: folder, True, lambda path: (path,), []).folder("/etc") == "/etc"
