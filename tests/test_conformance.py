"""Conformance: one refiner plan whatever the host. Each job specification is planned with the standalone host's facts
and with the WebUI adapter's facts (its pure fact builder, fed a stand-in for the WebUI's lists); the plans and their
infotext must be identical. The standalone then runs each specification and its PNGs carry exactly the planned
`Post-refiner ...` fields. tests/webui/test_conformance_webui.py runs the same specifications in a real WebUI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from sd_reimagine.errors import ParamError
from sd_reimagine.infotext import group_values, parse_infotext
from sd_reimagine.refiner_plan import BRIDGE_KEY, HANDOFF_KEY, OUTPUT_KEY, RUN_KEY, plan_refiner
from sd_reimagine.schedule import switch_timestep
from sd_reimagine.schema import REFINER, SDXL
from sd_reimagine.webui.refiner_job import webui_facts

# The WebUI's k-diffusion samplers (a stand-in for `sd_samplers_kdiffusion.k_diffusion_samplers_map`).
WEBUI_CONTINUING = ("Euler", "Euler a", "DPM++ 2M", "DPM++ 2M SDE", "Heun", "LMS", "DPM2", "DPM2 a")
REFINER_NAME = "tiny-sdxl-refiner"


@dataclass(frozen=True)
class Spec:
    """One job: refiner values, the base's sampler and prompts, where the base output is, the refiner's kind."""

    name: str
    refiner: dict[str, Any]
    base: dict[str, Any] = field(default_factory=dict)
    space: str = "sdxl"  # the base output's latent space: sdxl, sd, or pixels (hires fix / an image)
    kind: str = "sdxl-refiner"

    def refiner_values(self) -> dict[str, Any]:
        return REFINER.validate({"enabled": True, "refiner": REFINER_NAME, "refiner_steps": 4, **self.refiner})

    def base_values(self) -> dict[str, Any]:
        values = {"prompt": "a red fox", "negative_prompt": "", "sampler": "Euler", "steps": 4, **self.base}
        return SDXL.validate({"width": 64, "height": 64, "seed": 5, **values})

    @property
    def reason(self) -> str:
        return "hires fix output" if self.space == "pixels" else ""


SPECS = [
    Spec("handoff default", {"refiner_mode": "handoff"}),
    Spec("handoff early switch", {"refiner_mode": "handoff", "switch_at": 0.5}),
    Spec("handoff late switch", {"refiner_mode": "handoff", "switch_at": 0.9}, {"steps": 10}),
    Spec("handoff keep base", {"refiner_mode": "handoff", "keep_base": True}),
    Spec("handoff no keep base", {"refiner_mode": "handoff", "keep_base": False}),
    Spec("handoff own prompt", {"refiner_mode": "handoff", "refiner_prompt": "sharp, detailed: 8k"}),
    Spec("handoff own sampler", {"refiner_mode": "handoff", "refiner_sampler": "Euler a"}),
    Spec("handoff from SD 1.x latents", {"refiner_mode": "handoff"}, space="sd"),
    Spec("refine default", {"refiner_mode": "refine"}),
    Spec("refine strength 1", {"refiner_mode": "refine", "refine_strength": 1.0}),
    Spec("refine smallest strength", {"refiner_mode": "refine", "refine_strength": 0.25}),
    Spec("refine keep base", {"refiner_mode": "refine", "keep_base": True, "refine_strength": 0.5}),
    Spec(
        "refine own negative and cfg",
        {"refiner_mode": "refine", "refiner_negative_prompt": "blur", "refiner_cfg_scale": 3},
    ),
    Spec("refine aesthetic scores", {"refiner_mode": "refine", "aesthetic_score": 8, "negative_aesthetic_score": 1}),
    Spec("refine pixel bridge (SD 1.x base)", {"refiner_mode": "refine", "refine_strength": 0.5}, space="sd"),
    Spec("refine hires fix pixels", {"refiner_mode": "refine", "refine_strength": 0.5}, space="pixels"),
    Spec("refine with SDXL base as refiner", {"refiner_mode": "refine", "refine_strength": 0.5}, kind="sdxl-base"),
    Spec("refine own schedule type", {"refiner_mode": "refine", "refiner_schedule_type": "Karras"}),
]


def standalone_plan(spec: Spec):
    from sd_reimagine.standalone.sdxl import base_facts

    values = spec.base_values()
    facts = base_facts(values, "pixels" if spec.space == "pixels" else spec.space, spec.kind, spec.reason)
    return plan_refiner(spec.refiner_values(), facts, REFINER_NAME)


def webui_plan(spec: Spec):
    values = spec.base_values()
    p = SimpleNamespace(
        prompt=values["prompt"],
        negative_prompt=values["negative_prompt"],
        sampler_name=values["sampler"],
        scheduler=values["schedule_type"],
        enable_hr=spec.space == "pixels",
        hr_sampler_name=None,
        refiner_checkpoint=None,
    )
    is_sdxl = spec.space != "sd"
    facts = webui_facts(p, spec.refiner_values(), spec.kind, WEBUI_CONTINUING, is_sdxl, spec.reason)
    return plan_refiner(spec.refiner_values(), facts, REFINER_NAME)


def test_there_are_enough_specifications():
    assert len(SPECS) >= 15 and {s.refiner["refiner_mode"] for s in SPECS} == {"handoff", "refine"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_both_hosts_plan_the_same_job(spec):
    ours, theirs = standalone_plan(spec), webui_plan(spec)
    assert ours == theirs
    steps = spec.base_values()["steps"]
    levels = [1000 - (i + 0.5) * 1000 / steps for i in range(steps)]  # a schedule's starting timesteps
    split = ours.split(levels, switch_timestep(ours.values["switch_at"])) if ours.mode == "handoff" else None
    assert ours.fields(split) == theirs.fields(split)
    assert ours.base_fields(split) == {**ours.fields(split), OUTPUT_KEY: "base"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_infotext_records_only_what_applies_and_pastes_back(spec):
    plan = standalone_plan(spec)
    fields = {key: str(value) for key, value in plan.fields().items()}
    if plan.mode == "handoff":
        assert "Post-refiner switch at" in fields and "Post-refiner strength" not in fields
        assert "Post-refiner steps" not in fields and RUN_KEY not in fields
    else:
        assert "Post-refiner switch at" not in fields and fields[RUN_KEY] == str(plan.steps_run)
        assert plan.steps_run == int(plan.values["refiner_steps"] * plan.values["refine_strength"])
    assert (BRIDGE_KEY in fields) == (spec.space != "sdxl")
    pasted = group_values(REFINER, "", "", fields)
    for name, value in pasted.items():
        if name in ("refine_strength", "refiner_steps") and plan.mode == "handoff":
            continue
        if name == "switch_at" and plan.mode == "refine":
            continue
        assert value == plan.values[name], name


def test_refusals_are_the_cores_messages():
    with pytest.raises(ParamError, match="refine_strength=0.2 is not allowed: at least 1 / refiner_steps"):
        REFINER.validate({"enabled": True, "refiner_mode": "refine", "refine_strength": 0.2, "refiner_steps": 4})
    values = REFINER.validate({"enabled": True, "refiner": REFINER_NAME})
    p = SimpleNamespace(prompt="", negative_prompt="", sampler_name="DDIM", scheduler="Automatic", enable_hr=False)
    with pytest.raises(ParamError, match="k-diffusion"):
        plan_refiner(values, webui_facts(p, values, "sdxl-refiner", WEBUI_CONTINUING, True), REFINER_NAME)
    with pytest.raises(ParamError, match="an SDXL refiner or SDXL base checkpoint; this one is SD 1.x"):
        plan_refiner(values, webui_facts(p, values, "sd", WEBUI_CONTINUING, True), REFINER_NAME)
    plan = plan_refiner(REFINER.validate({**values, "switch_at": 0.99}), _facts(), "r")
    with pytest.raises(ParamError, match="leaves the refiner at least one step"):
        plan.split([951.0, 701.0, 451.0, 201.0], switch_timestep(0.99))


def _facts():
    from sd_reimagine.standalone.sdxl import base_facts

    return base_facts(SPECS[0].base_values(), "sdxl", "sdxl-refiner")


def test_builtin_refiner_is_switched_off_by_the_plan():
    values = REFINER.validate({"enabled": True, "refiner": REFINER_NAME})
    p = SimpleNamespace(prompt="", negative_prompt="", sampler_name="Euler", scheduler="", refiner_checkpoint="xl-ref")
    plan = plan_refiner(values, webui_facts(p, values, "sdxl-refiner", WEBUI_CONTINUING, True), REFINER_NAME)
    assert plan.builtin_off and "built-in refiner xl-ref off" in plan.fields()["Post-refiner note"]


# --- the standalone executes every specification ---------------------------------------------------------------


@pytest.fixture(scope="module")
def relay(tiny_models):
    import torch

    from sd_reimagine.standalone.sdxl_loading import load_sdxl_relay
    from sd_reimagine.testing.tiny_diffusers import TINY_SDXL_BASE, TINY_SDXL_REFINER

    relay = load_sdxl_relay(str(tiny_models[TINY_SDXL_BASE]), str(tiny_models[TINY_SDXL_REFINER]), torch.float32, "cpu")
    relay.refiner_name = REFINER_NAME
    return relay


def post_refiner_fields(infotext: str) -> dict[str, str]:
    return {k: v for k, v in parse_infotext(infotext)[2].items() if k.startswith("Post-refiner")}


def planned(fields: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in fields.items()}


@pytest.mark.parametrize(
    "spec", [s for s in SPECS if s.space == "sdxl" and s.kind == "sdxl-refiner"], ids=lambda s: s.name
)
def test_standalone_images_carry_the_planned_infotext(relay, spec, tmp_path):
    from PIL import Image

    from sd_reimagine.standalone.output import save_png

    job = relay.run(spec.base_values(), spec.refiner_values())
    plan = relay.plan(spec.base_values(), spec.refiner_values())
    saved = save_png(job.images[0].image, job.images[0].infotext, tmp_path, job.images[0].seed)
    assert post_refiner_fields(Image.open(saved).info["parameters"]) == planned(plan.refiner.fields(plan.split))
    if plan.split is not None:
        assert job.images[0].infotext.count(HANDOFF_KEY) == 1
        assert (job.base_steps, job.refiner_steps) == (plan.split.base_steps, plan.split.refiner_steps)
    kept = [image for image in job.all_images() if image.label == "base"]
    assert bool(kept) == plan.refiner.keep_base
    for image in kept:
        assert post_refiner_fields(image.infotext) == planned(plan.refiner.base_fields(plan.split))


@pytest.mark.parametrize("spec", [s for s in SPECS if s.space != "sdxl"], ids=lambda s: s.name)
def test_standalone_bridge_carries_the_planned_infotext(relay, spec):
    import torch

    from sd_reimagine.standalone import sdxl

    values = {**spec.refiner_values(), "refiner_mode": "refine"}
    latents = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    job = sdxl.refine_latents(relay.refiner, latents, spec.space, relay.base.vae, values, seed=5, prompt="a red fox")
    facts = sdxl.base_facts(spec.base_values(), spec.space, sdxl.refiner_kind(relay.refiner))
    plan = plan_refiner(REFINER.validate(values), facts, "")
    assert job.bridged and post_refiner_fields(job.images[0].infotext) == planned(plan.fields())


# --- Reimagine -------------------------------------------------------------------------------------------------

REIMAGINE_SPECS = [
    ("one reference", [1.0], {}),
    ("three weighted references", [1.0, 0.5, 2.0], {}),
    ("a weight-0 reference is dropped", [1.0, 0.0, 1.0], {}),
    ("image/text mix", [1.0], {"image_text_mix": 0.5, "prompt": "a red fox"}),
    ("image only at noise level 300", [1.0], {"noise_level": 300}),
    ("structure strength", [1.0, 1.0], {"structure_strength": 0.5}),
    ("n above the batch", [1.0], {"n": 5}),
]


def reimagine_references(weights):
    from sd_reimagine.images import open_image

    from .conftest import noise_image

    return [(open_image(noise_image(index, (32, 32))), weight) for index, weight in enumerate(weights)]


def reimagine_values(extra):
    return {"seed": 11, "steps": 2, "width": 64, "height": 64, "n": 2, **extra}


@pytest.mark.parametrize(("name", "weights", "extra"), REIMAGINE_SPECS, ids=[s[0] for s in REIMAGINE_SPECS])
def test_both_hosts_plan_the_same_reimagine_job(name, weights, extra):
    from sd_reimagine.reimagine_plan import ReimagineFacts, plan_reimagine

    references = reimagine_references(weights)
    standalone = plan_reimagine(reimagine_values(extra), references, ReimagineFacts("tiny-unclip", 4))
    webui = plan_reimagine(reimagine_values(extra), references, ReimagineFacts("tiny-unclip", 2, uneven_batches=False))
    assert standalone.fields() == webui.fields() and standalone.seeds == webui.seeds
    assert [s for batch in standalone.batches for s in batch] == list(standalone.seeds)
    assert [s for batch in webui.batches for s in batch] == list(webui.seeds)
    assert len({len(batch) for batch in webui.batches}) == 1  # the WebUI runs equal batches
    assert sum(r.weight for r in standalone.references) == pytest.approx(1.0)
    assert len(standalone.references) == sum(1 for w in weights if w > 0)


@pytest.mark.parametrize(("name", "weights", "extra"), REIMAGINE_SPECS, ids=[s[0] for s in REIMAGINE_SPECS])
def test_standalone_reimagine_images_carry_the_planned_infotext(unclip_pipe, name, weights, extra):
    from sd_reimagine.infotext import parse_infotext
    from sd_reimagine.reimagine_plan import ReimagineFacts, plan_reimagine
    from sd_reimagine.standalone.unclip import UnclipVariations

    references = reimagine_references(weights)
    runner = UnclipVariations(unclip_pipe, "tiny-unclip", max_batch=4)
    job = runner([_ref(r) for r in references], reimagine_values(extra), output_type="np")
    plan = plan_reimagine(reimagine_values(extra), references, ReimagineFacts("tiny-unclip", 4))
    assert [g.seed for g in job.images] == list(plan.seeds)
    for image in job.images:
        fields = parse_infotext(image.infotext)[2]
        assert {k: v for k, v in fields.items() if k.startswith("Reimagine")} == planned(plan.fields())


def _ref(pair):
    from sd_reimagine.mixing import Reference

    return Reference(*pair)
