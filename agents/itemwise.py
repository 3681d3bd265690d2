"""Item-wise attention, hard and soft: Xu, Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel & Bengio, "Show,
Attend and Tell: Neural Image Caption Generation with Visual Attention", ICML 2015 (Sections 4.1-4.2),
with Bahdanau, Cho & Bengio's additive attention (ICLR 2015), on the glimpse tasks.

**Items.** The canvas is cut into the ``K = grid x grid`` cells of the env's discrete action mode
(:meth:`envs.GlimpseVectorEnv.item_centers`); item ``k`` is what the env's retina sees at cell ``k``'s
centre ``l_k``. Its annotation vector is RAM's glimpse network on it, ``a_k = f_g(x_k, l_k)`` (Mnih et
al. 2014, Fig. 1B), so both agents below encode a look exactly as RAM does, and differ from RAM and from
each other only in how they choose what to look at.

**Hard** (:class:`HardItemAttention`, SAT's "hard" attention, Section 4.1): the stochastic attention
``s_t`` is a categorical variable over the items. At step ``t`` the recurrent state
``h_t = f_h(h_{t-1}, a_{k_{t-1}})`` picks the next item ``k_t ~ Categorical(softmax(W h_t))``
(:class:`agents.recurrent.CategoricalItemHead`); the env, stepped in its discrete action mode, moves the
glimpse to cell ``k_t``, so the agent only ever sees the items it picks (the first glimpse is the env's
start). The classifier reads ``h_T``. It is the one hard recurrent rollout
(:mod:`agents.recurrent`) with that where head. Training is SAT's REINFORCE-style learning rule, in
RAM's hybrid form (:func:`agents.recurrent.hybrid_losses`): cross-entropy,
REINFORCE with a learned baseline (reward 1 for a correct answer), an entropy bonus
(``entropy_coef``, SAT's ``lambda_e``). SAT's variance trick, an option: with probability
``expected_context_prob`` (SAT: 0.5), drawn once per minibatch, the minibatch instead feeds the core the
*expected* context ``sum_k pi_k(h_{t-1}) a_k`` -- which needs every item's glimpse
(:meth:`envs.GlimpseVectorEnv.item_glimpses`) -- and is trained by backpropagation alone, through ``pi``.

**Soft** (:class:`SoftItemAttention`, SAT's "soft" attention): the same glimpse, core and classifier
networks, but each step attends to every item at once: ``e_tk = w^T tanh(W h_{t-1} + U a_k)``,
``alpha_t = softmax_k(e_t)``, context ``z_t = sum_k alpha_tk a_k``, ``h_t = f_h(h_{t-1}, z_t)`` for
``t = 1..T``; the classifier reads ``h_T``. Everything is trained by backpropagation. The optional doubly
stochastic regulariser (SAT eq. 14) adds ``lambda * sum_k (tau - sum_t alpha_tk)^2``; SAT uses
``tau = 1``, which ``T < K`` steps cannot reach, so we use ``tau = T / K``: its minimum is an episode that
covers every item equally (:func:`agents.common.soft_attention_losses`).

The hard agent's policy cannot score items by their content: it has not seen them. The soft agent
scores all ``K`` items at every step, at ``K`` glimpse-network passes per image (see
:func:`agents.flops.flops_per_image`).

Gradients (tested in ``tests/agents/test_itemwise.py``): the hard where-policy gets REINFORCE gradient only,
and reads ``h_t.detach()`` (RAM's ``reinforce_into_core=False``), except in an expected-context
minibatch, where the cross-entropy trains it through ``pi``; the soft attention gets the cross-entropy's
gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from torch import Tensor

from agents.common import RecurrentSoftAttention, SceneClassifier, check_still_canvas, soft_attention_losses
from agents.recurrent import (CategoricalItemHead, GlimpseNetwork, HardRecurrentAgent, HardRecurrentOptions,
                              gist_shape_of)
from agents.ranges import Range

__all__ = ["HardItemAttention", "HardItemOptions", "SoftItemAttention", "SoftItemOptions"]


@dataclass
class HardItemOptions(HardRecurrentOptions):
    """Hard item-wise attention's options (``--agent item-hard`` flags), :meth:`HardItemAttention.from_env`'s keywords."""

    core: Literal["rnn", "lstm"] = "rnn"
    """the core network"""
    expected_context_prob: Annotated[float, Range(0, 1)] = 0.0
    """item-hard: chance per minibatch of training on the expected context instead of the sample (Show, Attend and Tell: 0.5)"""


@dataclass
class SoftItemOptions:
    """Soft item-wise attention's options (``--agent item-soft`` flags), :meth:`SoftItemAttention.from_env`'s keywords."""

    core: Literal["rnn", "lstm"] = "rnn"
    """the core network"""
    doubly_stochastic: Annotated[float, Range(0)] = 0.0
    """item-soft: weight of Show, Attend and Tell's doubly stochastic attention regulariser (0: off)"""


