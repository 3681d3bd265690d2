"""One rollout for every hard, recurrent glimpse agent: shared networks, pluggable heads, one loop.

A hard recurrent agent (RAM, item-wise hard attention, a no-attention ablation) is the same machine
with different heads. Per step ``t = 1..T`` of a batched episode of :class:`envs.GlimpseVectorEnv`:

1. :class:`GlimpseNetwork` encodes the glimpse the env returned and where it was taken,
   ``g_t = f_g(x_t, l_{t-1})`` (Mnih et al. 2014, Fig. 1B);
2. :class:`CoreNetwork` folds it into the recurrent state, ``h_t = f_h(h_{t-1}, g_t)``;
3. the **where head** (``agent.locator``) picks what to look at next -- :class:`GaussianLocationHead`
   (a location, RAM), :class:`CategoricalItemHead` (one of the env's grid cells, Show, Attend and Tell's
   hard attention) or :class:`FixedCentreHead` (always the centre: an ablation without attention);
4. the **decision head** acts -- :class:`ClassifyHead` (class scores at the last step) or
   :class:`PaddleHead` (Catch's paddle move at every step, a second policy);
5. a learned baseline ``b_t`` estimates the return-to-go; the env steps with ``(where, decision)``.

:func:`rollout` is that loop, written once, filling an :class:`agents.episodes.EpisodeBuffer` step by
step; :class:`~agents.episodes.Rollout` is what it returns, per step, for a policy-gradient trainer: the
log-probabilities and entropies of both policies, the baselines, the rewards and returns, and the recurrent
states ``h_t`` the actions were chosen from. Every pass over glimpses -- the rollout's steps, PPO's replay
of stored episodes (:meth:`HardRecurrentAgent.replay`), one image's inference, SAT's items -- encodes them
with :meth:`HardRecurrentAgent.encode` and folds them with the core. :func:`hybrid_losses` is RAM's loss
(cross-entropy + REINFORCE with the learned baseline), and :func:`evaluate_rollouts` the accuracy with the mean
locations and over ``K`` sampled rollouts.

The heads' contract is written down as two protocols, checked when an agent is built: a
:class:`WhereHead` says which env action mode it needs, checks an env, looks (:class:`Look`), scores stored
choices, and at each episode's start says how the episode feeds the core and looks (:class:`Looking`, or
SAT's :class:`ExpectedContext`); a :class:`DecisionHead` decides (:class:`Decision`), scores, and names its
policy (None for a classifier). The agent keeps them as ``locator`` and ``decider``.

Locations are normalized ``(x, y)`` in the project's convention, stated once in :mod:`glimpse`.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, ClassVar, Literal, Protocol, runtime_checkable

import torch
from gymnasium.vector import AutoresetMode
import torch.nn.functional as F
from torch import Tensor, nn

from agents.episodes import EpisodeBuffer, Episodes, Replayed, Rollout
from agents.ranges import Range
from glimpse import scale_gains
from glimpse.checks import check_finite, check_number, check_positive_int
from glimpse.policies import CategoricalItemPolicy, GaussianLocationPolicy
from glimpse.reinforce import reinforce_loss
from glimpse.rewards import label_log_prob, prediction_reward, uniform_log_prob

__all__ = [
    "GlimpseNetwork", "GlimpseConv", "CoreNetwork", "ContextNetwork",
    "Look", "WhereHead", "Looking", "ExpectedContext", "GaussianLocationHead", "CategoricalItemHead", "FixedCentreHead",
    "Decision", "DecisionHead", "ClassifyHead", "PaddleHead",
    "HardRecurrentOptions", "HardRecurrentAgent", "Rollout", "rollout", "gist_shape_of", "hybrid_losses", "classifier_loss", "gain_rewards", "evaluate_rollouts",
    "episode_steps", "check_lockstep", "CREDITS",
]

CORES = ("rnn", "lstm")
ENCODERS = ("linear", "conv")
CREDITS = ("final", "gain")
"""How the looks are credited: ``"final"``, the env's reward alone (1 for a correct final answer); ``"gain"``, each
step also by the gain it brought in the log-probability of the true class (:func:`gain_rewards`)."""


@dataclass
class HardRecurrentOptions:
    """The options every hard recurrent agent has (``--agent ram`` and ``item-hard`` flags; :class:`agents.ram.RAMOptions`
    and :class:`agents.itemwise.HardItemOptions` add their own); :class:`HardRecurrentAgent`'s keywords of the same names."""

    step_ce: Annotated[float, Range(0)] = 0.0
    """hard agents: weight of the classifier's cross-entropy at every glimpse, added to the last one's (0: last only)"""
    credit: Literal["final", "gain"] = "final"
    """hard agents: reward the looks by the final answer alone, or also each by its gain in log p(true class)"""
    final_reward: bool = True
    """hard agents: with --credit gain, keep the final 0/1 reward beside the gains"""
    glimpse_encoder: Literal["linear", "conv"] = "linear"
    """hard agents: the glimpse network's reading of the pixels: linear (the paper's) or conv (two convolutions first)"""
    gist: Annotated[int, Range(0)] = 0
    """hard agents: also read the whole canvas at this side (must divide it), as DRAM's context network: it sets the
    initial state of a second recurrent layer that the where head reads (0: no gist)"""


# ------------------------------------------------------------------------------------------------
# Shared networks: the glimpse network f_g and the core f_h
# ------------------------------------------------------------------------------------------------


class GlimpseNetwork(nn.Module):
    r"""``g_t = ReLU(Linear(h_g) + Linear(h_l))`` with ``h_g = ReLU(Linear(rho(x_t, l_{t-1})))``, ``h_l = ReLU(Linear(l_{t-1}))``.

    Convention:
        ``glimpse`` is the env's ``(N, S, C, g, g)`` retina output in ``[0, 1]``, flattened per row;
        ``location`` is ``(N, 2)``, ``(x, y)`` in ``[-1, 1]`` (the centre the glimpse was taken at).
        Output ``(N, out_size)``. The paper's sizes: 128 for ``h_g`` and ``h_l``, 256 for ``g``.

    Args:
        glimpse_numel: ``S * C * g * g``.
        glimpse_hidden: width of ``h_g``.
        location_hidden: width of ``h_l``.
        out_size: width of ``g_t``.
        scales: ``S``, the retina's scales (read only with ``scale_gain``).
        scale_gain: scale ``k`` is multiplied by ``scale_gain**k`` before ``rho`` is flattened
            (:func:`glimpse.retina.scale_gains`; 4 makes a factor-2 retina's means sums, so a 1-px object reads 1
            at every scale); 1, the paper's network, reads the means as they are.
        encoder: ``"linear"`` (the paper's ``h_g = ReLU(Linear(rho))``) or ``"conv"`` (:class:`GlimpseConv`: two
            convolutions over the scales stacked as channels before the linear layer, needs ``glimpse_shape``).
        glimpse_shape: ``(S, C, g, g)``, for ``encoder="conv"``.
    """

    def __init__(self, glimpse_numel: int, glimpse_hidden: int = 128, location_hidden: int = 128,
                 out_size: int = 256, *, scales: int = 1, scale_gain: float = 1.0, encoder: str = "linear",
                 glimpse_shape: tuple[int, int, int, int] | None = None) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}; got {encoder!r}")
        self.register_buffer("scale_gains", scale_gains(scales, scale_gain), persistent=False)  # (S, 1, 1, 1)
        self.amplify = float(scale_gain) != 1.0
        if encoder == "conv":
            self.what = GlimpseConv(glimpse_shape, glimpse_hidden)  # theta_g^0, convolutional
        else:
            self.what = nn.Linear(glimpse_numel, glimpse_hidden)  # theta_g^0
        self.where = nn.Linear(2, location_hidden)  # theta_g^1
        self.what_out = nn.Linear(glimpse_hidden, out_size)  # theta_g^2, the h_g half
        self.where_out = nn.Linear(location_hidden, out_size, bias=False)  # theta_g^2, the h_l half
        self.out_size = out_size

    def forward(self, glimpse: Tensor, location: Tensor) -> Tensor:
        if self.amplify:
            glimpse = glimpse * self.scale_gains  # (N, S, C, g, g)
        h_g = F.relu(self.what(glimpse.flatten(1)))  # (N, glimpse_hidden); GlimpseConv unflattens
        h_l = F.relu(self.where(location))  # (N, location_hidden)
        return F.relu(self.what_out(h_g) + self.where_out(h_l))  # (N, out_size)


