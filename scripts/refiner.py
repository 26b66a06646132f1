"""AlwaysVisible script: the SDXL Refiner post-step accordion in txt2img and img2img (glue; logic in the package:
sd_reimagine.webui with the host's profile, sd_reimagine.webui.forge in Forge, else sd_reimagine.webui.a1111)."""

import importlib.util

from modules import script_callbacks, scripts

from sd_reimagine.webui import refiner_ui, xyz

FORGE = bool(importlib.util.find_spec("backend") and importlib.util.find_spec("modules_forge"))
if FORGE:
    from sd_reimagine.webui.forge import refiner

    def limit_warning():
        return None
else:
    from sd_reimagine.webui.a1111 import refiner
    from sd_reimagine.webui.a1111.swap import limit_warning


class ReimagineRefinerScript(scripts.Script):
    """Runs the SDXL refiner after the base sampler (handoff at a switch point, or refine of the base output)."""

    section = "accordions"

    def title(self):
        return "Reimagine SDXL Refiner"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        note = limit_warning()  # A1111's sd_checkpoints_limit note (Forge keeps one model: none)
        components, self.infotext_fields = refiner_ui.build_ui(self.elem_id("reimagine_refiner"), note=note)
        return components

    def before_process(self, p, *args):
        refiner.before_process(p, args)

    def process_before_every_sampling(self, p, *args, **kwargs):
        refiner.before_sampling(p)

    def post_sample(self, p, ps, *args):
        refiner.post_sample(p, ps)

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        if hasattr(refiner, "postprocess_batch_list"):
            refiner.postprocess_batch_list(p, pp)

    def postprocess(self, p, processed, *args):
        refiner.postprocess(p, processed)


script_callbacks.on_before_ui(xyz.register_axes)
