"""Stable unCLIP (H and L) on Forge's own engine, loader, memory manager, processing and samplers.

Forge recognises unCLIP checkpoints (huggingface_guess `SD21UnclipH/L`) and loads them into its SD 2 engine with
the UNet's image-embedding input (`label_emb`: 2048 values for H, 1536 for L) kept, but it drops the image tower
and the noise augmentor, and it loads them as epsilon models (`backend/loader.py` asks huggingface_guess for the
prediction type without the key prefix). A job here:
1. swaps the checkpoint in with Forge's loader (`forge.swap.swapped_checkpoint`: Forge's one resident model,
   so back-to-back Reimagine jobs load it once; the user's checkpoint and additional modules are put back after);
2. checks what Forge loaded (an SD21UnclipH/L guess on the SD 2 engine, `label_emb` of the right width) and sets
   the shared predictor to v-prediction, which both unCLIP models are;
3. encodes the references once with the checkpoint's own image tower (`forge.unclip_tower`), then hands it back;
4. runs A1111-style txt2img (from noise) or img2img (structure strength) processing on Forge's samplers, each
   image's row of the core's conditioning (`conditioning_for_seed` with `unclip_noise.unclip_augment`) in the
   `vector` slot of its prompt conditioning, zeros for the negative side; Forge hands `vector` to the UNet as `y`,
   as it does for SDXL. LoRA and other extra networks in the prompt, progress, interrupt, skip and the SDXL Refiner
   post-step work as in any Forge job.
A checkpoint Forge does not load as unCLIP raises `NotNativeUnclip`: the caller runs the diffusers fallback.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack, closing
from functools import lru_cache
from typing import Any

import torch

from ...checkpoints import UNCLIP_H, UNCLIP_L
from ...errors import ParamError, ReimagineError
from ...images import InputImage
from ...reimagine_plan import ReimagineFacts, ReimaginePlan, VariationResult, conditioning_for_seed, plan_reimagine
from ...schema import ParamGroup
from ...unclip_noise import unclip_augment
from .. import settings
from ..reimagine import job_result, job_timings, make_processing
from ..reimagine_post_step import attach_post_step
from ..swap_records import SWAP_TIMES
from . import unclip_tower
from .reimagine_xl import modules_for
from .swap import swapped_checkpoint
from .unclip_diffusers import PATH_KEY

ADM_WIDTH = {UNCLIP_H: 2048, UNCLIP_L: 1536}  # label_emb input: image embedding + level embedding
FORGE_PATH = "Forge"  # infotext `Reimagine engine`: Forge's own engine ran the job (else "diffusers")


class NotNativeUnclip(ReimagineError):
    """Forge cannot run this unCLIP checkpoint on its own engine (the diffusers fallback may)."""


def native_engine_available() -> bool:
    """Whether this Forge has the SD 2 engine and a huggingface_guess that knows unCLIP (not Forge Neo/Classic)."""
    try:
        import backend.diffusion_engine.sd20  # noqa: F401
        from huggingface_guess import model_list
    except ImportError:
        return False
    return hasattr(model_list, "SD21UnclipH") and hasattr(model_list, "SD21UnclipL")


def loaded_kind(sd_model) -> str | None:
    """UNCLIP_H / UNCLIP_L when Forge loaded the model as that unCLIP on its SD 2 engine, else None."""
    from huggingface_guess import model_list

    config = getattr(sd_model, "model_config", None)
    guessed = {model_list.SD21UnclipH: UNCLIP_H, model_list.SD21UnclipL: UNCLIP_L}
    kind = next((k for cls, k in guessed.items() if isinstance(config, cls)), None)
    if kind is None or not getattr(sd_model, "is_sd2", False):
        return None
    try:
        width = sd_model.forge_objects.unet.model.diffusion_model.label_emb[0][0].in_features
    except (AttributeError, IndexError, TypeError):
        return None
    return kind if width == ADM_WIDTH[kind] else None


def prepare_loaded_model(sd_model, title: str) -> str:
    """The loaded model's unCLIP kind, its predictor set to v-prediction; NotNativeUnclip when it is no unCLIP."""
    kind = loaded_kind(sd_model)
    if kind is None:
        raise NotNativeUnclip(f"Forge did not load {title} as an unCLIP model on its SD 2 engine")
    # Forge's loader calls it epsilon (backend/loader.py: model_type without the key prefix); unCLIP is v. The
    # predictor is shared by every copy of the model's objects, so this holds until the model is reloaded.
    sd_model.forge_objects.unet.model.predictor.prediction_type = "v_prediction"
    return kind


