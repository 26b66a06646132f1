"""The conformance specifications (tests/test_conformance.py) run in a real WebUI 1.10.1: every refined image's
`Post-refiner ...` fields are exactly the core's plan for the WebUI's facts (the handoff split as the WebUI's own
sigma schedule gave it), and the kept base image carries the same fields tagged as the base output."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from sd_reimagine.refiner_plan import HANDOFF_KEY, OUTPUT_KEY, plan_refiner
from sd_reimagine.webui.refiner_job import webui_facts

from ..test_conformance import (
    REIMAGINE_SPECS,
    SPECS,
    WEBUI_CONTINUING,
    Spec,
    planned,
    reimagine_references,
    reimagine_values,
)
from .test_refiner_webui import BASE, SD15, fields_of, job
from .test_reimagine_webui import UNCLIP

HANDOFF_RE = re.compile(r"^base (\d+) steps \(t >= (\d+)\), refiner (\d+) steps \(t < (\d+)\)$")


def webui_request(spec: Spec) -> tuple[dict, dict]:
    """(script args, txt2img fields) of a specification."""
    values = spec.base_values()
    args = {k: v for k, v in spec.refiner_values().items()}
    if spec.kind == "sdxl-base":
        args["refiner"] = BASE
    fields = {
        "prompt": values["prompt"],
        "negative_prompt": values["negative_prompt"],
        "sampler_name": values["sampler"],
        "steps": values["steps"],
    }
    if spec.space == "pixels":
        fields.update(enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.5)
    return args, fields


def expected_plan(spec: Spec, recorded_refiner: str):
    values = spec.base_values()
    p = SimpleNamespace(
        prompt=values["prompt"],
        negative_prompt=values["negative_prompt"],
        sampler_name=values["sampler"],
        scheduler="Automatic",
        enable_hr=spec.space == "pixels",
        hr_sampler_name=None,
        refiner_checkpoint=None,
    )
    refiner_values = dict(spec.refiner_values())
    if spec.kind == "sdxl-base":
        refiner_values["refiner"] = BASE
    facts = webui_facts(p, refiner_values, spec.kind, WEBUI_CONTINUING, spec.space != "sd", spec.reason)
    return plan_refiner(refiner_values, facts, recorded_refiner)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_webui_images_carry_the_planned_infotext(webui, spec):
    args, fields = webui_request(spec)
    images, infotexts = job(webui, args, model=SD15 if spec.space == "sd" else BASE, seed=5, **fields)
    refined = {k: v for k, v in fields_of(infotexts[0]).items() if k.startswith("Post-refiner")}
    plan = expected_plan(spec, refined["Post-refiner"])
    expected = {k: str(v) for k, v in plan.fields().items()}
    if plan.mode == "handoff":
        match = HANDOFF_RE.match(refined.pop(HANDOFF_KEY))
        assert match, infotexts[0]
        base_steps, cutoff, refiner_steps, _ = map(int, match.groups())
        assert cutoff == plan.switch_timestep and base_steps >= 1 and refiner_steps >= 1
        assert base_steps + refiner_steps == spec.base_values()["steps"]
    assert refined == expected
    assert len(images) == (2 if plan.keep_base else 1)
    if plan.keep_base:
        base = {k: v for k, v in fields_of(infotexts[1]).items() if k.startswith("Post-refiner")}
        base.pop(HANDOFF_KEY, None)
        assert base == {**expected, OUTPUT_KEY: "base"}


@pytest.mark.parametrize(("name", "weights", "extra"), REIMAGINE_SPECS, ids=[s[0] for s in REIMAGINE_SPECS])
def test_webui_reimagine_images_carry_the_planned_infotext(webui, name, weights, extra):
    import base64

    from sd_reimagine.images import png_bytes
    from sd_reimagine.infotext import parse_infotext
    from sd_reimagine.reimagine_plan import ReimagineFacts, plan_reimagine

    references = reimagine_references(weights)
    images = [{"image": base64.b64encode(png_bytes(r.image)).decode(), "weight": w} for r, w in references]
    body = {**reimagine_values(extra), "model": UNCLIP, "sampler": "Euler a", "images": images}
    response = webui.post("/reimagine/v1/variations", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    plan = plan_reimagine(reimagine_values(extra), references, ReimagineFacts(result["parameters"]["model"], 1, False))
    assert result["seeds"] == list(plan.seeds)
    for infotext in result["info"]:
        fields = parse_infotext(infotext)[2]
        assert {k: v for k, v in fields.items() if k.startswith("Reimagine")} == planned(plan.fields())
