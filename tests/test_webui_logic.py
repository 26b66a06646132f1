"""The WebUI adapter's own logic that needs no model, run in CI against a stand-in for the WebUI's lists."""

from __future__ import annotations

import pytest

from sd_reimagine.errors import ParamError
from sd_reimagine.infotext import parse_infotext, write_infotext
from sd_reimagine.refiner_plan import BaseFacts, plan_refiner
from sd_reimagine.webui.host import HostLists
from sd_reimagine.webui.refiner import default_refiner, pasted_values, script_values, webui_group
from sd_reimagine.webui.reimagine import host_group

LISTS = HostLists(
    samplers=("DPM++ 2M", "Euler a", "Euler", "DDIM", "UniPC"),
    schedule_types=("Automatic", "Uniform", "Karras", "Exponential"),
    continuing_samplers=("DPM++ 2M", "Euler a", "Euler"),
    checkpoints_by_kind={
        "sdxl-refiner": ["zeta-refiner.safetensors [1]", "Alpha-Refiner.safetensors [2]"],
        "sdxl-base": ["base.safetensors"],
        "sd": ["sd15.safetensors"],
    },
)


def test_groups_take_the_webuis_lists():
    refiner = webui_group(LISTS)
    assert refiner["refiner_sampler"].choices == ("", *LISTS.samplers)
    assert refiner["refiner_schedule_type"].choices == ("", *LISTS.schedule_types)
    assert refiner["refiner"].default == "Alpha-Refiner.safetensors [2]"  # first refiner, case-insensitive order
    reimagine = host_group(LISTS)
    assert reimagine["sampler"].choices == ("Default", *LISTS.samplers) and reimagine["model"].default == ""
    assert reimagine["schedule_type"].choices == LISTS.schedule_types


def test_default_refiner_is_empty_without_refiners():
    assert default_refiner(HostLists((), (), (), {"sd": ["a"]})) == ""


def test_script_values_forms_and_overrides():
    positional = [True, "r", "refine", 0.8, 0.5, 10]
    values = script_values(positional, lists=LISTS)
    assert values["refiner_mode"] == "refine" and values["refine_strength"] == 0.5 and values["refiner_steps"] == 10
    assert script_values([{"enabled": True, "refiner": "r"}], strict=True, lists=LISTS)["refiner"] == "r"
    with pytest.raises(ParamError, match="refiner_steps=2.5"):
        script_values([{"enabled": True, "refiner": "r", "refiner_steps": 2.5}], strict=True, lists=LISTS)
    # an X/Y/Z axis on a post-refiner parameter asks for the post-step even when the accordion is closed
    overridden = script_values([False, "r"], overrides={"switch_at": 0.6}, lists=LISTS)
    assert overridden["enabled"] and overridden["switch_at"] == 0.6
    with pytest.raises(ParamError, match="refiner_sampler='Nope'"):
        script_values([{"enabled": True, "refiner": "r", "refiner_sampler": "Nope"}], lists=LISTS)


@pytest.mark.parametrize("mode", ["handoff", "refine"])
def test_paste_back_restores_the_job(mode):
    values = script_values(
        [
            {
                "enabled": True,
                "refiner": "r",
                "refiner_mode": mode,
                "refiner_prompt": "gold, 8k: sharp",
                "refiner_steps": 8,
            }
        ],
        lists=LISTS,
    )
    facts = BaseFacts("p", "", "Euler", "Automatic", "sdxl", "sdxl-refiner")
    plan = plan_refiner(values, facts, "r [abc]")
    infotext = write_infotext("a crown", "", {"Steps": 20, "Seed": 1, **plan.fields()})
    pasted = pasted_values(parse_infotext(infotext)[2], LISTS)
    skipped = {"handoff": ("refine_strength", "refiner_steps"), "refine": ("switch_at",)}[mode]
    expected = {k: v for k, v in values.items() if k not in skipped}
    assert {k: v for k, v in pasted.items() if k not in skipped} == {**expected, "refiner": "r [abc]"}
    assert pasted_values(parse_infotext(write_infotext("a crown", "", {"Steps": 20, "Seed": 1}))[2], LISTS) is None


def host_parts() -> list[str]:
    """The HostProfile methods each host must fill in (the base raises NotImplementedError)."""
    import inspect

    from sd_reimagine.webui.profile import HostProfile

    return [
        name
        for name, member in vars(HostProfile).items()
        if inspect.isfunction(member) and "raise NotImplementedError" in inspect.getsource(member)
    ]


def test_each_host_profile_fills_in_every_host_part():
    from sd_reimagine.webui.a1111.profile import A1111Profile
    from sd_reimagine.webui.forge.profile import ForgeProfile
    from sd_reimagine.webui.profile import HostProfile

    parts = host_parts()
    assert {"swapped_checkpoint", "alphas_cumprod", "run_reimagine"} <= set(parts)
    for profile in (A1111Profile, ForgeProfile):
        assert [name for name in parts if getattr(profile, name) is getattr(HostProfile, name)] == [], profile
    assert (A1111Profile.name, ForgeProfile.name) == ("", "forge")  # GET /version reports `host` on Forge only


def test_a_profiles_sampler_lists_make_its_parameter_group():
    from sd_reimagine.webui.profile import HostProfile

    class ListedHost(HostProfile):
        def lists(self) -> HostLists:
            return LISTS

    group = ListedHost().host_group()
    assert group["sampler"].choices[1:] == LISTS.samplers
    assert group["schedule_type"].choices == LISTS.schedule_types