class UnclipConditioning:
    """Each image's row of the core's unCLIP conditioning in the `vector` slot of its prompt conditioning."""

    def __init__(self, plan: ReimaginePlan, embeds: torch.Tensor, mean=None, std=None):
        self.plan = plan
        self.embeds = embeds
        self.augment = unclip_augment(plan.values["noise_level"], mean, std)

    @property
    def width(self) -> int:
        return 2 * self.embeds.shape[1]

    def rows(self, seeds: Sequence[int]) -> list[torch.Tensor]:
        """The (1, 2D) conditioning of every image seed, from the image's own seeded generator."""
        with torch.no_grad():
            return [
                conditioning_for_seed(self.embeds, self.plan, torch.Generator().manual_seed(int(s)), self.augment)
                for s in seeds
            ]

    def apply(self, conditioning, seeds: Sequence[int]):
        """A copy of Forge's multicond conditioning of a batch, each prompt's part given its image's row."""
        from modules.prompt_parser import ComposableScheduledPromptConditioning, MulticondLearnedConditioning

        rows = self.rows(seeds)
        if len(rows) != len(conditioning.batch):
            raise RuntimeError(f"Reimagine: {len(conditioning.batch)} prompts for {len(rows)} seeds")
        batch = [
            [ComposableScheduledPromptConditioning(with_vector(c.schedules, row[0]), c.weight) for c in composables]
            for row, composables in zip(rows, conditioning.batch, strict=True)
        ]
        return MulticondLearnedConditioning(conditioning.shape, batch)

    def apply_negative(self, unconditional):
        """The negative side with a zero image row (the model's "no image"); None (CFG 1) stays None."""
        if unconditional is None:
            return None
        zeros = torch.zeros(self.width)
        return [with_vector(schedules, zeros) for schedules in unconditional]


def with_vector(schedules, row: torch.Tensor) -> list:
    """ScheduledPromptConditionings whose cond is {'crossattn': text, 'vector': row}."""
    from modules.prompt_parser import ScheduledPromptConditioning

    return [
        ScheduledPromptConditioning(s.end_at_step, {"crossattn": s.cond, "vector": row.to(s.cond)}) for s in schedules
    ]


@lru_cache(maxsize=1)
def processing_classes() -> tuple[type, type]:
    """(txt2img, img2img) processing classes whose batch conditioning carries the Reimagine unCLIP rows."""
    from modules import processing

    def sample(base):
        def run(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
            c = self.reimagine_unclip.apply(conditioning, seeds)
            uc = self.reimagine_unclip.apply_negative(unconditional_conditioning)
            return base.sample(self, c, uc, seeds, subseeds, subseed_strength, prompts)

        return run

    txt2img, img2img = processing.StableDiffusionProcessingTxt2Img, processing.StableDiffusionProcessingImg2Img
    # Variations from noise at any size; structure strength: img2img from the first reference.
    unclip_txt2img = type("ReimagineUnclipTxt2Img", (txt2img,), {"sample": sample(txt2img)})
    unclip_img2img = type("ReimagineUnclipImg2Img", (img2img,), {"sample": sample(img2img)})
    return unclip_txt2img, unclip_img2img


def run_native_unclip(
    info,
    group: ParamGroup,
    references: Sequence[tuple[InputImage, float]],
    values: dict[str, Any],
    *,
    save: bool,
    is_api: bool,
    refiner: dict[str, Any] | None = None,
) -> VariationResult:
    """One unCLIP job (values validated) on Forge's engine; NotNativeUnclip when Forge does not load the file as
    unCLIP. The user's checkpoint and modules are the ones Forge loads next, whatever happened."""
    started = time.perf_counter()
    facts = ReimagineFacts(info.title, settings.batch_limit(), uneven_batches=False)
    plan = plan_reimagine(values, references, facts, group)
    swaps_before = len(SWAP_TIMES)
    with ExitStack() as stack:
        try:
            model = stack.enter_context(swapped_checkpoint(info, field="model", modules=modules_for(info)))
        except ParamError as error:  # Forge's loader did not take the file
            raise NotNativeUnclip(f"Forge's loader: {error.allowed}") from error
        kind = prepare_loaded_model(model, info.title)
        p = make_processing(plan, save, is_api, processing_classes())
        p.reimagine_unclip = unclip_conditioning(plan, info, kind)
        p.extra_generation_params[PATH_KEY] = FORGE_PATH
        attach_post_step(p, refiner)
        print(f"Reimagine: unCLIP ({kind}) on Forge's own engine and samplers")
        sampling = time.perf_counter()
        processed = process(p)
        sampling = time.perf_counter() - sampling
    return job_result(processed, plan, job_timings(started, sampling, swaps_before))


def unclip_conditioning(plan: ReimaginePlan, info, kind: str) -> UnclipConditioning:
    """The job's conditioning: references encoded by the checkpoint's tower (a failure names `model`)."""
    mean, std = unclip_tower.clip_stats(kind, info.title)
    images = [r.image for r in plan.references]
    try:
        embeds = unclip_tower.reference_embeddings(info.filename, kind, info.title, images)
    except ReimagineError:
        raise
    except Exception as error:  # a tower Forge cannot build from this file is the user's input, not a server error
        wanted = f"an {kind} checkpoint whose image tower Forge can build ({type(error).__name__}: {error})"
        raise ParamError("model", info.title, wanted[:400]) from error
    return UnclipConditioning(plan, embeds, mean, std)


def process(p):
    """Forge's process_images; an unexpected failure is reported as a Reimagine error (never an HTTP 500)."""
    from modules import processing

    try:
        with closing(p):
            return processing.process_images(p)
    except ReimagineError:
        raise
    except Exception as error:
        raise ReimagineError(f"Reimagine on Forge failed while sampling ({type(error).__name__}: {error})") from error
