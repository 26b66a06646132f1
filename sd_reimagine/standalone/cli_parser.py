"""The command line's parser: one subcommand per job, every option with its help and default (`build_parser`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..schema import LOW_VRAM, REFINER, REIMAGINE, SDXL
from .output import REFINED_FOLDER, SDXL_FOLDER, VARIATIONS_FOLDER

EXIT_USAGE = 2
DESCRIPTION = "Stable unCLIP variations and the SDXL refiner without a WebUI, on diffusers."
EPILOG = (
    "Every command that saves images writes them into a subfolder of --out (default: outputs) named after the job: "
    "variations (one image or a folder of them) into OUT/reimagine, sdxl into OUT/sdxl, refine into OUT/refined; "
    "serve uses the same folders. --device and --verbose may come before or after the command."
)
UNCLIP_DEFAULT = REIMAGINE["model"].default
REAL_SIZE_KINDS = (
    "sdxl-base",
    "sdxl-refiner",
    "unclip-h",
    "unclip-l",
)  # sd_reimagine.testing.real_size.FILES (imports torch)
DEVICE_HELP = "torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available, else cpu)"
VERBOSE_HELP = "show the libraries' own warnings and model-loading progress bars (default: off; job progress shows)"
IMAGE_DIR_HELP = (
    "a folder at a time: one job per PNG/JPEG/WebP image in DIR (not its subfolders), each image reference 1; "
    "outputs go into OUT/reimagine like single jobs', and a rerun skips images already done there"
)
REFINE_OWN = (
    "refiner_prompt",
    "refiner_negative_prompt",
    "refiner_cfg_scale",
    "refiner_sampler",
    "refiner_schedule_type",
)


class _OneLineParser(argparse.ArgumentParser):
    """Bad input exits non-zero with one clear line (no usage dump)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _ImageAction(argparse.Action):
    """`--image PATH` adds a reference of weight 1; a following `--weight W` sets that reference's weight."""

    def __call__(self, parser, namespace, value, option_string=None):
        references = getattr(namespace, self.dest) or []
        if option_string == "--weight":
            if not references:
                parser.error("--weight must follow the --image it applies to")
            references[-1][1] = value
        else:
            references.append([value, "1"])
        setattr(namespace, self.dest, references)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m sd_reimagine", description=DESCRIPTION, epilog=EPILOG)
    add_common_arguments(parser, default=None)
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_OneLineParser, metavar="COMMAND", title="commands"
    )
    add_variations_parser(commands)
    add_sdxl_parser(commands)
    add_refine_parser(commands)
    add_serve_parser(commands)
    add_tiny_parser(commands)
    add_real_size_parser(commands)
    for command in commands.choices.values():
        add_common_arguments(command, default=argparse.SUPPRESS)  # after the command too, without resetting it
    return parser


def add_common_arguments(parser: argparse.ArgumentParser, default: object) -> None:
    """--device and --verbose, accepted before the command and after it (SUPPRESS: unset keeps the first's value)."""
    parser.add_argument("--device", default=default, help=DEVICE_HELP)
    verbose_default = False if default is None else default
    parser.add_argument("--verbose", action="store_true", default=verbose_default, help=VERBOSE_HELP)


def add_out_argument(parser: argparse.ArgumentParser, folder: str) -> None:
    """The one output-folder rule: --out is the root, each kind of job saves into its own subfolder."""
    parser.add_argument(
        "--out", type=Path, default=Path("outputs"), help=f"output root; images go into OUT/{folder} (default: outputs)"
    )


def add_variations_parser(commands) -> None:
    variations = commands.add_parser("variations", help="Stable unCLIP variations of one or more reference images")
    sources = variations.add_mutually_exclusive_group(required=True)
    sources.add_argument(
        "--image",
        dest="references",
        action=_ImageAction,
        metavar="PATH",
        help="reference image (PNG/JPEG/WebP); repeat for several",
    )
    sources.add_argument("--image-dir", type=Path, help=IMAGE_DIR_HELP)
    variations.add_argument(
        "--weight",
        dest="references",
        action=_ImageAction,
        metavar="W",
        help="weight of the preceding --image (default 1; 0-10, normalised to sum 1)",
    )
    REIMAGINE.add_cli_arguments(variations)
    _size_defaults_to_the_models(variations, REIMAGINE, "--model")
    add_dtype_argument(variations)
    add_low_vram_arguments(variations)
    add_out_argument(variations, VARIATIONS_FOLDER)


def add_sdxl_parser(commands) -> None:
    sdxl = commands.add_parser("sdxl", help="SDXL base, optionally followed by the SDXL refiner")
    SDXL.add_cli_arguments(sdxl)
    _size_defaults_to_the_models(sdxl, SDXL, "--base")
    REFINER.add_cli_arguments(sdxl, skip=("enabled", "refiner"))
    sdxl.add_argument(
        "--refiner", default=None, help="SDXL refiner: id, folder or file (default: none, the base alone)"
    )
    add_dtype_argument(sdxl)
    add_low_vram_arguments(sdxl)
    add_out_argument(sdxl, SDXL_FOLDER)