def _glimpse_shape(env) -> tuple[int, int, int, int]:
    return tuple(int(s) for s in env.single_observation_space["glimpse"].shape)


def _check_items(item_centers: Tensor, env) -> None:  # the soft agent's; the hard one's is its where head's
    """The env must cut its canvas into the items the agent was built for."""
    centers = env.item_centers().to(item_centers.device)
    if centers.shape != item_centers.shape or not torch.allclose(centers, item_centers):
        raise ValueError(f"the agent was built for {len(item_centers)} items; the env has {len(centers)} "
                         f"(grid {env.grid}): build the agent with from_env on an env of the same grid")


# ------------------------------------------------------------------------------------------------
# Hard: a categorical where-policy over the env's cells, REINFORCE
# ------------------------------------------------------------------------------------------------


class HardItemAttention(HardRecurrentAgent):
    """SAT's hard attention: the hard recurrent agent with a categorical where-head over the env's ``K`` grid cells.

    Convention:
        Steps a :class:`envs.GlimpseVectorEnv` in ``action_mode="discrete"``: each action is
        ``[k % grid, k // grid, decision]``. ``locator`` is a
        :class:`~agents.recurrent.CategoricalItemHead` over the ``K`` items; the rest (glimpse network,
        core, classifier, baseline, the rollout and its loss, :func:`agents.recurrent.hybrid_losses`) is
        every hard recurrent agent's. :attr:`Rollout.locations` holds the centres of the cells looked at.

    Args:
        glimpse_shape: ``(S, C, g, g)``, the env's glimpse observation shape.
        num_classes: number of classes ``D``.
        item_centers: ``(K, 2)`` the env's :meth:`~envs.GlimpseVectorEnv.item_centers`.
        expected_context_prob: chance per minibatch of training on the expected context (SAT: 0.5).
        **kwargs: :class:`~agents.recurrent.HardRecurrentAgent`'s (``hidden``, ``glimpse_hidden``,
            ``core``, ``entropy_coef``, ``reinforce_into_core``, ``step_ce``, ``credit``, ``final_reward``,
            ``gist_shape``, ``glimpse_encoder``).
    """

    action_mode = "discrete"

    def __init__(self, glimpse_shape: tuple[int, int, int, int], num_classes: int, *, item_centers: Tensor,
                 expected_context_prob: float = 0.0, **kwargs: Any) -> None:
        if kwargs.pop("decision", "classify") != "classify":
            raise ValueError("item-wise attention classifies; it does not play Catch")
        if expected_context_prob > 0 and kwargs.get("gist_shape") is not None:
            raise ValueError("expected_context_prob > 0 trains the item head on the core's state, a gist gives it "
                             "its own: use one or the other")
        super().__init__(glimpse_shape, num_classes, where=CategoricalItemHead,
                         where_kwargs=dict(item_centers=item_centers, expected_context_prob=expected_context_prob),
                         **kwargs)
        self._register_load_state_dict_pre_hook(_item_centers_moved)

    @property
    def item_centers(self) -> Tensor:
        """``(K, 2)`` the centres of the items (grid cells) the agent chooses among."""
        return self.locator.item_centers

    @property
    def expected_context_prob(self) -> float:
        return self.locator.expected_context_prob

    @classmethod
    def from_env(cls, env, gist: int = 0, **kwargs: Any) -> HardItemAttention:
        """Sized for ``env`` (discrete action mode): its glimpses, classes and grid cells, and its gist (``gist=G``)."""
        if env.decision != "classify":
            raise ValueError("item-wise attention classifies; it does not play Catch")
        return cls(_glimpse_shape(env), env.num_decisions, item_centers=env.item_centers().cpu(),
                   gist_shape=gist_shape_of(env, gist), **kwargs)

    def expected_context(self, env, probs: Tensor) -> Tensor:
        """``sum_k pi_k a_k`` ``(N, hidden)`` over every item of what ``env`` shows now; ``probs`` ``(N, K)``."""
        return self.locator.expected_context(self.encode, env, probs)


def _item_centers_moved(state_dict, prefix, *args) -> None:
    """Checkpoints written before the where head owned the item centres kept them at ``item_centers``."""
    if prefix + "item_centers" in state_dict:
        state_dict[prefix + "locator.item_centers"] = state_dict.pop(prefix + "item_centers")


