"""GPU benchmark: the standalone host against diffusers' own pipelines on real architectures (see __main__)."""
