"""The Forge profile (lllyasviel/stable-diffusion-webui-forge): the only code importing `modules_forge` / `backend`.

Forge keeps A1111's `modules.*` front end (processing, samplers, scripts, UI helpers) on its own backend, so the
WebUI family's shared code (`sd_reimagine.webui`) runs here and this package supplies what Forge does differently:
- `swap.py`: checkpoints change through `main_entry.checkpoint_change` + `forge_model_reload` (the idiom of Forge's
  own hires fix and refiner), the user's checkpoint and additional modules put back in `finally`;
- `reimagine.py`: which engine runs a Reimagine job (and the job's parameters: Forge's samplers and schedules);
- `unclip.py`, `unclip_tower.py`: Stable unCLIP-H/-L on Forge's own SD 2 engine, loader, memory manager, processing
  and samplers (the image tower from the checkpoint via Forge's clipvision; v-prediction forced);
- `unclip_diffusers.py`: the diffusers fallback for a Forge without the SD 2 engine or a file it does not load;
- `reimagine_xl.py`: Reimagine XL (an SDXL base) on Forge's own SDXL engine, samplers and processing;
- `refiner.py`: the SDXL Refiner post-step hooks with the Forge swap;
- `api.py`, `tab.py`: the shared routes and tab with Forge's job runner.
"""