# ------------------------------------------------------------------------------------------------
# Soft: additive attention over every item, backpropagation
# ------------------------------------------------------------------------------------------------


class SoftItemAttention(SceneClassifier):
    """SAT's soft attention over the env's ``K`` items, for ``steps`` steps, then a classifier.

    Convention:
        Input: every item's glimpse, ``(N, K, S, C, g, g)`` (:meth:`envs.GlimpseVectorEnv.item_glimpses`),
        taken at ``item_centers`` ``(K, 2)``; ``a_k = f_g(x_k, l_k)`` ``(N, K, hidden)``, read by
        :class:`agents.common.RecurrentSoftAttention`. ``forward`` returns logits ``(N, D)``;
        :meth:`attend` also returns the attention weights ``alpha`` ``(N, T, K)``.

    Args:
        glimpse_shape: ``(S, C, g, g)``.
        num_classes: number of classes ``D``.
        item_centers: ``(K, 2)`` the env's item centres.
        steps: attention steps ``T`` (the hard agents' glimpses per image).
        hidden: width of ``a_k``, ``z_t`` and ``h_t`` (RAM's 256).
        glimpse_hidden: RAM's ``h_g`` / ``h_l`` width (128).
        core: ``"rnn"`` or ``"lstm"``.
        doubly_stochastic: weight ``lambda`` of the doubly stochastic regulariser (0: off).
    """

    def __init__(self, glimpse_shape: tuple[int, int, int, int], num_classes: int, *, item_centers: Tensor,
                 steps: int = 6, hidden: int = 256, glimpse_hidden: int = 128, core: str = "rnn",
                 doubly_stochastic: float = 0.0) -> None:
        super().__init__()
        if doubly_stochastic < 0:
            raise ValueError(f"doubly_stochastic must be >= 0; got {doubly_stochastic!r}")
        self.glimpse_shape = tuple(glimpse_shape)
        self.doubly_stochastic = float(doubly_stochastic)
        self.register_buffer("item_centers", item_centers.detach().to(torch.float32).clone())  # (K, 2)
        self.glimpse_net = GlimpseNetwork(math.prod(glimpse_shape), glimpse_hidden, glimpse_hidden, hidden)
        self.reader = RecurrentSoftAttention(hidden, num_classes, steps=steps, hidden=hidden, core=core)

    @classmethod
    def from_env(cls, env, **kwargs: Any) -> SoftItemAttention:
        """Sized for ``env``: its glimpses, classes and grid cells; ``steps`` its glimpses per episode."""
        check_still_canvas(env, cls.__name__)
        kwargs.setdefault("steps", env.episode_steps)
        return cls(_glimpse_shape(env), env.num_decisions, item_centers=env.item_centers().cpu(), **kwargs)

    def scene_inputs(self, env) -> Tensor:
        """Every item's glimpse of the env's current canvases, ``(N, K, S, C, g, g)``."""
        check_still_canvas(env, type(self).__name__)
        _check_items(self.item_centers, env)
        return env.item_glimpses()

    def attend(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits (N, D), alpha (N, T, K))`` for item glimpses ``(N, K, S, C, g, g)``."""
        n, k = items.shape[:2]
        if tuple(items.shape[2:]) != self.glimpse_shape or k != len(self.item_centers):
            raise ValueError(f"items must be (N, {len(self.item_centers)}, {', '.join(map(str, self.glimpse_shape))}); "
                             f"got {tuple(items.shape)}")
        a = self.glimpse_net(items.flatten(0, 1), self.item_centers.repeat(n, 1)).view(n, k, -1)  # (N, K, hidden)
        return self.reader(a)

    def forward(self, items: Tensor) -> Tensor:
        return self.attend(items)[0]

    def inference(self, env) -> None:
        """One image's ``K`` (blank) item glimpses through ``forward``, for FLOP counting."""
        self(torch.zeros(1, len(self.item_centers), *self.glimpse_shape))

    def attention_maps(self, items: Tensor) -> dict[str, Tensor]:
        """``heat``: each grid cell's attention, averaged over the steps, ``(N, grid, grid)``."""
        grid = round(len(self.item_centers) ** 0.5)
        return {"heat": self.attend(items)[1].mean(dim=1).view(-1, grid, grid)}

    def losses(self, items: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Cross-entropy plus the doubly stochastic regulariser (:func:`agents.common.soft_attention_losses`)."""
        logits, alpha = self.attend(items)
        return soft_attention_losses(logits, alpha, labels, self.doubly_stochastic)
