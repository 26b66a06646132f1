"""A folder at a time and the lineage tree in a real Forge: the batch API on Forge's runner (outputs tagged with
their source and own hash, a corrupt file reported, a rerun skips what is done), and a variation of a variation
linked by the tree from text chunks alone."""

from __future__ import annotations

import base64
from pathlib import Path

from sd_reimagine.folder_batch import SOURCE_KEY
from sd_reimagine.images import open_image, png_bytes
from sd_reimagine.lineage_tree import HASH_CHUNK, LineageScanner
from sd_reimagine.png_text import read_png_text

from ..conftest import noise_image
from .conftest import UNCLIP
from .test_forge_api import SMALL, variations

JOB = {"model": UNCLIP, "prompt": "a cat", "seed": 5, "sampler": "Default", **SMALL}


def test_the_batch_api_tags_outputs_reports_a_corrupt_file_and_resumes(forge):
    allowed = forge.data_dir / "batch"
    source = allowed / "in"
    source.mkdir()
    for seed in range(2):
        noise_image(seed).save(source / f"{seed}.png")
    (source / "bad.png").write_bytes(png_bytes(noise_image(3))[:60])
    response = forge.post("/reimagine/v1/batch", json={**JOB, "input_dir": "in", "output_dir": "out"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["done"] == ["0.png", "1.png"] and [f["name"] for f in result["failed"]] == ["bad.png"]
    outputs = sorted((allowed / "out").glob("*.png"))
    assert len(outputs) == 2
    for path in outputs:
        chunks = read_png_text(path)
        assert SOURCE_KEY in chunks and chunks[HASH_CHUNK] == open_image(path).digest
    again = forge.post("/reimagine/v1/batch", json={**JOB, "input_dir": "in", "output_dir": "out"}).json()
    assert again["skipped"] == ["0.png", "1.png"] and again["outputs"] == []
    assert sorted((allowed / "out").glob("*.png")) == outputs


def test_a_variation_of_a_variation_is_linked_by_the_tree(forge, tmp_path):
    first = variations(forge, seed=11)
    assert first.status_code == 200, first.text
    parent = first.json()["images"][0]
    second = variations(forge, seed=12, images=[{"image": parent, "weight": 1.0}])
    assert second.status_code == 200, second.text
    paths = []
    for name, b64 in (("a.png", parent), ("b.png", second.json()["images"][0])):
        path = Path(tmp_path / name)
        path.write_bytes(base64.b64decode(b64))
        paths.append(path)
    tree = LineageScanner(disk_cache=False).tree(tmp_path)
    a_hash, b_hash = (read_png_text(path)[HASH_CHUNK] for path in paths)
    assert tree.children[a_hash] == [b_hash] and len(tree.roots) == 1
    assert tree.stats.decoded == 0
