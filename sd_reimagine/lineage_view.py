"""What the lineage view shows, host-neutral: one root's subtree a page at a time, as HTML with tiny thumbnails.

Thumbnails are made only for the nodes of the page shown (decoding just those files), kept as small JPEG files in
the folder's `.reimagine-lineage-thumbs/` (named by the image's own hash, so they never go stale) and as data URLs
in memory; a folder that cannot be written to keeps them in memory only. A click on a node card writes its hash into
the view's node box (`<prefix>_lineage_node`) and fires its input event: the host loads that file as reference 1.

Everything shown came from files: every text and attribute in the HTML is escaped, and a thumbnail path is made
only from a hash of the 64-hex format (the tree checks it too; this is the second lock on the same door).
"""

from __future__ import annotations

import base64
import html
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .images import MAX_BYTES
from .lineage_node import SHORT, is_full_hash
from .lineage_tree import LineageTree, Node

THUMBS_DIR = ".reimagine-lineage-thumbs"
THUMB_SIZE = 96
PAGE_SIZE = 40
MEMORY_THUMBS = 2000  # data URLs kept in memory (~4 KB each)
PROMPT_CHARS = 90
# One delegated handler per rendered page: the clicked card's hash goes into the node box, whose input event the
# host listens to (the WebUI's own idiom for extra-network cards; works in gradio 3.41 and later).
CLICK_JS = (
    "const c=event.target.closest('[data-reimagine-node]');if(!c)return;"
    "const r=(window.gradioApp?gradioApp():document);"
    "const b=r.querySelector('#{prefix}_lineage_node textarea, #{prefix}_lineage_node input');if(!b)return;"
    "b.value=c.dataset.reimagineNode;b.dispatchEvent(new Event('input',{{bubbles:true}}));"
)


@dataclass(frozen=True)
class Page:
    """One page of a root's subtree."""

    root: str
    number: int  # from 1
    count: int  # pages in this subtree
    rows: list[tuple[Node, int]]
    total: int  # nodes in this subtree, the root included
    marks: Mapping[str, str] = field(default_factory=dict)  # why a node of the folder is a root (a cycle)


def root_label(tree: LineageTree, root: str) -> str:
    """The dropdown label of a root: its hash first (parsed back by `root_of_label`), then its direct variations."""
    count = len(tree.children.get(root, ()))
    mark = f" · {tree.marks[root]}" if root in tree.marks else ""
    return f"{tree.nodes[root].short} · {count} variation{'' if count == 1 else 's'}{mark}"


def root_of_label(label: str | None) -> str:
    return (label or "").split(" ")[0].strip().lower()


def root_by_label(tree: LineageTree, label: str | None) -> str | None:
    """The root a dropdown label names (by its short hash), else the first root; None when there is none."""
    short = root_of_label(label)
    return next((key for key in tree.roots if key[:SHORT] == short), tree.roots[0] if tree.roots else None)


def page_of(tree: LineageTree, root: str, number: int, size: int = PAGE_SIZE) -> Page:
    """Page `number` (clamped to the pages there are) of the subtree under `root`."""
    rows = tree.subtree(root)
    count = max(1, -(-len(rows) // size))
    number = min(max(int(number or 1), 1), count)
    return Page(root, number, count, rows[(number - 1) * size : number * size], len(rows), tree.marks)


class Thumbnails:
    """Lazily made data-URL thumbnails: memory first, then the folder's thumbnail cache, then the file itself."""

    def __init__(self, size: int = THUMB_SIZE):
        self.size = size
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, str] = OrderedDict()
        self.made = 0  # decoded from the image file (for the timings and tests)

    def url(self, node: Node) -> str | None:
        """The node's thumbnail as a data URL; None for a missing reference or an unreadable file."""
        if node.path is None:
            return None
        with self._lock:  # UI events run in threads
            return self._url(node)

    def _url(self, node: Node) -> str | None:
        if node.key in self._memory:
            self._memory.move_to_end(node.key)
            return self._memory[node.key]
        data = self._cached_or_made(node)
        if data is None:
            return None
        url = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        self._memory[node.key] = url
        if len(self._memory) > MEMORY_THUMBS:
            self._memory.popitem(last=False)
        return url

    def _cached_or_made(self, node: Node) -> bytes | None:
        if not is_full_hash(node.key):  # the name of a file to read and write: never from an unchecked value
            return None
        cache = Path(node.path).parent / THUMBS_DIR / f"{node.key[:16]}-{self.size}.jpg"
        try:
            return cache.read_bytes()
        except OSError:
            pass
        try:
            if os.stat(node.path).st_size > MAX_BYTES:  # the input-size limit, before anything is read
                return None
            with Image.open(node.path) as image:
                image.draft("RGB", (self.size, self.size))
                thumb = image.convert("RGB")
                thumb.thumbnail((self.size, self.size))
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=80)
        self.made += 1
        try:
            cache.parent.mkdir(exist_ok=True)
            cache.write_bytes(buffer.getvalue())
        except OSError:
            pass  # a read-only folder: memory only
        return buffer.getvalue()


