"""The foundation floor: what every other part of vaekit builds on and that imports nothing of it.

The exceptions users catch stay in `vaekit.errors`, on this floor too. Here: the plug-in `registry`, `typecheck`
(values against type hints and ranges), `limits` (the memory budget), `atomic` (whole-or-absent files), `rng`,
`runlock` (one process per run folder), `outputs` (output-path rules), `runtime` (device, precision, threads,
memory limit), `latent_paths` (lerp, slerp) and `distributions` (what torch.distributions lacks).
"""
