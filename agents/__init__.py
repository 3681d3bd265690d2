"""Attention agents built on the glimpse core, by the project's taxonomy.

|      | item-wise | location-wise |
|------|-----------|---------------|
| hard | :class:`agents.itemwise.HardItemAttention` | :class:`agents.ram.RAM` |
| soft | :class:`agents.itemwise.SoftItemAttention` | :class:`agents.spatial.SpatialSoftAttention`, :class:`agents.stn.SpatialTransformerClassifier` |

- :mod:`agents.registry` — ``AGENTS``: every agent by its ``--agent`` name, with its options dataclass.
- :mod:`agents.contract` — the agent contract and the env surface agents use, as ``typing.Protocol`` s.
- :mod:`agents.recurrent` — the shared glimpse and core networks and the one rollout of every hard
  recurrent agent, with pluggable where-to-look and decision heads.
- :mod:`agents.common` — the scene classifiers' base class and the shared soft reader.
- :mod:`agents.ram` — Mnih et al., "Recurrent Models of Visual Attention" (NIPS 2014).
- :mod:`agents.itemwise` — Xu et al., "Show, Attend and Tell" (ICML 2015): hard and soft over grid cells.
- :mod:`agents.spatial` — soft attention maps over a CNN feature map.
- :mod:`agents.stn` — Jaderberg et al., "Spatial Transformer Networks" (NIPS 2015).
- :mod:`agents.racnn` — Fu et al., "Look Closer to See Better" (CVPR 2017), soft and hard.
- :mod:`agents.baselines` — the RAM paper's full-image FC and conv classifiers.
- :mod:`agents.flops` — FLOPs per image, for comparing models at equal compute.
- :mod:`agents.training` — the training library behind ``scripts/`` in one namespace, re-exported from one
  module per job: :mod:`agents.config` (the run's configuration), :mod:`agents.cli` (the command line),
  :mod:`agents.build` (env, agent and trainer), :mod:`agents.provenance` (the data a run used),
  :mod:`agents.evaluation`, :mod:`agents.pictures`, :mod:`agents.health` (non-finite values stop a run),
  :mod:`agents.run_folder` (lock, checkpoint, resume), :mod:`agents.sweep` (many runs) and
  :mod:`agents.scripting` (errors and exit statuses).
"""

from agents.registry import AGENTS, AgentSpec, register_agent

__all__ = ["AGENTS", "AgentSpec", "register_agent"]