def conv_features(in_channels: int, side: int, channels: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """3x3 convolutions of ``channels`` (padding 1; the first of stride 1, the others of stride 2), a ReLU after each,
    flattened: the module, and its output width for a ``(N, in_channels, side, side)`` input."""
    layers: list[nn.Module] = []
    for i, out in enumerate(channels):
        stride = 1 if i == 0 else 2
        layers += [nn.Conv2d(in_channels, out, 3, stride=stride, padding=1), nn.ReLU()]
        in_channels, side = out, (side - 1) // stride + 1
    return nn.Sequential(*layers, nn.Flatten()), in_channels * side * side


class GlimpseConv(nn.Module):
    r"""A convolutional ``theta_g^0``: the ``S`` scales of a glimpse stacked as ``S * C`` channels, a 3x3 convolution
    of 32 channels and one of 64 with stride 2 (ReLU after each), then ``Linear`` to ``out_size``.

    Convention: input ``(N, S * C * g * g)`` (the flattened glimpse, as the linear encoder reads it); output
    ``(N, out_size)`` before the glimpse network's ReLU.
    """

    def __init__(self, glimpse_shape: tuple[int, int, int, int], out_size: int) -> None:
        super().__init__()
        scales, channels, side, _ = glimpse_shape
        self.image_shape = (scales * channels, side, side)
        self.features, width = conv_features(scales * channels, side, (32, 64))
        self.out = nn.Linear(width, out_size)

    def forward(self, flat: Tensor) -> Tensor:
        return self.out(self.features(flat.view(-1, *self.image_shape)))


class CoreNetwork(nn.Module):
    r"""``h_t = f_h(h_{t-1}, g_t)``: the paper's rectifier RNN ``ReLU(Linear(h_{t-1}) + Linear(g_t))``, or an LSTM.

    Convention:
        ``g`` is ``(N, input_size)``; the state is ``h`` ``(N, hidden_size)`` for ``"rnn"`` and the pair
        ``(h, c)`` for ``"lstm"`` (``nn.LSTMCell``; bounded ``h``, steadier under REINFORCE alone). Both
        start at zero (:meth:`initial_state`). ``forward`` returns ``(h_t, state_t)``.

    Args:
        input_size: width of ``g_t``.
        hidden_size: width of ``h_t`` (256 in the paper).
        core: ``"rnn"`` or ``"lstm"`` (an agent's ``core`` option).
    """

    def __init__(self, input_size: int = 256, hidden_size: int = 256, core: str = "rnn") -> None:
        super().__init__()
        if core not in CORES:
            raise ValueError(f"core must be one of {CORES}; got {core!r}")
        self.core, self.hidden_size = core, hidden_size
        if core == "rnn":
            self.from_input = nn.Linear(input_size, hidden_size)
            self.from_hidden = nn.Linear(hidden_size, hidden_size, bias=False)
        else:
            self.cell = nn.LSTMCell(input_size, hidden_size)

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> Any:
        return self.state_from(torch.zeros(batch_size, self.hidden_size, device=device))

    def state_from(self, h: Tensor) -> Any:
        """The state whose output is ``h`` ``(N, hidden)``: ``h`` itself (``"rnn"``), or ``(h, 0)`` (``"lstm"``)."""
        return h if self.core == "rnn" else (h, torch.zeros_like(h))

    def forward(self, g: Tensor, state: Any) -> tuple[Tensor, Any]:
        if self.core == "rnn":
            h = F.relu(self.from_hidden(state) + self.from_input(g))  # (N, hidden)
            return h, h
        h, c = self.cell(g, state)  # (N, hidden) each
        return h, (h, c)


class ContextNetwork(nn.Module):
    r"""DRAM's context network (Ba, Mnih & Kavukcuoglu 2015): three convolutions over a coarse view of the whole
    canvas, the initial state of the where-path's own recurrent layer ``r^(2)``.

    Convention:
        ``gist`` is the env's ``(N, C, G, G)`` view (``obs["gist"]``, :func:`glimpse.coarse_view`) in ``[0, 1]``;
        output ``(N, out_size)``. Layers: 3x3 convolutions of 16, 32 and 32 channels (the last two of stride 2),
        ReLU after each, then ``ReLU(Linear(...))``.

    Args:
        gist_shape: ``(C, G, G)``.
        out_size: width of the output (the where-path's state).
    """

    def __init__(self, gist_shape: tuple[int, int, int], out_size: int = 256, channels: tuple[int, ...] = (16, 32, 32)) -> None:
        super().__init__()
        self.features, width = conv_features(gist_shape[0], gist_shape[-1], channels)
        self.out = nn.Linear(width, out_size)

    def forward(self, gist: Tensor) -> Tensor:
        return F.relu(self.out(self.features(gist)))  # (N, out_size)


# ------------------------------------------------------------------------------------------------
# Where heads: what to look at next
# ------------------------------------------------------------------------------------------------


@dataclass
class Look:
    """One step's choice of where to look next, for ``N`` rows."""

    location: Tensor
    """``(N, 2)`` the centre looked at next, ``(x, y)`` in ``[-1, 1]``: a constant (no gradient)."""
    action: Tensor
    """the where-part of the env action: ``(N, 2)`` float location, or ``(N, 2)`` long grid cell ``(col, row)``."""
    log_prob: Tensor
    """``(N,)`` log pi of the choice (zeros when deterministic or nothing was chosen)."""
    entropy: Tensor
    """``(N,)`` entropy of the where-policy."""
    probs: Tensor | None = None
    """``(N, K)`` item probabilities (categorical heads), for the expected context."""
    raw: Tensor | None = None
    """what the head's ``score`` re-scores the choice from later (PPO's replay): the Gaussian's pre-squash
    draw ``u`` ``(N, 2)``, the item index ``(N,)``; None when nothing was chosen."""


@runtime_checkable
class WhereHead(Protocol):
    """What a where head is (an ``nn.Module`` reading ``h_t``); :class:`HardRecurrentAgent` checks it at construction."""

    action_mode: ClassVar[str]
    """the env's action mode its :attr:`Look.action` is for: ``"continuous"`` or ``"discrete"``."""
    policy: ClassVar[str | None]
    """its policy's name in the logs (``<policy>_entropy``): ``"location"``, ``"item"``; None if it chooses nothing."""

    def check_env(self, env, num_decisions: int) -> None:
        """Refuse an env whose actions or items this head cannot send (a ValueError saying how to build it)."""

    def begin_episode(self, *, training: bool, deterministic: bool) -> Looking:
        """How the coming episode feeds the core and looks (:class:`Looking`; SAT's :class:`ExpectedContext`)."""

    def look(self, h: Tensor, *, deterministic: bool) -> Look:
        """Where to look next from ``h`` ``(N, hidden)``: sampled without gradient, or the most likely choice."""

    def score(self, h: Tensor, raw: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(log pi, entropy)``, ``(N,)`` each, of stored choices ``raw`` (:attr:`Look.raw`) under the current policy."""

    def stats(self) -> dict[str, Tensor]:
        """Scalars to log each update."""

    def inference(self, h: Tensor) -> None:
        """What one look costs at inference (for FLOP counting)."""


class Looking:
    """One episode's where-choices, the default: the core reads the glimpse the env returned (``f_g(x_t, l_{t-1})``),
    and the head looks from ``agent.head_input(h_t)``, its choices scored by REINFORCE (or replayed by PPO)."""

    replayable: ClassVar[bool] = True
    """whether :func:`rollout` can record the episode for a replay (its choices were sampled)."""

    def __init__(self, head: nn.Module) -> None:
        self.head = head

    def features(self, agent: HardRecurrentAgent, env, obs: dict[str, Tensor]) -> Tensor:
        """``g_t`` ``(N, hidden)``, what the core reads at this step."""
        return agent.encode(obs["glimpse"], obs["location"])

    def look(self, h: Tensor, h_head: Tensor, *, deterministic: bool) -> Look:
        """The step's :class:`Look` from ``h_t`` and what the heads read of it (``h_head``)."""
        return self.head.look(h_head, deterministic=deterministic)


class ExpectedContext(Looking):
    """Show, Attend and Tell's expected-context episode: after the first glimpse the core reads every item of what
    the env shows, weighted by the previous step's ``pi`` (:meth:`CategoricalItemHead.expected_context`); the head
    reads the attached ``h_t`` and its log-probabilities are zeros, so backpropagation trains it through ``pi``."""

    replayable: ClassVar[bool] = False

    def __init__(self, head: CategoricalItemHead) -> None:
        super().__init__(head)
        self.probs: Tensor | None = None  # (N, K) the last look's item probabilities

    def features(self, agent: HardRecurrentAgent, env, obs: dict[str, Tensor]) -> Tensor:
        if self.probs is None:  # the first glimpse is the env's start
            return super().features(agent, env, obs)
        return self.head.expected_context(agent.encode, env, self.probs)  # (N, hidden)

    def look(self, h: Tensor, h_head: Tensor, *, deterministic: bool) -> Look:
        look = self.head.look(h, deterministic=deterministic)
        self.probs = look.probs
        return replace(look, log_prob=h.new_zeros(h.shape[0]))


def _check_continuous(env, num_decisions: int) -> None:
    want = 2 + num_decisions
    if env.action_mode != "continuous" or tuple(env.single_action_space.shape) != (want,):
        raise ValueError(f"env takes actions {tuple(env.single_action_space.shape)}, the agent sends ({want},): "
                         f"use action_mode='continuous' and num_classes = the env's decisions")


class GaussianLocationHead(GaussianLocationPolicy):
    """RAM's location network ``f_l``: ``l_t = tanh(u)``, ``u ~ N(W h_t, std^2)`` (:class:`~glimpse.policies.GaussianLocationPolicy`).

    Sampled without gradient (REINFORCE, not reparameterised); deterministic: ``tanh(mu)``, detached.

    Args:
        hidden_size: width of ``h_t``.
        std: the pre-squash std (its start when learned or scheduled).
        learn_std: learn a state-independent log-std (:class:`~glimpse.policies.GaussianLocationPolicy`).
        std_final: schedule the std instead: linear from ``std`` at the start of training to ``std_final`` at its
            end, set by :meth:`set_progress` (a function of the training progress, so a resumed run follows it).
    """

    action_mode: ClassVar[str] = "continuous"
    policy: ClassVar[str | None] = "location"

    def __init__(self, hidden_size: int, std: float = 0.17, learn_std: bool = False,
                 std_final: float | None = None) -> None:
        super().__init__(hidden_size, std=std, learn_std=learn_std)
        if std_final is not None:
            if learn_std:
                raise ValueError("the location std is either learned (learn_std) or scheduled (std_final), not both")
            check_number(std_final, "std_final", open_low=True)
        self.std_start, self.std_final = float(std), std_final

    def set_progress(self, progress: float) -> None:
        """Set a scheduled std for ``progress`` (the done fraction of training, clamped to ``[0, 1]``)."""
        if self.std_final is not None:
            p = min(max(float(progress), 0.0), 1.0)
            self.log_std.fill_(math.log(self.std_start + (self.std_final - self.std_start) * p))

    def check_env(self, env, num_decisions: int) -> None:
        _check_continuous(env, num_decisions)

    def begin_episode(self, *, training: bool, deterministic: bool) -> Looking:
        return Looking(self)

    def look(self, h: Tensor, *, deterministic: bool) -> Look:
        if deterministic:
            loc, u, log_prob = self.mode(h).detach(), None, h.new_zeros(h.shape[0])  # (N, 2), (N,)
        else:
            loc, u, log_prob = self.sample_pre_squash(h)  # (N, 2), (N, 2) no grad, (N,)
        return Look(location=loc, action=loc, log_prob=log_prob, entropy=self.entropy(h), raw=u)

    def score(self, h: Tensor, raw: Tensor) -> tuple[Tensor, Tensor]:
        """``(log pi, entropy)``, ``(N,)`` each, of stored choices ``raw`` (:attr:`Look.raw`) under the current policy."""
        return self.log_prob_pre_squash(h, raw), self.entropy(h)

    def stats(self) -> dict[str, Tensor]:
        """Scalars to log each update: the policy's (pre-tanh) std."""
        return {"policy_std": self.std.mean().detach()}  # the learned or scheduled std's value, logged

    def inference(self, h: Tensor) -> None:
        self(h)  # the location distribution's parameters


class FixedCentreHead(nn.Module):
    """No attention: every glimpse at the image centre ``(0, 0)``; nothing to choose, nothing to score.

    The env must start there too (``GlimpseVectorEnv(start="center")``): what the retina alone is worth.
    """

    action_mode: ClassVar[str] = "continuous"
    policy: ClassVar[str | None] = None

    def __init__(self, hidden_size: int) -> None:
        super().__init__()

    def check_env(self, env, num_decisions: int) -> None:
        _check_continuous(env, num_decisions)
        if env.start_mode != "center":
            raise ValueError("RAM(location='center') glimpses only the centre: make the env with start='center' "
                             "so that its first glimpse is there too")

    def begin_episode(self, *, training: bool, deterministic: bool) -> Looking:
        return Looking(self)

    def look(self, h: Tensor, *, deterministic: bool) -> Look:
        zeros = h.new_zeros(h.shape[0])
        loc = h.new_zeros(h.shape[0], 2)
        return Look(location=loc, action=loc, log_prob=zeros, entropy=zeros)

    def score(self, h: Tensor, raw: Tensor | None) -> tuple[Tensor, Tensor]:
        zeros = h.new_zeros(h.shape[0])
        return zeros, zeros

    def stats(self) -> dict[str, Tensor]:
        return {}

    def inference(self, h: Tensor) -> None:
        pass


class CategoricalItemHead(CategoricalItemPolicy):
    """Show, Attend and Tell's hard attention: ``k_t ~ Categorical(softmax(W h_t))`` over the env's ``K`` grid cells.

    Steps the env in ``action_mode="discrete"`` (action ``[k % grid, k // grid, decision]``); the location
    fed back is cell ``k``'s centre (:meth:`envs.GlimpseVectorEnv.item_centers`, kept as the buffer
    ``item_centers``). With probability ``expected_context_prob`` per training minibatch
    (:meth:`begin_episode`, one draw from torch's RNG) the episode runs on SAT's expected context
    ``sum_k pi_k a_k`` instead (:meth:`expected_context`) and is trained by backpropagation alone.

    Args:
        hidden_size: width of ``h_t``.
        item_centers: ``(K, 2)`` the env's item centres.
        expected_context_prob: SAT's chance per minibatch of the expected context (SAT: 0.5).
    """

    action_mode: ClassVar[str] = "discrete"
    policy: ClassVar[str | None] = "item"

    def __init__(self, hidden_size: int, item_centers: Tensor, expected_context_prob: float = 0.0) -> None:
        super().__init__(hidden_size, len(item_centers))
        if not 0.0 <= expected_context_prob <= 1.0:
            raise ValueError(f"expected_context_prob must lie in [0, 1]; got {expected_context_prob!r}")
        self.expected_context_prob = float(expected_context_prob)
        self.register_buffer("item_centers", item_centers.detach().to(torch.float32).clone())  # (K, 2)
        self.grid = round(len(item_centers) ** 0.5)

    def check_env(self, env, num_decisions: int) -> None:
        if env.action_mode != "discrete":
            raise ValueError("HardItemAttention steps the env in action_mode='discrete'")
        centers = env.item_centers().to(self.item_centers.device)
        if centers.shape != self.item_centers.shape or not torch.allclose(centers, self.item_centers):
            raise ValueError(f"the agent was built for {len(self.item_centers)} items; the env has {len(centers)} "
                             f"(grid {env.grid}): build the agent with from_env on an env of the same grid")

    def begin_episode(self, *, training: bool, deterministic: bool) -> Looking:
        """SAT's coin, drawn once per training minibatch: run this episode on the expected context?"""
        expected = (training and not deterministic and self.expected_context_prob > 0
                    and float(torch.rand(())) < self.expected_context_prob)
        return ExpectedContext(self) if expected else Looking(self)

    def look(self, h: Tensor, *, deterministic: bool) -> Look:
        dist = self(h)
        item = dist.probs.argmax(dim=1) if deterministic else dist.sample()  # (N,)
        log_prob = h.new_zeros(h.shape[0]) if deterministic else dist.log_prob(item)
        cell = torch.stack([item % self.grid, item // self.grid], dim=1)  # (N, 2): (col, row)
        return Look(location=self.item_centers[item], action=cell, log_prob=log_prob, entropy=dist.entropy(),
                    probs=dist.probs, raw=None if deterministic else item)

    def score(self, h: Tensor, raw: Tensor) -> tuple[Tensor, Tensor]:
        """``(log pi, entropy)``, ``(N,)`` each, of stored item indices ``raw`` ``(N,)`` under the current policy."""
        dist = self(h)
        return dist.log_prob(raw), dist.entropy()

    def expected_context(self, encode: Callable[[Tensor, Tensor], Tensor], env, probs: Tensor) -> Tensor:
        """``sum_k pi_k a_k`` ``(N, hidden)`` over every item of what ``env`` shows now, ``a_k = encode(x_k, l_k)``
        (:meth:`HardRecurrentAgent.encode`); ``probs`` ``(N, K)``."""
        items = env.item_glimpses()  # (N, K, S, C, g, g)
        n, k = probs.shape
        a = encode(items, self.item_centers.expand(n, k, 2))  # (N, K, hidden)
        return torch.einsum("nk,nkd->nd", probs, a)

    def stats(self) -> dict[str, Tensor]:
        return {}

    def inference(self, h: Tensor) -> None:
        self(h)


# ------------------------------------------------------------------------------------------------
# Decision heads: what to answer (or do)
# ------------------------------------------------------------------------------------------------


@dataclass
class Decision:
    """One step's decision for ``N`` rows."""

    action: Tensor
    """the decision part of the env action: ``(N, D)`` scores (continuous) or ``(N, 1)`` long index (discrete)."""
    logits: Tensor | None = None
    """``(N, D)`` classifier logits (the last step of a classifying head)."""
    log_prob: Tensor | None = None
    """``(N,)`` log pi of a per-step decision policy's move (Catch's paddle)."""
    entropy: Tensor | None = None
    """``(N,)`` its entropy."""
    raw: Tensor | None = None
    """``(N,)`` the sampled move index, for ``score`` (PPO's replay); None if not sampled."""


@runtime_checkable
class DecisionHead(Protocol):
    """What a decision head is (an ``nn.Module`` reading the attached ``h_t``), checked at construction."""

    policy: ClassVar[str | None]
    """None: a classifier, read at the last step and trained by cross-entropy; a name (``"paddle"``): a policy
    sampled at every step, trained by the policy gradient, logged as ``<policy>_entropy``."""

    def decide(self, h: Tensor, *, last: bool, deterministic: bool, discrete: bool) -> Decision:
        """The step's :class:`Decision` from ``h`` ``(N, hidden)``; ``discrete``: the env's discrete action mode."""

    def score(self, h: Tensor, raw: Tensor) -> tuple[Tensor, Tensor]:
        """``(log pi, entropy)``, ``(N,)`` each, of stored choices ``raw`` (:attr:`Decision.raw`); policies only."""

    def inference(self, h: Tensor, *, last: bool) -> None:
        """What one step's decision costs at inference (for FLOP counting)."""


class ClassifyHead(nn.Linear):
    """RAM's action network ``f_a``: ``Linear(hidden, D)`` logits at the last step, trained by cross-entropy."""

    policy: ClassVar[str | None] = None

    def decide(self, h: Tensor, *, last: bool, deterministic: bool, discrete: bool) -> Decision:
        n = h.shape[0]
        if not last:
            blank = h.new_zeros(n, 1, dtype=torch.long) if discrete else h.new_zeros(n, self.out_features)
            return Decision(action=blank)
        logits = self(h)  # (N, D)
        action = logits.argmax(dim=1, keepdim=True) if discrete else logits.detach()
        return Decision(action=action, logits=logits)

    def score(self, h: Tensor, raw: Tensor) -> tuple[Tensor, Tensor]:
        raise TypeError("a classifier chooses nothing to score: its cross-entropy trains it")

    def inference(self, h: Tensor, *, last: bool) -> None:
        if last:
            self(h)


class PaddleHead(CategoricalItemPolicy):
    """Catch's paddle: a categorical policy over the ``D`` moves (left, stay, right), sampled at every step
    and trained by REINFORCE with the game's reward (no classifier)."""

    policy: ClassVar[str | None] = "paddle"

    def decide(self, h: Tensor, *, last: bool, deterministic: bool, discrete: bool) -> Decision:
        dist = self(h)
        move = dist.probs.argmax(dim=1) if deterministic else dist.sample()  # (N,)
        log_prob = dist.log_prob(move) if not deterministic else h.new_zeros(h.shape[0])
        action = move[:, None] if discrete else F.one_hot(move, self.num_items).to(h.dtype)
        return Decision(action=action, log_prob=log_prob, entropy=dist.entropy(), raw=None if deterministic else move)

    def score(self, h: Tensor, raw: Tensor) -> tuple[Tensor, Tensor]:
        """``(log pi, entropy)``, ``(N,)`` each, of stored moves ``raw`` ``(N,)`` under the current policy."""
        dist = self(h)
        return dist.log_prob(raw), dist.entropy()

    def inference(self, h: Tensor, *, last: bool) -> None:
        self.logits(h)


DECISION_HEADS = {"classify": ClassifyHead, "catch": PaddleHead}


# ------------------------------------------------------------------------------------------------
# The agent: shared networks + a where head + a decision head + a baseline
# ------------------------------------------------------------------------------------------------


class HardRecurrentAgent(nn.Module):
    """Glimpse network, core, a where head (``locator``), a decision head, a baseline: one hard agent.

    Built in this order (so that a seed gives the same initial weights): ``glimpse_net``, ``core``,
    ``locator = where(hidden, **where_kwargs)`` (a :class:`WhereHead`), ``decider`` (a :class:`DecisionHead`:
    the classifier, or Catch's paddle), ``baseline``, and with a gist ``context`` and ``where_core``. Checkpoints
    written when the decision head was kept
    under ``classifier`` or ``paddle`` load as they are (their keys are renamed to ``decider``).

    Args:
        glimpse_shape: ``(S, C, g, g)``, the env's glimpse observation shape.
        num_classes: number of decision scores ``D`` (classes; 3 for Catch).
        where: the where-head class (:class:`GaussianLocationHead`, :class:`CategoricalItemHead`,
            :class:`FixedCentreHead`, or your own); ``where_kwargs`` its keyword arguments.
        decision: ``"classify"`` (:class:`ClassifyHead`) or ``"catch"`` (:class:`PaddleHead`).
        hidden: width of ``g_t`` and ``h_t`` (256 in the paper).
        glimpse_hidden: width of ``h_g`` and ``h_l`` (128 in the paper).
        core: ``"rnn"`` or ``"lstm"``.
        reinforce_into_core: let the REINFORCE and baseline gradients reach the core and glimpse networks
            (the where head and the baseline read ``h_t``) instead of stopping them at ``h_t.detach()``.
        entropy_coef: entropy bonus of the policies in :meth:`train_losses`.
        scale_gain: the glimpse network multiplies retina scale ``k`` by ``scale_gain**k`` (see
            :class:`GlimpseNetwork`; 1 reads the retina's means as the paper does).
        step_ce: weight of the classifier's cross-entropy at every step, ``step_ce * mean_t CE(f_a(h_t), y)``,
            added to the last step's (:func:`classifier_loss`); 0: the classifier reads only ``h_T``.
        credit: ``"final"`` (the env's reward) or ``"gain"``: every step's reward is also the gain in the log-probability
            of the true class that the classifier on ``h_t`` brought (:func:`gain_rewards`); see :data:`CREDITS`.
        final_reward: with ``credit="gain"``, keep the env's final reward (1 for a correct answer) beside the gains.
        glimpse_encoder: ``"linear"`` (the paper's glimpse network) or ``"conv"`` (:class:`GlimpseConv`).
        gist_shape: ``(C, G, G)``, the env's coarse view of the whole canvas (``obs["gist"]``), to read it as DRAM
            does (Ba et al. 2015): a :class:`ContextNetwork` sets the initial state of a second recurrent layer,
            ``r_t = f(r_{t-1}, h_t)`` (``where_core``, the core's kind), and the where head and the baseline read
            ``r_t`` instead of ``h_t``; the classifier still reads only the glimpses' ``h_t``. None: no gist.

    Predicting at every step (``step_ce > 0`` or ``credit="gain"``) runs the classifier on every ``h_t``
    (:attr:`Rollout.step_logits`). The gains are computed without gradient from the logits the episode was played
    with, so PPO's replay scores them as collected; its supervised loss is the same :func:`classifier_loss`.

    The scripts drive it through the contract of :mod:`agents.common`: :meth:`train_losses`,
    :meth:`evaluate`, :meth:`inference`, and :meth:`rollout`.
    """

    action_mode: ClassVar[str] = "continuous"

    def __init__(self, glimpse_shape: tuple[int, int, int, int], num_classes: int, *, where: type[nn.Module],
                 where_kwargs: dict[str, Any] | None = None, decision: str = "classify", hidden: int = 256,
                 glimpse_hidden: int = 128, core: str = "rnn", reinforce_into_core: bool = False,
                 entropy_coef: float = 0.0, scale_gain: float = 1.0, step_ce: float = 0.0, credit: str = "final",
                 final_reward: bool = True, gist_shape: tuple[int, int, int] | None = None,
                 glimpse_encoder: str = "linear") -> None:
        super().__init__()
        if len(glimpse_shape) != 4 or any(not isinstance(s, int) or s < 1 for s in glimpse_shape):
            raise ValueError(f"glimpse_shape must be (S, C, g, g) positive ints; got {glimpse_shape!r}")
        if decision not in DECISION_HEADS:
            raise ValueError(f"decision must be one of {tuple(DECISION_HEADS)}; got {decision!r}")
        if where.action_mode != self.action_mode:
            raise ValueError(f"{type(self).__name__} steps the env in action_mode={self.action_mode!r}; "
                             f"{where.__name__} needs {where.action_mode!r}")
        if credit not in CREDITS:
            raise ValueError(f"credit must be one of {CREDITS}; got {credit!r}")
        check_number(step_ce, "step_ce")
        if not final_reward and credit != "gain":
            raise ValueError("final_reward=False leaves the looks without any reward: use it with credit='gain'")
        if decision != "classify" and (step_ce > 0 or credit != "final"):
            raise ValueError(f"step_ce and credit='gain' score a classifier's prediction at every step; "
                             f"decision={decision!r} has no classifier")
        self.entropy_coef = float(entropy_coef)
        self.step_ce, self.credit, self.final_reward = float(step_ce), credit, bool(final_reward)
        self.glimpse_shape, self.num_classes = tuple(glimpse_shape), num_classes
        self.decision, self.reinforce_into_core = decision, bool(reinforce_into_core)
        self.glimpse_net = GlimpseNetwork(math.prod(glimpse_shape), glimpse_hidden, glimpse_hidden, hidden,
                                          scales=glimpse_shape[0], scale_gain=scale_gain, encoder=glimpse_encoder,
                                          glimpse_shape=tuple(glimpse_shape))
        self.core = CoreNetwork(hidden, hidden, core)
        self.locator = where(hidden, **(where_kwargs or {}))
        self.decider = DECISION_HEADS[decision](hidden, num_classes)
        self.baseline = nn.Linear(hidden, 1)
        self.gist_shape = None if gist_shape is None else tuple(int(s) for s in gist_shape)
        self.context = self.where_core = None
        if self.gist_shape is not None:  # built last: an agent without a gist draws the same initial weights as before
            self.context = ContextNetwork(self.gist_shape, hidden)
            self.where_core = CoreNetwork(hidden, hidden, core)
        for head, protocol in ((self.locator, WhereHead), (self.decider, DecisionHead)):
            if not isinstance(head, protocol):
                raise TypeError(f"{type(head).__name__} is not a {protocol.__name__}: it lacks "
                                f"{', '.join(sorted(_missing(head, protocol)))}")
        self._checked_env: weakref.ref | None = None
        self._register_load_state_dict_pre_hook(_decision_head_renamed)

    def __getstate__(self) -> dict[str, Any]:
        """A pickled agent (``torch.save(model)``) forgets the env it checked: a copy checks its env again."""
        return {**super().__getstate__(), "_checked_env": None}

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> Any:
        return self.core.initial_state(batch_size, device)

    def encode(self, glimpse: Tensor, location: Tensor) -> Tensor:
        """``g = f_g(x, l)`` ``(..., hidden)`` of glimpses ``(..., S, C, g, g)`` taken at ``(..., 2)``: one step's
        ``(N, ...)``, a stored episode's ``(N, T, ...)`` or every item's ``(N, K, ...)``, in one pass."""
        lead = location.shape[:-1]
        g = self.glimpse_net(glimpse.reshape(-1, *glimpse.shape[-4:]), location.reshape(-1, 2))
        return g.view(*lead, -1)

    def recur(self, g: Tensor, state: Any, core: CoreNetwork | None = None) -> tuple[Tensor, Any]:
        """The core (or another recurrent layer, ``core``) over a stored episode: ``h_t = f_h(h_{t-1}, g_t)`` for ``g``
        ``(N, T, hidden)``; returns ``(h (N, T, hidden), the last state)``. (:func:`rollout` runs ``core`` one step
        at a time: ``g_{t+1}`` needs ``h_t``'s choice.)"""
        core = self.core if core is None else core
        hs = []
        for t in range(g.shape[1]):
            h, state = core(g[:, t], state)
            hs.append(h)
        return torch.stack(hs, dim=1), state

    @property
    def predicts_every_step(self) -> bool:
        """Whether the classifier reads every ``h_t`` (per-step cross-entropy, or gain rewards)."""
        return self.step_ce > 0 or self.credit == "gain"

    def set_progress(self, progress: float) -> None:
        """Training progress (done fraction of the budget), for the where head's schedule (a scheduled std)."""
        if hasattr(self.locator, "set_progress"):
            self.locator.set_progress(progress)

    def credited(self, episode: Rollout) -> Rollout:
        """``episode`` with the rewards this agent learns from: the env's, or with ``credit="gain"`` the per-step
        gains (:func:`gain_rewards`) plus, unless ``final_reward=False``, the env's."""
        if self.credit == "final":
            return episode
        gains = gain_rewards(episode.step_logits.detach(), episode.labels)
        return episode.with_rewards(gains + episode.rewards if self.final_reward else gains)

    def head_input(self, h: Tensor) -> Tensor:
        """The core's state as the where-path reads it: ``h_t``, or ``h_t.detach()`` (the default)."""
        return h if self.reinforce_into_core else h.detach()

    def where_state(self, obs: dict[str, Tensor]) -> Any:
        """The where-path's initial state for episodes starting at ``obs``: DRAM's ``r_0 = context(gist)``, or None
        for an agent without a gist (its where head reads the core's state)."""
        if self.context is None:
            return None
        gist = obs.get("gist")
        if gist is None:
            raise ValueError(f"this agent reads a gist of {self.gist_shape}: build the env with gist="
                             f"{self.gist_shape[-1]} (the agent's --gist)")
        return self.where_core.state_from(self.context(gist))

    def where_input(self, h: Tensor, state: Any) -> tuple[Tensor, Any]:
        """What the where head and the baseline read at a step, and the where-path's next state: ``head_input(h_t)``,
        or with a gist ``r_t = f(r_{t-1}, head_input(h_t))`` (``h`` ``(N, hidden)``, or ``(N, T, hidden)`` a whole
        stored episode from the initial ``state``)."""
        x = self.head_input(h)
        if self.where_core is None:
            return x, state
        if x.dim() == 3:
            return self.recur(x, state, self.where_core)
        return self.where_core(x, state)

    def check_env(self, env) -> None:
        """Refuse an env this agent cannot play, saying how to build the right one. Checked once per env: an
        env's action mode, decision and items do not change (the last env checked is remembered)."""
        if self._checked_env is not None and self._checked_env() is env:
            return
        mode = getattr(env, "metadata", {}).get("autoreset_mode")
        if mode is not None and mode != AutoresetMode.SAME_STEP:
            # The rollout reads each episode's label from the ending step's final_info.
            raise ValueError(f"{type(self).__name__} plays episodes in lockstep and reads their labels at the "
                             f"ending step: build the env with autoreset_mode=AutoresetMode.SAME_STEP; got {mode}")
        self.locator.check_env(env, self.num_classes)
        plays = "catch" if env.decision == "paddle" else "classify"
        if plays != self.decision:
            raise ValueError(f"{type(self).__name__}(decision={self.decision!r}) cannot play an env whose "
                             f"decision is {env.decision!r}: use decision='catch' for Catch and 'classify' "
                             f"otherwise (from_env does this)")
        self._checked_env = weakref.ref(env)

    def rollout(self, env, obs: dict[str, Tensor], *, deterministic: bool = False) -> tuple[Rollout, dict]:
        """One batched episode: :func:`rollout`."""
        return rollout(self, env, obs, deterministic=deterministic)

    def train_losses(self, env, obs: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One batch of episodes and :func:`hybrid_losses`, plus the policies' entropies (and std) to log."""
        trajectory, obs = self.rollout(env, obs)
        losses = hybrid_losses(trajectory, entropy_coef=self.entropy_coef, step_ce=self.step_ce)
        losses.update(self.locator.stats())
        if trajectory.entropies.numel():  # one glimpse: no look chosen, no entropy (a mean of nothing is NaN)
            losses["policy_entropy"] = trajectory.entropies.mean().detach()
        if trajectory.decision_entropies is not None:  # a per-step decision policy's (Catch's paddle: max ln 3)
            losses[f"{self.decider.policy}_entropy"] = trajectory.decision_entropies.mean().detach()
        return losses, obs

    # -- the actor-critic trainers' contract (agents.contract.PolicyAgent) ---------------------------

    def collect(self, env, obs: dict[str, Tensor]) -> tuple[Episodes, dict]:
        """One batch of episodes played without gradient (:func:`rollout` with ``record=True``), kept for
        :meth:`replay`. Step ``t``'s joint choice is the look ``l_t`` (``t < T``) and a per-step decision
        policy's choice (Catch's paddle move); the critic is the baseline head, ``V(s_t) = b(h_t)``."""
        with torch.no_grad():
            trajectory, obs = rollout(self, env, obs, record=True)
        n, steps = trajectory.rewards.shape
        chooses_where = self.locator.policy is not None and steps > 1
        mask = torch.zeros(n, steps, dtype=torch.bool, device=trajectory.rewards.device)
        log_probs = torch.zeros_like(trajectory.rewards)
        if chooses_where:
            mask[:, :-1] = True
            log_probs[:, :-1] += trajectory.log_probs
        if trajectory.decision_log_probs is not None:
            mask[:] = True
            log_probs += trajectory.decision_log_probs
        inputs = {"glimpses": trajectory.record["glimpses"], "locations": trajectory.locations[:, :steps]}
        for name in ("looks", "decisions", "gist"):
            if name in trajectory.record:
                inputs[name] = trajectory.record[name]
        if trajectory.labels is not None:
            inputs["labels"] = trajectory.labels
        losses = hybrid_losses(trajectory)
        return Episodes(trajectory.rewards, trajectory.baselines, log_probs, mask, inputs,
                        stats={"accuracy": losses["accuracy"], "reward": losses["reward"]}), obs

    def replay(self, episodes: Episodes) -> Replayed:
        """The stored episodes' glimpses through the glimpse network and the core again, and the stored
        choices scored by the current heads: ``log pi``, ``V(s_t)``, entropies, the classifier's cross-entropy."""
        inputs = episodes.inputs
        glimpses, locations = inputs["glimpses"], inputs["locations"]  # (n, T, S, C, g, g), (n, T, 2)
        n, steps = glimpses.shape[:2]
        h, _ = self.recur(self.encode(glimpses, locations), self.initial_state(n, glimpses.device))  # (n, T, hidden)
        head, _ = self.where_input(h, self.where_state(inputs))
        values = self.baseline(head).squeeze(-1)  # (n, T)
        log_probs, entropy = torch.zeros_like(values), torch.zeros_like(values)
        entropies: dict[str, Tensor] = {}
        if "looks" in inputs:
            looks = inputs["looks"]  # (n, T - 1, ...)
            lp, ent = self.locator.score(head[:, :-1].flatten(0, 1), looks.flatten(0, 1))
            log_probs[:, :-1] += lp.view(n, steps - 1)
            entropy[:, :-1] += ent.view(n, steps - 1)
            entropies[self.locator.policy] = ent.detach()
        if "decisions" in inputs:
            lp, ent = self.decider.score(h.flatten(0, 1), inputs["decisions"].flatten(0, 1))
            log_probs += lp.view(n, steps)
            entropy += ent.view(n, steps)
            entropies[self.decider.policy] = ent.detach()
        supervised = values.new_zeros(())
        if "labels" in inputs:
            step_logits = self.decider(h) if self.step_ce > 0 else None  # (n, T, D)
            supervised = classifier_loss(self.decider(h[:, -1]), inputs["labels"], step_logits, self.step_ce)
        return Replayed(log_probs, values, entropy, entropies, supervised)

    def evaluate(self, env, episodes: int, *, mc_samples: int = 1, seed: int = 0) -> dict[str, float]:
        """:func:`evaluate_rollouts`: ``accuracy`` with the mean locations, ``accuracy_mc`` over ``mc_samples``, and
        for an agent that predicts at every step ``accuracy_glimpse_t`` after each glimpse ``t``."""
        result = evaluate_rollouts(self, env, episodes, mc_samples=mc_samples, seed=seed)
        metrics = {"accuracy": result["accuracy_mode"], "reward": result["reward"], "examples": result["examples"]}
        if mc_samples > 1:
            metrics["accuracy_mc"] = result["accuracy_mc"]
        metrics.update({name: value for name, value in result.items() if name.startswith("accuracy_glimpse_")})
        return metrics

    @torch.no_grad()
    def inference(self, env_or_steps) -> None:
        """One image's inference for ``T`` glimpses (an env's episode length, or ``T`` itself), as
        :func:`rollout` runs it minus the training-only parts: ``T`` glimpse and core steps, ``T - 1``
        where-decisions (the last look would only produce an unused observation), the decision head
        (the classifier once at the end; Catch's paddle at every step). The baseline is not run."""
        steps = env_or_steps if isinstance(env_or_steps, int) else episode_steps(env_or_steps)
        obs = {"glimpse": torch.zeros(1, *self.glimpse_shape), "location": torch.zeros(1, 2)}
        if self.gist_shape is not None:
            obs["gist"] = torch.zeros(1, *self.gist_shape)
        state, where = self.initial_state(1), self.where_state(obs)
        for t in range(1, steps + 1):
            h, state = self.core(self.encode(obs["glimpse"], obs["location"]), state)  # (1, hidden)
            if t < steps:
                h_where, where = self.where_input(h, where)
                self.locator.inference(h_where)
            self.decider.inference(h, last=t == steps)


def gist_shape_of(env, gist: int) -> tuple[int, int, int] | None:
    """The ``(C, G, G)`` of ``env``'s coarse view for an agent built with ``gist=G`` (None for 0); the env must have been
    made with the same ``gist`` (what :data:`agents.AGENTS`' ``env_kwargs`` pass it)."""
    if not gist:
        return None
    space = env.single_observation_space.spaces.get("gist")
    if space is None or space.shape[-1] != gist:
        have = "none" if space is None else space.shape[-1]
        raise ValueError(f"the agent reads a gist of {gist}x{gist}; the env has {have}: build it with gist={gist}")
    return tuple(int(s) for s in space.shape)


def _missing(head: nn.Module, protocol: type) -> set[str]:
    """The members of ``protocol`` that ``head`` lacks (a method set to None is missing, as for ``isinstance``)."""
    methods = {name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}
    return ({name for name in protocol.__annotations__ if not hasattr(head, name)}
            | {name for name in methods if getattr(head, name, None) is None})


def _decision_head_renamed(state_dict: dict, prefix: str, *args: Any) -> None:
    """Checkpoints written before the decision head had one name kept it under ``classifier`` or ``paddle``."""
    for old in ("classifier.", "paddle."):
        for key in [key for key in state_dict if key.startswith(prefix + old)]:
            state_dict[prefix + "decider." + key[len(prefix + old):]] = state_dict.pop(key)


# ------------------------------------------------------------------------------------------------
# One episode of the batched env
# ------------------------------------------------------------------------------------------------


def episode_steps(env) -> int:
    """The env's episode length ``T`` (every row's episode ends together)."""
    steps = env.episode_steps
    limit = env.max_episode_steps
    if limit is not None and limit < steps:
        raise ValueError(f"env truncates episodes at {limit} steps, before the decision at step "
                         f"{steps}: build it with max_episode_steps=None")
    return int(steps)


def check_lockstep(terminated: Tensor, truncated: Tensor, t: int, steps: int) -> None:
    """Every row's episode must end exactly at step ``steps``: a rollout plays whole episodes in lockstep."""
    done = terminated | truncated
    if bool(done.any()) != (t == steps) or (t == steps and not bool(terminated.all())):
        raise RuntimeError(f"env rows ended out of lockstep at step {t} of {steps}: start rollout() right "
                           f"after env.reset() or after a previous rollout()")


def rollout(agent: HardRecurrentAgent, env, obs: dict[str, Tensor], *, deterministic: bool = False,
            record: bool = False) -> tuple[Rollout, dict]:
    """Run one episode of every row of ``env`` in lockstep, from ``obs`` (the episodes' first glimpses).

    Convention:
        ``env`` is a :class:`envs.GlimpseVectorEnv` in the where head's action mode with same-step
        autoreset, every row at the start of an episode (just reset, or just returned by a previous
        ``rollout``). Each step sends the where head's action then the decision head's: continuous
        ``(N, 2 + D)`` -- ``l_t``, then zeros before the last step and the classifier's logits at it,
        or for Catch a one-hot of the paddle move at every step -- or discrete ``(N, 3)``, the grid cell
        and the decision index. ``deterministic`` takes each policy's most likely choice; its
        log-probabilities are zeros (it is for evaluation). ``record`` keeps what a replay of the episode
        needs in :attr:`Rollout.record` (the observations and the raw choices; PPO's stored batch).

    What carries gradient: the location sent to the env and fed back to the glimpse network is a
    constant (a sample drawn without gradient, or a detached mode); REINFORCE reaches the where head
    only through ``log pi``; the where head and the baseline read ``agent.where_input(h)`` (the state, detached by
    default, or with a gist DRAM's where-layer over it); the decision
    head always reads the attached ``h_t``. In an expected-context episode (SAT) the where head reads
    ``h_t`` itself and its log-probabilities are zeros: backpropagation trains it through ``pi``.

    Returns:
        ``(rollout, next_obs)``: the :class:`Rollout`, and the observation the last step returned, which
        (same-step autoreset) is already the next episodes' first glimpses, so training just continues.
    """
    steps = episode_steps(env)
    agent.check_env(env)
    discrete = agent.locator.action_mode == "discrete"
    looking = agent.locator.begin_episode(training=agent.training, deterministic=deterministic)
    if record and not looking.replayable:
        raise ValueError(f"a {type(looking).__name__} episode has no sampled choices to replay: record=True needs "
                         f"one that samples (expected_context_prob=0)")
    state = agent.initial_state(obs["location"].shape[0], obs["location"].device)
    where = agent.where_state(obs)
    buffer = EpisodeBuffer(steps, obs, record=record)
    every_step = agent.predicts_every_step
    logits = labels = None
    for t in range(1, steps + 1):
        g = looking.features(agent, env, obs)  # (N, hidden)
        h, state = agent.core(g, state)  # (N, hidden)
        h_head, where = agent.where_input(h, where)
        # Where to look next: a constant, sampled without gradient (or a detached mode).
        look = looking.look(h, h_head, deterministic=deterministic)
        baseline = agent.baseline(h_head).squeeze(1)  # (N,)
        # The decision: class scores at the last step, or a move at every step (Catch's paddle).
        decision = agent.decider.decide(h, last=t == steps, deterministic=deterministic, discrete=discrete)
        if decision.logits is not None:
            logits = decision.logits
        step_logits = None
        if every_step:  # the classifier on every h_t (at the last step, the decision's own logits)
            step_logits = decision.logits if decision.logits is not None else agent.decider(h)

        obs, reward, terminated, truncated, infos = env.step(torch.cat([look.action, decision.action], dim=1))
        check_lockstep(terminated, truncated, t, steps)
        scored = t < steps  # the last look only produces the final observation: nothing to score
        buffer.add(state=h, baseline=baseline, reward=reward.to(h.dtype), location=look.location, obs=obs,
                   look_log_prob=look.log_prob if scored else None, look_entropy=look.entropy if scored else None,
                   look_raw=look.raw if scored else None, decision_log_prob=decision.log_prob,
                   decision_entropy=decision.entropy, decision_raw=decision.raw, step_logits=step_logits)
        if t == steps and logits is not None:
            labels = infos["final_info"]["label"]
    return agent.credited(buffer.get(logits=logits, labels=labels)), obs


# ------------------------------------------------------------------------------------------------
# The hybrid loss
# ------------------------------------------------------------------------------------------------


def gain_rewards(step_logits: Tensor, labels: Tensor) -> Tensor:
    """Each step's gain in the log-probability of the true class, ``r_t = log p_t(y) - log p_{t-1}(y)`` ``(N, T)``,
    ``p_0`` uniform (:func:`glimpse.rewards.prediction_reward`, ``"log_prob_gain"``), for ``step_logits``
    ``(N, T, D)`` and ``labels`` ``(N,)``. The return-to-go of step ``t + 1`` -- what the look ``l_t`` is credited
    with -- is ``log p_T(y) - log p_t(y)``: what the glimpses it led to added."""
    log_p = label_log_prob(step_logits, labels[:, None].expand(step_logits.shape[:2]))  # (N, T)
    previous = torch.cat([log_p.new_full((log_p.shape[0], 1), uniform_log_prob(step_logits.shape[-1])),
                          log_p[:, :-1]], dim=1)
    return prediction_reward(log_p, previous, "log_prob_gain")


def classifier_loss(logits: Tensor, labels: Tensor, step_logits: Tensor | None = None, step_ce: float = 0.0) -> Tensor:
    """The classifier's cross-entropy: of the last step's ``logits`` ``(N, D)`` against ``labels`` ``(N,)``, plus
    with ``step_ce > 0`` ``step_ce`` times the mean over the ``T`` steps of each step's, ``step_logits`` ``(N, T, D)``."""
    loss = F.cross_entropy(logits, labels)
    if step_ce > 0:
        n, steps = step_logits.shape[:2]
        loss = loss + step_ce * F.cross_entropy(step_logits.flatten(0, 1), labels.repeat_interleave(steps))
    return loss


def hybrid_losses(rollout: Rollout, *, entropy_coef: float = 0.0, step_ce: float = 0.0) -> dict[str, Tensor]:
    """RAM's hybrid loss: supervised cross-entropy + REINFORCE with a learned baseline.

    Terms (every ``loss_*`` is to be minimised; ``loss`` is their sum):

    * ``loss_classifier``: cross-entropy of the last step's logits against the labels (0 for Catch), plus
      ``step_ce`` times the mean of every step's (:func:`classifier_loss`; the rollout's ``step_logits``).
    * ``loss_policy``: REINFORCE (:func:`glimpse.reinforce.reinforce_loss`) for the looks
      ``l_1..l_{T-1}``, each credited with the return that follows it, ``G_{t+1} - b_t`` (the rollout's rewards:
      the env's 1 for a correct final decision, and with gain credit each step's gain); for Catch plus REINFORCE for the paddle moves with ``G_t - b_t``.
      The advantages are detached.
    * ``loss_baseline``: mean squared error of ``b_t`` against ``G_t`` (the returns are detached).
    * ``loss_entropy``: ``-entropy_coef`` times the policies' mean entropy (0 when ``entropy_coef=0``).

    Also returned (no gradient): ``accuracy`` (classification: argmax == label; Catch: the catch rate)
    and ``reward`` (mean episode return).
    """
    returns, baselines = rollout.returns, rollout.baselines  # (N, T) each
    zero = baselines.new_zeros(())
    loss_policy, loss_entropy = zero, zero
    if rollout.log_probs.shape[1] > 0:
        where = reinforce_loss(rollout.log_probs, returns[:, 1:], baselines[:, :-1], rollout.entropies,
                               entropy_coef=entropy_coef)
        loss_policy, loss_entropy = where.loss_policy, where.loss_entropy
    if rollout.decision_log_probs is not None:
        move = reinforce_loss(rollout.decision_log_probs, returns, baselines, rollout.decision_entropies,
                              entropy_coef=entropy_coef)
        loss_policy, loss_entropy = loss_policy + move.loss_policy, loss_entropy + move.loss_entropy
    loss_baseline = F.mse_loss(baselines, returns.detach())

    episode_return = rollout.rewards.sum(dim=1)  # (N,)
    if rollout.logits is not None:
        loss_classifier = classifier_loss(rollout.logits, rollout.labels, rollout.step_logits, step_ce)
        accuracy = (rollout.logits.argmax(dim=1) == rollout.labels).float().mean()
    else:
        loss_classifier = zero
        accuracy = (episode_return > 0).float().mean()
    return {
        "loss": loss_classifier + loss_policy + loss_baseline + loss_entropy,
        "loss_classifier": loss_classifier,
        "loss_policy": loss_policy,
        "loss_baseline": loss_baseline,
        "loss_entropy": loss_entropy,
        "accuracy": accuracy.detach(),
        "reward": episode_return.mean().detach(),
    }


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_rollouts(model: nn.Module, env, episodes: int, *, mc_samples: int = 1, seed: int = 0) -> dict[str, float]:
    """Accuracy over ``episodes`` batched episodes (``episodes * N`` examples) of ``env``.

    ``model`` is any agent with a ``rollout(env, obs, deterministic=...)`` method that returns a
    :class:`Rollout` (every :class:`HardRecurrentAgent`).

    Convention:
        Round ``e`` resets ``env`` with seed ``seed + e * N``. In ``split="test"`` that shows test examples
        ``(seed + e * N + i) mod M`` in row ``i`` -- exactly episode ``e`` of a single reset with ``seed`` --
        so with ``N`` dividing ``M`` (the width :func:`agents.build.make_test_env` picks), ``episodes = M / N``
        covers the ``M`` test examples once (other widths count some twice). Every round is first played
        with the mean locations (``deterministic=True``); with ``mc_samples = K > 1`` it is replayed ``K``
        times with sampled locations by resetting with the same seed, which shows the same canvases (and
        start locations) again, and the classifier's softmax is averaged over the ``K`` replays (Catch:
        the ``K`` catch rates are averaged). The env is left reset; ``model`` is put back in its mode.

    Returns:
        ``accuracy`` (``accuracy_mc`` if ``K > 1``, else ``accuracy_mode``), ``accuracy_mode``, ``reward``
        (mean return with the mean locations), ``examples``, ``mc_samples``, and with ``K > 1`` also
        ``accuracy_mc`` and ``reward_mc`` (mean return of the sampled replays). An agent that predicts at every
        step (:attr:`HardRecurrentAgent.predicts_every_step`) also gets ``accuracy_glimpse_t`` for ``t = 1..T``:
        its classifier's accuracy on ``h_t``, after ``t`` glimpses, with the mean locations (the last is
        ``accuracy_mode``): where in the episode its accuracy is made.
    """
    check_positive_int(episodes, "episodes")
    check_positive_int(mc_samples, "mc_samples")
    was_training = model.training
    model.eval()
    num_envs = env.num_envs
    hits_mode = hits_mc = return_mode = return_mc = 0.0
    hits_by_glimpse: Tensor | None = None  # (T,): right answers of the classifier on each h_t
    for e in range(episodes):
        round_seed = seed + e * num_envs
        obs, _ = env.reset(seed=round_seed)
        mode, _ = model.rollout(env, obs, deterministic=True)
        return_mode += float(mode.rewards.sum())
        hits_mode += float(_hits(mode, mode.logits))
        if mode.step_logits is not None and mode.labels is not None:
            hits = (mode.step_logits.argmax(dim=-1) == mode.labels[:, None]).sum(dim=0)  # (T,)
            hits_by_glimpse = hits if hits_by_glimpse is None else hits_by_glimpse + hits
        if mc_samples == 1:
            continue
        probs = 0.0
        for _ in range(mc_samples):
            obs, _ = env.reset(seed=round_seed)
            sampled, _ = model.rollout(env, obs)
            return_mc += float(sampled.rewards.sum()) / mc_samples
            if sampled.logits is None:  # Catch: average the catch rate
                hits_mc += float(_hits(sampled, None)) / mc_samples
                continue
            if not torch.equal(sampled.labels, mode.labels):
                raise RuntimeError("re-seeding the env did not replay the same examples: cannot average over them")
            check_finite(sampled.logits, "the class logits")
            probs = probs + sampled.logits.softmax(dim=1)  # (N, D)
        if mode.logits is not None:
            hits_mc += float((probs.argmax(dim=1) == mode.labels).sum())
    model.train(was_training)

    examples = episodes * num_envs
    out = {"accuracy_mode": hits_mode / examples, "reward": return_mode / examples, "examples": examples,
           "mc_samples": mc_samples}
    if mc_samples > 1:
        out.update(accuracy_mc=hits_mc / examples, reward_mc=return_mc / examples)
    if hits_by_glimpse is not None:
        out.update({f"accuracy_glimpse_{t}": float(hits) / examples for t, hits in enumerate(hits_by_glimpse, 1)})
    out["accuracy"] = out.get("accuracy_mc", out["accuracy_mode"])
    return out


def _hits(episode: Rollout, logits: Tensor | None) -> Tensor:
    """Number of successes in a batch: correct classes, or (Catch) episodes with a positive return."""
    if logits is None:
        return (episode.rewards.sum(dim=1) > 0).sum()
    check_finite(logits, "the class logits")  # a diverged model must not score by argmax of NaN
    return (logits.argmax(dim=1) == episode.labels).sum()