def render_page(page: Page, thumbnails: Thumbnails, prefix: str) -> str:
    """The page as HTML: one card per node, indented by depth, with its thumbnail and lineage facts."""
    cards = "".join(_card(node, depth, thumbnails, page.marks.get(node.key)) for node, depth in page.rows)
    handler = html.escape(CLICK_JS.format(prefix=prefix), quote=True)
    return f'<div class="reimagine-lineage" id="{prefix}_lineage_tree" onclick="{handler}">{cards}</div>'


def _card(node: Node, depth: int, thumbnails: Thumbnails, mark: str | None = None) -> str:
    url = thumbnails.url(node)
    indent = f"margin-left:{min(depth, 12) * 28}px"
    style = f"display:flex;gap:8px;align-items:flex-start;{indent};padding:3px 0"
    box = f"width:{thumbnails.size}px;height:{thumbnails.size}px;flex:none"
    if node.path is None:
        picture = (
            f'<div style="{box};border:1px dashed #888;font-size:11px;display:flex;align-items:center">original</div>'
        )
        facts = f"<b>reference {html.escape(node.short)}</b><br>not in this folder (an uploaded original)"
        return f'<div class="reimagine-lineage-root" style="{style}">{picture}<div>{facts}</div></div>'
    picture = f'<img src="{url}" alt="" style="{box};object-fit:contain">' if url else f'<div style="{box}">?</div>'
    refs = ", ".join(f"{html.escape(h)}@{w:g}" for h, w in node.references)
    prompt = node.prompt if len(node.prompt) <= PROMPT_CHARS else node.prompt[: PROMPT_CHARS - 1] + "…"
    facts = (
        f"<b>{html.escape(node.label)}</b> · gen {node.generation} · noise {html.escape(node.noise_level or '?')}"
        f" · seed {html.escape(node.seed or '?')}<br>refs {refs}<br><i>{html.escape(prompt or '(no prompt)')}</i>"
    )
    if mark:
        facts += f'<br><b class="reimagine-lineage-mark">shown as a root: {html.escape(mark)}</b>'
    title = html.escape(f"{node.short}: click to make it reference 1", quote=True)
    key = html.escape(node.key, quote=True)
    return (
        f'<div class="reimagine-lineage-node" data-reimagine-node="{key}" title="{title}" '
        f'style="{style};cursor:pointer">{picture}<div>{facts}</div></div>'
    )


def summary(tree: LineageTree, page: Page | None) -> str:
    """One line on the folder and the page shown."""
    stats = tree.stats
    originals = len(tree.roots) - len(tree.marks)
    text = (
        f"{stats.nodes} Reimagine images, {originals} original references · {stats.ignored} other PNGs ignored"
        f" · {stats.skipped} unreadable skipped · scanned in {stats.seconds:.2f} s ({stats.cached} from cache)"
    )
    if tree.marks:
        text += f" · {len(tree.marks)} shown as roots (their own parent or in a cycle)"
    if page is not None:
        text += f" · page {page.number} of {page.count} ({page.total} images under this root)"
    return text


def node_details(node: Node) -> str:
    """What a picked node is, for the line under the tree."""
    refs = ", ".join(f"{h}@{w:g}" for h, w in node.references)
    return f"Reference 1 is now {node.label} (generation {node.generation}, seed {node.seed}, references {refs})"
