"""Attention agents built on the glimpse core, by the project's taxonomy.

|      | item-wise | location-wise |
|------|-----------|---------------|
| hard | :class:`agents.itemwise.HardItemAttention` | :class:`agents.ram.RAM` |
| soft | :class:`agents.itemwise.SoftItemAttention` | :class:`agents.spatial.SpatialSoftAttention`, :class:`agents.stn.SpatialTransformerClassifier` |

- :mod:`agents.common` — the one contract every agent follows for the scripts, and the shared soft reader.
- :mod:`agents.ram` — Mnih et al., "Recurrent Models of Visual Attention" (NIPS 2014).
- :mod:`agents.itemwise` — Xu et al., "Show, Attend and Tell" (ICML 2015): hard and soft over grid cells.
- :mod:`agents.spatial` — soft attention maps over a CNN feature map.
- :mod:`agents.stn` — Jaderberg et al., "Spatial Transformer Networks" (NIPS 2015).
- :mod:`agents.baselines` — the RAM paper's full-image FC and conv classifiers.
- :mod:`agents.flops` — FLOPs per image, for comparing models at equal compute.
"""
