"""The command line: `python -m sd_reimagine COMMAND`, one subcommand per job (see COMMANDS; parser: cli_parser)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ReimagineError
from ..mixing import REFERENCE_WEIGHT
from ..model_size import sized_for_model
from ..schema import LOW_VRAM, REFINER, REIMAGINE, SDXL, SEED
from .cli_parser import EXIT_USAGE, REFINE_OWN, build_parser
from .output import VARIATIONS_FOLDER, job_folder

SAVING_COMMANDS = ("variations", "sdxl", "refine", "serve")


def session_for(args):
    """The job's Session with the command's device, dtype and low-VRAM options; their note goes to stderr."""
    from .session import Session

    memory = LOW_VRAM.values_from_cli(args)
    session = Session(device=args.device, out_dir=args.out, dtype=args.dtype, **memory)
    if session.note:
        print(f"note: {session.note}", file=sys.stderr)
    return session


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_model_loading()
    try:
        check_output_root(args)
        return COMMANDS[args.command](args)
    except ReimagineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def quiet_model_loading() -> None:
    """Hide diffusers' and transformers' loading bars and warnings (--verbose shows them); job progress is ours."""
    import importlib.util

    # make-tiny-models --webui runs in the WebUI's Python, which has no diffusers (A1111 1.10.1)
    if not (importlib.util.find_spec("diffusers") and importlib.util.find_spec("transformers")):
        return
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()


def check_output_root(args) -> None:
    """A --out that cannot be created or written is refused in one line before any model loads (not after a job)."""
    if args.command in SAVING_COMMANDS:
        from ..folder_batch import check_writable_folder

        check_writable_folder(Path(args.out), "--out")


def run_variations(args) -> int:
    from ..images import open_image

    session = session_for(args)
    values = sized_for_model(REIMAGINE, args.model or REIMAGINE["model"].default).values_from_cli(args)
    if args.image_dir is not None:
        from .batch import run_image_dir

        return run_image_dir(session, args.image_dir, job_folder(args.out, VARIATIONS_FOLDER), values)
    weights = [REFERENCE_WEIGHT.coerce(weight) for _, weight in args.references]
    references = [(open_image(Path(path), name=path), w) for (path, _), w in zip(args.references, weights, strict=True)]
    batches = -(-values["n"] // session.max_batch)
    return _run_and_print(
        lambda progress: session.variations(references, values, progress=progress), values["steps"] * batches
    )


def run_sdxl(args) -> int:
    session = session_for(args)
    values = sized_for_model(SDXL, args.base or SDXL["base"].default).values_from_cli(args)
    refiner_given = {"enabled": args.refiner is not None, "refiner": args.refiner or REFINER["refiner"].default}
    refiner_values = {**REFINER.values_from_cli(args), **refiner_given}
    return _run_and_print(
        lambda progress: session.sdxl(values, refiner_values, progress=progress), values["steps"] * values["n"]
    )


def run_refine(args) -> int:
    from ..images import open_image

    for name in REFINE_OWN:  # `--prompt` is the refiner's prompt here, and so on
        setattr(args, name, getattr(args, name.removeprefix("refiner_")))
    session = session_for(args)
    refiner_values = REFINER.values_from_cli(args)
    seed = SEED.coerce(args.seed)
    image = open_image(args.image, name=str(args.image))
    return _run_and_print(
        lambda progress: session.refine(image, refiner_values, seed, progress), refiner_values["refiner_steps"]
    )


def run_serve(args) -> int:
    from .app import serve
    from .app_access import auth_from

    memory = LOW_VRAM.values_from_cli(args)
    auth = auth_from(args.auth)
    serve(
        *(args.host, args.port, args.model, args.out, args.device, args.base, args.refiner, args.dtype, memory),
        auth=auth,
        lineage_dirs=args.lineage_dir,
    )
    return 0


def run_make_tiny_models(args) -> int:
    if args.webui:
        from ..testing.tiny_webui import write_webui_tiny_models

        written = write_webui_tiny_models(args.out_dir, scale=args.scale)
    else:
        from ..testing.tiny_diffusers import write_tiny_models

        written = write_tiny_models(args.out_dir, scale=args.scale)
    for path in written.values():
        print(path)
    return 0


def _run_and_print(job: Callable, total_steps: int) -> int:
    """Run `job(progress)` under a progress bar and print the paths of the images it saved."""
    with _progress_bar(total_steps) as progress:
        _, paths = job(progress)
    for path in paths:
        print(path)
    return 0


class _progress_bar:
    """A tqdm bar on a terminal, nothing otherwise; called as progress(step, total) per denoising step."""

    def __init__(self, total: int):
        self.total = total
        self.bar = None

    def __enter__(self):
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="step", file=sys.stderr)
        return self

    def __call__(self, step: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def run_make_real_size_models(args) -> int:
    import json

    from ..testing.real_size import FILES, make_real_size_models

    unknown = sorted(set(args.kinds) - set(FILES))
    if unknown:
        raise ReimagineError(f"kinds={unknown[0]} is not allowed: one of {', '.join(FILES)}")
    print(json.dumps(make_real_size_models(args.forge, args.out_dir, args.kinds), indent=1))
    return 0


COMMANDS = {
    "sdxl": run_sdxl,
    "refine": run_refine,
    "variations": run_variations,
    "serve": run_serve,
    "make-tiny-models": run_make_tiny_models,
    "make-real-size-models": run_make_real_size_models,
}
