"""The agents by name: one table, ``AGENTS``, read at the edge (the command line, the training library).

Each entry is an :class:`AgentSpec`: the name ``--agent`` takes, where the agent sits in the project's
taxonomy (hard / soft / baseline attention, over items or locations), its class, its own options
dataclass (whose fields are its command-line flags) and how it is built from an env. Adding an agent is
one module plus one :func:`register_agent` call::

    from dataclasses import dataclass
    from agents import AgentSpec, register_agent
    from agents.common import SceneClassifier

    @dataclass
    class TinyOptions:
        hidden: int = 32
        \"\"\"width of the hidden layer\"\"\"

    class Tiny(SceneClassifier):
        def __init__(self, canvas_shape, num_classes, hidden=32): ...
        def forward(self, images): ...

    register_agent(AgentSpec("tiny", Tiny, TinyOptions, family="baseline", title="tiny MLP"))

``python scripts/train.py --plugins my_module --agent tiny --hidden 64`` then trains it.
"""

from __future__ import annotations

from collections.abc import Callable
import warnings
from dataclasses import InitVar, asdict, dataclass, field
from typing import Any, Literal

from torch import nn

from agents.baselines import ConvClassifier, FCClassifier
from agents.itemwise import HardItemAttention, HardItemOptions, SoftItemAttention, SoftItemOptions
from agents.racnn import RACNN, RACNNOptions
from agents.ram import RAM, RAMOptions
from agents.spatial import SpatialOptions, SpatialSoftAttention
from agents.stn import SpatialTransformerClassifier, STNOptions

__all__ = ["AgentSpec", "AGENTS", "register_agent", "NoOptions"]


@dataclass
class NoOptions:
    """An agent without options of its own."""


def _from_env(spec: AgentSpec, env, options: Any, **extra: Any) -> nn.Module:
    """The default build: ``spec.cls.from_env(env, **options, **extra)``, options by their field names."""
    return spec.cls.from_env(env, **asdict(options), **extra)


@dataclass(frozen=True)
class AgentSpec:
    """One registered agent.

    Args:
        name: what ``--agent`` takes.
        cls: the model class (an ``nn.Module`` following :class:`agents.common.Agent`).
        options: the dataclass of the agent's own options; its fields are command-line flags (their
            docstrings the flags' help) and are saved with a run.
        family: the taxonomy: ``"hard"`` (REINFORCE over what to look at), ``"soft"`` (differentiable
            attention) or ``"baseline"`` (the whole image).
        attends: ``"location"``, ``"item"``, or ``None`` (baselines).
        title: its name in tables and legends.
        build: ``build(spec, env, options, **extra) -> model``; default
            ``spec.cls.from_env(env, **asdict(options), **extra)`` (``extra``: what the run adds, the
            trainer's ``entropy_coef`` for the recurrent hard agents).
        still_only: it classifies still images (labelled canvases): refused on video and games.
        env_kwargs: ``env_kwargs(options) -> dict`` what the agent needs of the env it trains on
            (e.g. ``action_mode``, ``start``); merged into the env's keyword arguments.
        kind: ``family``'s old name, deprecated (``kind`` is a task's still/video/game).
    """

    name: str
    cls: type[nn.Module]
    options: type = NoOptions
    family: Literal["hard", "soft", "baseline"] = "baseline"
    attends: Literal["location", "item"] | None = None
    title: str = ""
    build: Callable[..., nn.Module] = _from_env
    still_only: bool = False
    env_kwargs: Callable[[Any], dict] = field(default=lambda options: {})
    kind: InitVar[str | None] = None

    def __post_init__(self, kind: str | None) -> None:
        if kind is not None:
            warnings.warn("AgentSpec(kind=...) is now AgentSpec(family=...)", DeprecationWarning, stacklevel=3)
            object.__setattr__(self, "family", kind)

    def make(self, env, options: Any = None, **extra: Any) -> nn.Module:
        """The model for ``env`` with ``options`` (default: the options' defaults) and ``extra`` keywords."""
        return self.build(self, env, options if options is not None else self.options(), **extra)


#: Every agent ``--agent`` knows, by name.
AGENTS: dict[str, AgentSpec] = {}


def register_agent(spec: AgentSpec, *, replace: bool = False) -> AgentSpec:
    """Add ``spec`` to :data:`AGENTS` under ``spec.name`` (``replace=True`` to overwrite one)."""
    if spec.name in AGENTS and not replace:
        raise ValueError(f"agent {spec.name!r} is already registered; pass replace=True to overwrite it")
    if spec.family not in ("hard", "soft", "baseline"):
        raise ValueError(f"family must be 'hard', 'soft' or 'baseline'; got {spec.family!r}")
    AGENTS[spec.name] = spec
    return spec


def _continuous(options: Any) -> dict:
    return {"action_mode": "continuous", "start": "center" if options.location == "center" else "random",
            **_gist(options)}


def _gist(options: Any) -> dict:
    """A hard agent with a gist needs the env's coarse view of the same side."""
    return {"gist": options.gist} if options.gist else {}


register_agent(AgentSpec("ram", RAM, RAMOptions, family="hard", attends="location", title="RAM", env_kwargs=_continuous))
register_agent(AgentSpec("item-hard", HardItemAttention, HardItemOptions, family="hard", attends="item",
                         title="item-wise hard", env_kwargs=lambda options: {"action_mode": "discrete", **_gist(options)}))
register_agent(AgentSpec("item-soft", SoftItemAttention, SoftItemOptions, family="soft", attends="item",
                         title="item-wise soft", still_only=True))
register_agent(AgentSpec("spatial-soft", SpatialSoftAttention, SpatialOptions, family="soft", attends="location",
                         title="spatial soft", still_only=True))
register_agent(AgentSpec("stn", SpatialTransformerClassifier, STNOptions, family="soft", attends="location",
                         title="Spatial Transformer", still_only=True,
                         build=lambda spec, env, o: spec.cls.from_env(env, **o.kwargs())))
for _attention in ("soft", "hard"):
    register_agent(AgentSpec(f"racnn-{_attention}", RACNN, RACNNOptions, family=_attention, attends="location",
                             title=f"RA-CNN {_attention}", still_only=True,
                             build=lambda spec, env, o, a=_attention: spec.cls.from_env(env, attention=a, **o.kwargs())))
register_agent(AgentSpec("fc", FCClassifier, family="baseline", title="FC", still_only=True))
register_agent(AgentSpec("conv", ConvClassifier, family="baseline", title="conv", still_only=True))
