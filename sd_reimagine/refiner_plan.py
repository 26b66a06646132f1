"""The SDXL refiner post-step, decided once: what each model runs, what crosses between them, what is kept, and
the infotext of every output. Both hosts build `BaseFacts`, call `plan_refiner`, execute the plan and report the
handoff split back through `RefinerPlan.split`; neither decides a rule of its own.

Rules (one place each):
- handoff: on the base's noise schedule, the base runs every step that starts at or above the switch level (training
  timestep `round(1000 - 1000 * switch_at)`: diffusers' `denoising_end`), the refiner runs the rest of the same
  schedule without new noise; each model gets at least one step. Both samplers must be able to stop and continue a
  schedule (a host fact: k-diffusion samplers in the WebUI, any diffusers scheduler standalone).
- refine: the refiner runs the last `int(refiner_steps * refine_strength)` steps of a `refiner_steps` schedule
  (diffusers' img2img count), at least one, from the base's finished output with fresh seeded noise.
- hand-over: latents cross unchanged only when the base output is latents in the SDXL latent space; SD 1.x/2.x
  latents, decoded pixels (hires fix) and existing images cross as pixels (base VAE decode, refiner VAE encode).
- kept base image (keep_base, only when the refiner ran): the finished base (refine) or the base's estimate at the
  switch point (handoff), with the job's infotext plus `Post-refiner output: base`.
- refiner prompt, negative prompt, sampler and schedule type left empty take the base's.
- residency: where base and refiner take turns in memory (the WebUI) and a job has several batches, the refiner
  refines every batch after the last base batch, in one load (one refiner load and one base reload per job, the
  same images), when a swap would load a checkpoint (A1111 at `sd_checkpoints_limit` 1, Forge always); where both
  models stay resident, a swap is cheap and the batches are refined one by one (keeping them waiting costs more than
  it saves). The user's setting forces either; a job that cannot wait (the host says why) loads the refiner for
  every batch and says so.
- infotext: the keys of the job's mode only (handoff: switch point and the steps each model ran; refine: strength,
  schedule steps and the steps run); pasting it back gives the job's values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .checkpoints import check_role
from .errors import ParamError
from .infotext import group_fields, group_values
from .schedule import switch_timestep
from .schema import REFINER, ParamGroup, refine_steps_run, refiner_or_base

KEY = REFINER["refiner"].infotext  # "Post-refiner": its presence marks an infotext written with the post-step
NOTE_KEY = "Post-refiner note"
BRIDGE_KEY = "Post-refiner bridge"
HANDOFF_KEY = "Post-refiner handoff"
RUN_KEY = "Post-refiner steps run"
OUTPUT_KEY = "Post-refiner output"
BASE_OUTPUT = "base"

BUILTIN_OFF = "built-in refiner {name} off for this job (the post-step runs instead)"
BATCH_BY_BATCH = "refiner loaded for every batch ({reason})"
LATENTS, PIXELS = "latents", "pixels"
SDXL_SPACE = "sdxl"
MODE_KEYS = {  # infotext keys that only one mode writes
    "handoff": ("switch_at",),
    "refine": ("refine_strength", "refiner_steps"),
}
LEVEL_TOLERANCE = 1e-5  # float32 sigmas vs float64 ones of the same timestep
RESIDENCY_AUTO = "Automatic"  # one refiner load per job where a swap loads a checkpoint, else batch by batch
RESIDENCY_ONE = "One refiner load per job"
RESIDENCY_BATCH = "Batch by batch"
RESIDENCY_CHOICES = (RESIDENCY_AUTO, RESIDENCY_ONE, RESIDENCY_BATCH)


@dataclass(frozen=True)
class BaseFacts:
    """What a host knows about the base pass and the refiner before the refiner runs."""

    prompt: str
    negative_prompt: str
    sampler: str
    schedule_type: str
    latent_space: str  # "sdxl", "sd", or "pixels" when the base output is already decoded (hires fix, an image)
    refiner_kind: str  # checkpoint kind of the refiner (sd_reimagine.checkpoints)
    stuck_sampler: str = ""  # a sampler of the job that cannot stop and continue a schedule ("": all can)
    bridge_reason: str = ""  # why the output is pixels, when latent_space is "pixels"
    builtin_refiner: str = ""  # the host's own refiner, when the job also asks for it
    batch_count: int = 1  # batches the job makes one after another (the WebUI's batch count)
    swaps_models: bool = False  # base and refiner take turns in memory (the WebUI), not both resident
    cannot_defer: str = ""  # why this job cannot refine all batches at the end ("": it can)
    swap_loads: bool = True  # a swap to the refiner would load a checkpoint (the two models do not both stay resident)
    residency: str = RESIDENCY_AUTO  # the user's setting (RESIDENCY_CHOICES): Automatic decides from swap_loads


@dataclass(frozen=True)
class HandoffSplit:
    """Steps each model ran in a handoff."""

    base_steps: int
    refiner_steps: int
    switch_timestep: int

    def describe(self) -> str:
        cutoff = self.switch_timestep
        return f"base {self.base_steps} steps (t >= {cutoff}), refiner {self.refiner_steps} steps (t < {cutoff})"


@dataclass(frozen=True)
class RefinerPlan:
    """What the post-step does for one job."""

    values: dict[str, Any]  # checked refiner values
    refiner: str  # the refiner's name as the infotext records it
    prompt: str
    negative_prompt: str
    sampler: str
    schedule_type: str
    handover: str  # LATENTS or PIXELS
    bridge_reason: str = ""
    steps_run: int = 0  # refine: steps the refiner runs (handoff: known after `split`)
    note: str = ""
    one_residency: bool = False  # refine every batch in one refiner load after the last base batch

    @property
    def mode(self) -> str:
        return self.values["refiner_mode"]

    @property
    def keep_base(self) -> bool:
        return bool(self.values["keep_base"])

    @property
    def schedule_steps(self) -> int:
        """Refine: length of the refiner's schedule (it runs the last `steps_run` of them)."""
        return self.values["refiner_steps"]

    @property
    def refine_start(self) -> int:
        """Refine: index in the refiner's schedule of the first step run."""
        return self.schedule_steps - self.steps_run

    builtin_off: bool = False  # the host must switch its own refiner off for this job

    @property
    def switch_timestep(self) -> int:
        return switch_timestep(self.values["switch_at"])

    def split(
        self,
        levels: Sequence[float],
        switch_level: float,
        start: int = 0,
        refiner_levels: Sequence[float] | None = None,
    ) -> HandoffSplit:
        """Handoff on a schedule: `levels` are the starting noise levels (timesteps or sigmas, decreasing) of the
        base's steps from the schedule's start, `switch_level` the level of the switch timestep, `start` the first
        step the base runs (img2img). `refiner_levels`: the refiner's own schedule, when its sampler makes another
        one (it runs the steps below the switch level). Raises ParamError when a model would get no step."""
        threshold = float(switch_level) * (1 - LEVEL_TOLERANCE)
        base_end = max(sum(1 for level in levels if float(level) >= threshold), start)
        refiner_steps = len(levels) - base_end
        if refiner_levels is not None:
            refiner_steps = sum(1 for level in refiner_levels if float(level) < threshold)
        split = HandoffSplit(base_end - start, refiner_steps, self.switch_timestep)
        if split.base_steps < 1 or split.refiner_steps < 1:
            who = "the base" if split.base_steps < 1 else "the refiner"
            raise ParamError(
                "switch_at", self.values["switch_at"], f"a switch point that leaves {who} at least one step"
            )
        return split

    def fields(self, split: HandoffSplit | None = None) -> dict[str, Any]:
        """The `Post-refiner ...` infotext fields of a refined image (`split`: the handoff as it ran)."""
        skipped = {key for mode, keys in MODE_KEYS.items() if mode != self.mode for key in keys}
        values = {k: v for k, v in self.values.items() if k not in skipped}
        fields = {k: v for k, v in group_fields(REFINER, {**values, "refiner": self.refiner}).items() if v != ""}
        if self.mode == "handoff" and split is not None:
            fields[HANDOFF_KEY] = split.describe()
        if self.mode == "refine":
            fields[RUN_KEY] = self.steps_run
        if self.handover == PIXELS:
            fields[BRIDGE_KEY] = f"pixels ({self.bridge_reason})"
        if self.note:
            fields[NOTE_KEY] = self.note
        return fields

    def base_fields(self, split: HandoffSplit | None = None) -> dict[str, Any]:
        """Infotext fields of the kept base image: the job's, tagged as the base output."""
        return {**self.fields(split), OUTPUT_KEY: BASE_OUTPUT}


