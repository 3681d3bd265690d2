"""The agent contract and the env surface agents use, written down once as :class:`typing.Protocol` s.

Scripts and the training library drive every agent through :class:`Agent`; they tell agents that play
whole episodes (:class:`RolloutAgent`: the hard recurrent agents, whose glimpse paths can be drawn) from
agents that read what the env shows (:class:`SceneAgent`: soft attention and full-image baselines,
whose attention can be drawn) with ``isinstance`` against these protocols, never by name. An agent
that the actor-critic trainers can train (:mod:`agents.trainers`, ``--algo a2c|ppo``) is also a
:class:`PolicyAgent`: it plays a batch without gradient and replays it (the :mod:`agents.episodes` types). An
agent reads the env only through :class:`EnvSurface`.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from agents.episodes import Episodes, Replayed
from glimpse import RetinaSpec

__all__ = ["EnvSurface", "Agent", "RolloutAgent", "SceneAgent", "PolicyAgent"]


class EnvSurface(Protocol):
    """What agents read of :class:`envs.GlimpseVectorEnv` (a batched glimpse env, ``N`` rows): the env surface
    (not :class:`envs.GlimpseEnv`, the single Gymnasium env)."""

    num_envs: int
    device: torch.device
    single_observation_space: Any
    """``Dict(glimpse=(S, C, g, g), location=(2,))``."""
    single_action_space: Any
    action_mode: str
    """``"continuous"`` or ``"discrete"``."""
    start_mode: str
    """where episodes start looking: ``"random"`` or ``"center"``."""
    episode_steps: int
    """``T``: every row's episode ends after exactly this many steps."""
    max_episode_steps: int | None
    num_decisions: int
    """``D``: classes, or Catch's paddle moves."""
    canvas_shape: tuple[int, int, int]
    retina: RetinaSpec
    """the retina of the glimpses (the pictures draw its windows)."""
    grid: int
    """item-wise attention's grid side (``K = grid * grid`` items)."""

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]: ...

    def step(self, action: Tensor) -> tuple[dict, Tensor, Tensor, Tensor, dict]: ...

    def scene(self) -> tuple[Tensor, Tensor | None]:
        """The current canvases (or videos) and labels."""
        ...

    def item_centers(self) -> Tensor:
        """``(K, 2)`` the grid cells' centres."""
        ...

    def item_glimpses(self) -> Tensor:
        """``(N, K, S, C, g, g)`` every item's glimpse of the current canvases."""
        ...


@runtime_checkable
class Agent(Protocol):
    """An ``nn.Module`` the scripts can train, evaluate and count the FLOPs of (see :mod:`agents.common`)."""

    action_mode: ClassVar[str | None]
    """``"continuous"`` / ``"discrete"``: a hard agent stepping the env in that mode; ``None``: reads ``env.scene()``."""

    def train_losses(self, env: EnvSurface, obs: Any) -> tuple[dict[str, Tensor], Any]:
        """One update's data and losses: ``losses["loss"]`` is minimised, the rest logged as ``train/<name>``."""
        ...

    def evaluate(self, env: EnvSurface, episodes: int, *, mc_samples: int = 1, seed: int = 0) -> dict[str, float]:
        """Metrics over ``episodes`` batched episodes of the test split (at least ``accuracy``)."""
        ...

    def inference(self, env: EnvSurface) -> None:
        """One image's inference pass, what :func:`agents.flops.flops_per_image` counts."""
        ...


@runtime_checkable
class RolloutAgent(Agent, Protocol):
    """An agent that plays whole episodes of the env and returns an :class:`agents.episodes.Rollout`."""

    def rollout(self, env: EnvSurface, obs: dict[str, Tensor], *, deterministic: bool = False) -> tuple[Any, dict]: ...


@runtime_checkable
class SceneAgent(Agent, Protocol):
    """An agent that reads what the env shows and can say where it attended."""

    def scene_inputs(self, env: EnvSurface) -> Tensor: ...

    def attention_maps(self, inputs: Tensor) -> dict[str, Tensor]: ...


@runtime_checkable
class PolicyAgent(Protocol):
    """An agent with a policy that the actor-critic trainers can train (``--algo a2c|ppo``)."""

    def collect(self, env: EnvSurface, obs: Any) -> tuple[Episodes, Any]:
        """Play one batch of whole episodes of ``env`` without gradient, from ``obs``; returns the stored
        :class:`Episodes` and the next observation."""

    def replay(self, episodes: Episodes) -> Replayed:
        """Re-run stored episodes through the current networks (no env), with gradient."""


def __getattr__(name: str):
    # EnvSurface's name until 2026-12, in the README then; envs.GlimpseEnv is the single Gymnasium env.
    if name == "GlimpseEnv":
        warnings.warn("agents.contract.GlimpseEnv is now agents.contract.EnvSurface (envs.GlimpseEnv is the single "
                      "Gymnasium env)", DeprecationWarning, stacklevel=2)
        return EnvSurface
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
