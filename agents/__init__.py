"""Attention agents built on the glimpse core: RAM (hard, REINFORCE) and full-image baselines.

- :mod:`agents.ram` — Mnih et al., "Recurrent Models of Visual Attention" (NIPS 2014).
- :mod:`agents.baselines` — the paper's full-image FC and conv classifiers.
- :mod:`agents.flops` — FLOPs per image, for comparing models at equal compute.
"""
