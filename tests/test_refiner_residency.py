"""The refiner plan's residency rule (offline): one refiner load per job where a swap would load a checkpoint, batch
by batch where base and refiner both stay resident; the WebUI setting forces either. The hosts only report facts:
A1111 from `sd_checkpoints_limit`, Forge always one resident model. tests/webui/test_residency_webui.py runs both
branches in a real WebUI and compares their images, infotexts and saved files."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sd_reimagine.refiner_plan import (
    NOTE_KEY,
    RESIDENCY_AUTO,
    RESIDENCY_BATCH,
    RESIDENCY_CHOICES,
    RESIDENCY_ONE,
    plan_refiner,
)
from sd_reimagine.schema import REFINER
from sd_reimagine.webui.a1111.swap import swap_would_load
from sd_reimagine.webui.refiner_job import webui_facts

CONTINUING = ("Euler", "Euler a")
VALUES = REFINER.validate({"enabled": True, "refiner": "xl-refiner"})


def job(n_iter: int = 4, **extra) -> SimpleNamespace:
    """A stand-in for the WebUI's processing object: a txt2img job of `n_iter` batches."""
    return SimpleNamespace(
        prompt="a fox", negative_prompt="", sampler_name="Euler", scheduler="", n_iter=n_iter, **extra
    )


def plan_for(p, residency: str = RESIDENCY_AUTO, swap_loads: bool = True):
    facts = webui_facts(p, VALUES, "sdxl-refiner", CONTINUING, True, residency=residency, swap_loads=swap_loads)
    return plan_refiner(VALUES, facts, "xl-refiner")


@pytest.mark.parametrize(
    ("residency", "swap_loads", "one"),
    [
        (RESIDENCY_AUTO, True, True),  # A1111 limit 1, Forge: a swap is a load, so one load per job
        (RESIDENCY_AUTO, False, False),  # A1111 limit 2: both resident, batch by batch is cheaper
        (RESIDENCY_ONE, False, True),  # the setting forces one residency
        (RESIDENCY_BATCH, True, False),  # ... or batch by batch
        (RESIDENCY_ONE, True, True),
        (RESIDENCY_BATCH, False, False),
    ],
)
def test_residency_follows_the_swap_cost_unless_the_setting_forces_it(residency, swap_loads, one):
    plan = plan_for(job(), residency, swap_loads)
    assert plan.one_residency is one
    assert NOTE_KEY not in plan.fields()  # the infotext is the same whichever residency runs


@pytest.mark.parametrize("residency", RESIDENCY_CHOICES)
def test_a_single_batch_is_never_deferred(residency):
    assert not plan_for(job(n_iter=1), residency).one_residency


def test_a_job_that_cannot_wait_says_so_only_when_one_residency_was_wanted():
    inpaint = job(image_mask=object())
    wanted = plan_for(inpaint, RESIDENCY_AUTO, swap_loads=True)
    assert not wanted.one_residency
    assert "refiner loaded for every batch (inpainting overlays" in wanted.fields()[NOTE_KEY]
    assert NOTE_KEY not in plan_for(inpaint, RESIDENCY_AUTO, swap_loads=False).fields()
    assert NOTE_KEY not in plan_for(inpaint, RESIDENCY_BATCH, swap_loads=True).fields()


@pytest.mark.parametrize(
    ("limit", "checkpoints", "loads"),
    [
        (1, ["base", "base", "refiner"], True),  # txt2img: the user's model is the base
        (2, ["base", "base", "refiner"], False),
        (2, ["user", "reimagine-xl", "refiner"], True),  # after Reimagine: three models take turns
        (3, ["user", "reimagine-xl", "refiner"], False),
        (2, ["", "base", "refiner"], False),  # no user model recorded yet
    ],
)
def test_a1111_swap_loads_when_the_job_needs_more_models_than_the_limit_keeps(limit, checkpoints, loads):
    assert swap_would_load(limit, checkpoints) is loads


def test_the_old_checkbox_off_still_means_batch_by_batch():
    from sd_reimagine.webui.settings import REFINER_ONE_RESIDENCY, REFINER_RESIDENCY, residency_from

    assert residency_from({}) == RESIDENCY_AUTO
    assert residency_from({REFINER_ONE_RESIDENCY: True}) == RESIDENCY_AUTO
    assert residency_from({REFINER_ONE_RESIDENCY: False}) == RESIDENCY_BATCH
    assert residency_from({REFINER_ONE_RESIDENCY: False, REFINER_RESIDENCY: RESIDENCY_ONE}) == RESIDENCY_ONE
    assert residency_from({REFINER_RESIDENCY: "sometimes"}) == RESIDENCY_AUTO
