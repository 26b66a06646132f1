"""The A1111 profile (AUTOMATIC1111 stable-diffusion-webui 1.10): the only code needing A1111-only names (its ldm/sgm
models, `sd_models.reload_model_weights`, `sd_checkpoints_limit`, its VAE bookkeeping).

- `swap.py`: a checkpoint swapped in with `reload_model_weights`, the user's model and VAE always put back;
- `reimagine.py`: unCLIP on A1111's own ldm unCLIP model (embedder, noise augmentor), Reimagine XL on its SDXL model;
- `refiner.py`: the SDXL Refiner post-step hooks with A1111's facts, swap and the refiner's own VAE;
- `api.py`, `tab.py`: the shared routes and tab with A1111's job runner.
"""
