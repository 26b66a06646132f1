"""AlwaysVisible script: the SDXL Refiner post-step accordion in txt2img and img2img (glue; logic in the package:
sd_reimagine.webui on the host's profile, sd_reimagine.webui.forge in Forge, else sd_reimagine.webui.a1111)."""

import importlib.util

from modules import script_callbacks, scripts

from sd_reimagine.webui import refiner_ui, xyz

if importlib.util.find_spec("backend") and importlib.util.find_spec("modules_forge"):
    from sd_reimagine.webui.forge.profile import ForgeProfile as Profile
else:
    from sd_reimagine.webui.a1111.profile import A1111Profile as Profile

PROFILE = Profile()


class ReimagineRefinerScript(scripts.Script):
    """Runs the SDXL refiner after the base sampler (handoff at a switch point, or refine of the base output)."""

    section = "accordions"

    def title(self):
        return "Reimagine SDXL Refiner"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        note = PROFILE.swap_note()
        components, self.infotext_fields = refiner_ui.build_ui(self.elem_id("reimagine_refiner"), note=note)
        return components

    def before_process(self, p, *args):
        PROFILE.before_process(p, args)

    def process_before_every_sampling(self, p, *args, **kwargs):
        PROFILE.before_sampling(p)

    def post_sample(self, p, ps, *args):
        PROFILE.post_sample(p, ps)

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        PROFILE.postprocess_batch_list(p, pp)

    def postprocess(self, p, processed, *args):
        PROFILE.postprocess(p, processed)


script_callbacks.on_before_ui(xyz.register_axes)