def plan_refiner(values: Mapping[str, Any], facts: BaseFacts, refiner_name: str) -> RefinerPlan:
    """The plan of an enabled post-step from checked values and the host's facts; ParamError names a bad value.

    The host's own refiner, when also asked for, is switched off for the job: the post-step runs (`builtin_off`).
    """
    values = dict(values)
    check_role("refiner", refiner_name or values["refiner"], facts.refiner_kind, "refiner")
    if values["refiner_mode"] == "handoff" and facts.stuck_sampler:
        raise ParamError(
            "refiner_mode",
            "handoff",
            f"'refine' with sampler {facts.stuck_sampler!r}: handoff needs samplers that stop and continue one "
            "schedule (k-diffusion samplers: Euler, Euler a, DPM++ 2M, ...)",
        )
    handover = LATENTS if facts.latent_space == SDXL_SPACE else PIXELS
    reason = facts.bridge_reason or ("base and refiner latent spaces differ" if handover == PIXELS else "")
    return RefinerPlan(
        values=values,
        refiner=refiner_name or values["refiner"],
        prompt=refiner_or_base(values, "refiner_prompt", facts.prompt),
        negative_prompt=refiner_or_base(values, "refiner_negative_prompt", facts.negative_prompt),
        sampler=refiner_or_base(values, "refiner_sampler", facts.sampler),
        schedule_type=refiner_or_base(values, "refiner_schedule_type", facts.schedule_type),
        handover=handover,
        bridge_reason=reason,
        steps_run=refine_steps_run(values) if values["refiner_mode"] == "refine" else 0,
        note=job_note(facts),
        builtin_off=bool(facts.builtin_refiner),
        one_residency=wants_one_residency(facts) and not facts.cannot_defer,
    )


def wants_one_residency(facts: BaseFacts) -> bool:
    """Whether the job's batches should wait for one refiner load: forced by the setting, else where a swap loads."""
    if not facts.swaps_models or facts.batch_count < 2 or facts.residency == RESIDENCY_BATCH:
        return False
    return facts.residency == RESIDENCY_ONE or facts.swap_loads


def job_note(facts: BaseFacts) -> str:
    """`Post-refiner note`: the built-in refiner switched off, batches refined one by one (and why)."""
    notes = [BUILTIN_OFF.format(name=facts.builtin_refiner)] if facts.builtin_refiner else []
    if wants_one_residency(facts) and facts.cannot_defer:
        notes.append(BATCH_BY_BATCH.format(reason=facts.cannot_defer))
    return "; ".join(notes)


def pasted_refiner_values(group: ParamGroup, fields: Mapping[str, str]) -> dict[str, Any] | None:
    """The post-step's values from an infotext's fields (None: the image was not refined)."""
    if KEY not in fields:
        return None
    values = {**group.defaults(), "refiner_prompt": "", "refiner_negative_prompt": ""}
    values.update(group_values(group, "", "", fields))
    values["enabled"] = True
    return values
