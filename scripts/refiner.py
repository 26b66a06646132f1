"""AlwaysVisible script: the SDXL Refiner post-step accordion in txt2img and img2img (glue; logic in the package)."""

from modules import script_callbacks, scripts

from sd_reimagine.webui import refiner, refiner_ui, xyz


class ReimagineRefinerScript(scripts.Script):
    """Runs the SDXL refiner after the base sampler (handoff at a switch point, or refine of the base output)."""

    section = "accordions"

    def title(self):
        return "Reimagine SDXL Refiner"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        components, self.infotext_fields = refiner_ui.build_ui(self.elem_id("reimagine_refiner"))
        return components

    def before_process(self, p, *args):
        refiner.before_process(p, args)

    def process_before_every_sampling(self, p, *args, **kwargs):
        refiner.before_sampling(p)

    def post_sample(self, p, ps, *args):
        refiner.post_sample(p, ps)

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        refiner.postprocess_batch_list(p, pp)

    def postprocess(self, p, processed, *args):
        refiner.postprocess(p, processed)


script_callbacks.on_before_ui(xyz.register_axes)