def add_refine_parser(commands) -> None:
    refine = commands.add_parser("refine", help="refine an existing image with the SDXL refiner (img2img)")
    refine.add_argument("--image", required=True, type=Path, help="image to refine (PNG/JPEG/WebP)")
    refine.add_argument("--seed", default="-1", help="seed (default -1: random)")
    refine.add_argument("--prompt", default=None, help="prompt (default: the image's own, from its infotext)")
    refine.add_argument("--negative-prompt", default=None, help="negative prompt (default: the image's own)")
    cfg = REFINER["refiner_cfg_scale"]
    refine.add_argument("--cfg-scale", default=None, help=f"CFG scale (default: {cfg.default}; {cfg.allowed()})")
    refine.add_argument("--sampler", default=None, help="sampler (default: the refiner's own scheduler)")
    refine.add_argument("--schedule-type", default=None, help="schedule type (default: the sampler's own)")
    # An image has no base pass: the refiner's own flags would say "empty = the base's".
    REFINER.add_cli_arguments(refine, skip=("enabled", "refiner_mode", "switch_at", "keep_base", *REFINE_OWN))
    add_dtype_argument(refine)
    add_low_vram_arguments(refine)
    add_out_argument(refine, REFINED_FOLDER)


def add_serve_parser(commands) -> None:
    serve = commands.add_parser("serve", help="start the Gradio app")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    serve.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860)")
    serve.add_argument(
        "--model", default=None, help=f"unCLIP model the app shows first, and its size (default: {UNCLIP_DEFAULT})"
    )
    serve.add_argument(
        "--base", default=None, help=f"SDXL base the app shows first, and its size (default: {SDXL['base'].default})"
    )
    serve.add_argument(
        "--refiner", default=None, help=f"SDXL refiner the app shows first (default: {REFINER['refiner'].default})"
    )
    add_dtype_argument(serve)
    add_low_vram_arguments(serve)
    serve.add_argument(
        "--out",
        type=Path,
        default=Path("outputs"),
        help="output root: OUT/reimagine, OUT/sdxl, OUT/refined; the Lineage tab reads OUT/reimagine "
        "(default: outputs)",
    )
    serve.add_argument(
        "--lineage-dir",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="another folder the Lineage tab may show (repeatable; default: none); clients can name no folder outside "
        "--out and these",
    )
    serve.add_argument(
        "--auth",
        default=None,
        metavar="USER:PASSWORD",
        help="sign-in for the page and every endpoint (default: REIMAGINE_AUTH, else none; without one, listening "
        "beyond 127.0.0.1 logs a warning)",
    )


def add_tiny_parser(commands) -> None:
    tiny = commands.add_parser("make-tiny-models", help="write tiny random-weight models (no download)")
    tiny.add_argument("out_dir", type=Path, help="folder to write the models into (one subfolder each)")
    tiny.add_argument("--scale", type=int, default=1, help="channel multiplier (default: 1; benchmarks use larger)")
    tiny.add_argument(
        "--webui",
        action="store_true",
        help="write WebUI checkpoints (.safetensors + .yaml); run with the WebUI's Python (default: diffusers folders)",
    )


def add_dtype_argument(parser) -> None:
    """`--dtype`, checked against the device when the job starts (Session), so that the error can name both."""
    parser.add_argument(
        "--dtype",
        default=None,
        help="weights and compute: float32, float16 (GPU only) or bfloat16 (default: float32 on CPU, float16 on CUDA)",
    )


def add_low_vram_arguments(parser) -> None:
    """`--offload [none|model|sequential]` and `--vae-tiling`, from the schema's LOW_VRAM host options; a bare
    `--offload` means model offload (as the flag meant before it took a mode)."""
    LOW_VRAM.add_cli_arguments(parser)
    offload = next(action for action in parser._actions if action.dest == "offload")
    offload.nargs, offload.const, offload.metavar = "?", "model", "{none,model,sequential}"


def _size_defaults_to_the_models(parser, group, model_flag: str) -> None:
    """The help of --width/--height: left out, they are the model's own size (see sd_reimagine.model_size)."""
    for action in parser._actions:
        if action.dest in ("width", "height"):
            action.help = (
                f"{group[action.dest].tooltip} (default: the {model_flag} model's own size: 768 for SD 2.1 unCLIP, "
                f"1024 for SDXL, a folder's from its configs; {group[action.dest].allowed()})"
            )


def add_real_size_parser(commands) -> None:
    real = commands.add_parser(
        "make-real-size-models",
        help="write real-architecture random-weight checkpoints (SDXL base/refiner, unCLIP-H and -L; ~21 GB) for Forge",
    )
    real.add_argument("out_dir", type=Path, help="folder to write the checkpoints into (files there are kept)")
    real.add_argument("--forge", type=Path, required=True, help="a Forge checkout (its configs and huggingface_guess)")
    real.add_argument(
        "--kinds",
        nargs="+",
        default=list(REAL_SIZE_KINDS),
        choices=REAL_SIZE_KINDS,
        help=f"which checkpoints to write (default: all: {' '.join(REAL_SIZE_KINDS)})",
    )
