"""The lineage view's Gradio controls: one builder for the standalone app and the WebUI tab (gradio 3.41 and later).

Nothing is scanned until Refresh; each event rescans (a warm rescan only stats the files) and renders one page of
one root's subtree, so a folder of thousands of images costs the page's few thumbnails, never all of them. The host
says where the folder is, whether the user may change it (and to which folders), and how a picked file becomes
reference 1. A folder outside the allowed ones is refused with the same message whether it exists or not.
"""

# No `from __future__ import annotations`: gradio reads the gr.SelectData annotation of the root handler.

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ParamError, ReimagineError
from .lineage_tree import LineageScanner, LineageTree
from .lineage_view import Thumbnails, node_details, page_of, render_page, root_by_label, root_label, summary


@dataclass
class LineageHost:
    """What differs between hosts: the folder rule and how a picked file reaches reference slot 1."""

    prefix: str  # element ids: <prefix>_lineage_*
    default_folder: Callable[[], str]
    folder_editable: bool
    to_reference: Callable[[str], Sequence[Any]]  # file path -> values of `outputs`
    outputs: Sequence[Any]  # the components that make a file reference 1
    scanner: LineageScanner = field(default_factory=LineageScanner)
    thumbnails: Thumbnails = field(default_factory=Thumbnails)
    allowed: Sequence[Path] | None = None  # the folders (and their subfolders) a client may name; None: any

    def folder(self, value: str) -> str:
        """The folder to scan: the user's when the host lets them choose (inside `allowed`), else the default."""
        if not (self.folder_editable and str(value or "").strip()):
            return self.default_folder()
        return value if self.allowed is None else str(inside_allowed(value, self.allowed))


def inside_allowed(value: str, allowed: Sequence[Path]) -> Path:
    """`value` resolved (links followed, relative to the first allowed folder) when it lies in an allowed folder;
    refused otherwise, with a message that says nothing about whether the path exists."""
    roots = [Path(root).resolve() for root in allowed]
    path = Path(str(value).strip()).expanduser()
    resolved = (path if path.is_absolute() else roots[0] / path).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        shown = ", ".join(str(root) for root in roots)
        raise ParamError("folder", str(value), f"a folder inside the folders this app was started with: {shown}")
    return resolved


def lineage_panel(host: LineageHost) -> None:
    """Folder, Refresh, root picker, page buttons, the tree page and the node box, wired."""
    import gradio as gr

    p = host.prefix
    if not host.folder_editable:
        label = "Folder (the output folder; paths are hidden on this server)"
    elif host.allowed is not None:
        label = "Folder (inside: " + ", ".join(str(Path(root).resolve()) for root in host.allowed) + ")"
    else:
        label = "Folder"
    with gr.Row():
        folder = gr.Textbox(
            value=host.default_folder(),
            label=label,
            interactive=host.folder_editable,
            elem_id=f"{p}_lineage_folder",
        )
        recursive = gr.Checkbox(value=True, label="Include subfolders", elem_id=f"{p}_lineage_recursive")
        refresh = gr.Button("Refresh", elem_id=f"{p}_lineage_refresh")
    with gr.Row():
        root = gr.Dropdown(choices=[], value=None, label="Original reference (root)", elem_id=f"{p}_lineage_root")
        previous = gr.Button("Previous page", elem_id=f"{p}_lineage_previous")
        following = gr.Button("Next page", elem_id=f"{p}_lineage_next")
    status = gr.Textbox(label="Folder", interactive=False, elem_id=f"{p}_lineage_summary")
    view = gr.HTML(elem_id=f"{p}_lineage_view")
    node = gr.Textbox(label="Node (click a card above, or paste its hash)", elem_id=f"{p}_lineage_node")
    picked = gr.Textbox(label="Picked", interactive=False, elem_id=f"{p}_lineage_picked")
    page = gr.State(1)

    show = show_handler(host)
    shown = [root, page, status, view]

    def on_root(folder_value, subfolders, evt: gr.SelectData):
        return show(folder_value, subfolders, evt.value, 1)

    refresh.click(
        lambda f, r, label, n: show(f, r, label, n),
        [folder, recursive, root, page],
        shown,
        api_name=f"{p}_lineage_refresh",
    )
    root.select(on_root, [folder, recursive], shown)
    previous.click(lambda f, r, label, n: show(f, r, label, n - 1), [folder, recursive, root, page], shown)
    following.click(lambda f, r, label, n: show(f, r, label, n + 1), [folder, recursive, root, page], shown)
    node.change(pick_handler(host), [folder, recursive, node], [*host.outputs, picked], api_name=f"{p}_lineage_pick")


def show_handler(host: LineageHost):
    """(folder, subfolders, root label, page) -> root dropdown, page number, summary, page HTML."""
    import gradio as gr

    def show(folder_value: str, subfolders: bool, label: str | None, number: int):
        tree = _scan(host, folder_value, subfolders)
        root = root_by_label(tree, label)
        if root is None:
            return gr.update(choices=[], value=None), 1, summary(tree, None), "<p>No Reimagine images here yet.</p>"
        page = page_of(tree, root, number)
        labels = [root_label(tree, key) for key in tree.roots]
        html = render_page(page, host.thumbnails, host.prefix)
        return gr.update(choices=labels, value=root_label(tree, root)), page.number, summary(tree, page), html

    return show


def pick_handler(host: LineageHost):
    """(folder, subfolders, node hash) -> reference 1 (the file, carrying its infotext), and a line on what it is."""
    import gradio as gr

    def pick(folder_value: str, subfolders: bool, text: str):
        keep = [gr.update() for _ in host.outputs]
        if not str(text or "").strip():
            return *keep, ""
        try:
            node = _scan(host, folder_value, subfolders).find(text)
            if node.path is None:
                return *keep, f"{node.label} is not in this folder: only its variations can be picked"
            values = host.to_reference(node.path)
        except ReimagineError as exc:
            return *keep, str(exc)
        return *values, node_details(node)

    return pick


def _scan(host: LineageHost, folder_value: str, subfolders: bool) -> LineageTree:
    import gradio as gr

    try:
        return host.scanner.tree(host.folder(folder_value), recursive=bool(subfolders))
    except ReimagineError as exc:
        raise gr.Error(str(exc)) from None
