"""RAM, the Recurrent Attention Model: Mnih, Heess, Graves & Kavukcuoglu, "Recurrent Models of Visual
Attention", NIPS 2014.

The agent never sees the whole image. At step ``t`` it receives a retina glimpse ``x_t`` taken at the
location ``l_{t-1}`` it chose at the previous step, folds it into a recurrent state ``h_t``, and from ``h_t``
picks where to look next (``l_t``) and, at the end, a decision (a class, or in Catch a paddle move at
every step). The model follows the paper's Section 3 (Figure 1) top to bottom; its parts are the shared
ones of every hard recurrent agent (:mod:`agents.recurrent`), configured as the paper has them:

1. Glimpse network ``f_g`` (Fig. 1B, :class:`~agents.recurrent.GlimpseNetwork`):
   ``g_t = f_g(x_t, l_{t-1})``. The retina ``rho(x, l)`` itself is the env's: a hard agent takes its
   glimpses from :class:`envs.GlimpseVectorEnv`, it never crops.
2. Core network ``f_h`` (:class:`~agents.recurrent.CoreNetwork`): ``h_t = f_h(h_{t-1}, g_t)``, the
   paper's rectifier RNN or an LSTM.
3. Action networks on ``h_t``: the location network ``f_l``
   (:class:`~agents.recurrent.GaussianLocationHead`, a tanh-squashed Gaussian with a fixed std), the
   classifier ``f_a`` (:class:`~agents.recurrent.ClassifyHead`, a linear softmax layer) or, for Catch,
   a categorical paddle policy (:class:`~agents.recurrent.PaddleHead`), and a learned baseline ``b_t``.
4. :func:`rollout`: one episode of the batched env, all ``N`` rows in lockstep.
5. :func:`ram_losses`: the paper's hybrid loss -- cross-entropy for the classifier, REINFORCE
   (Williams, 1992) with the learned baseline for the locations (and Catch's paddle), and the baseline's
   squared error.
6. :func:`evaluate_rollouts`: accuracy with the mean locations, and with the softmax averaged over ``K`` sampled
   rollouts of the same examples.

Time indexing: the observation after ``reset`` is the glimpse at the env's start location ``l_0``. Step
``t = 1..T`` computes ``h_t`` from that glimpse, samples ``l_t`` and sends ``(l_t, decision scores)`` to the
env, whose reward ``r_t`` and next glimpse (at ``l_t``) come back. ``l_T`` only produces the episode's
final observation, which nothing reads, so REINFORCE scores ``l_1..l_{T-1}`` (``T' = T - 1`` terms).
``T`` is the env's episode length (classification: ``num_glimpses``; video: ``frames``; Catch:
``canvas - 1``).

What carries gradient (the detachment rules, each tested in ``tests/agents/test_ram.py``):

* The location sent to the env and fed back to the glimpse network is a **constant**: a sample (drawn
  without gradient) or, deterministically, ``tanh(mu).detach()``. Feeding ``mu + noise`` with ``mu``
  attached, a known bug of popular reimplementations, would let the classifier's loss train the location
  network by backpropagation through the location input, which is not the model's gradient (the glimpse
  content does not depend differentiably on ``l``). The glimpse network reads the env's copy of ``l``.
* REINFORCE reaches the location network (and the paddle policy) only through ``log pi``; the advantages
  ``R - b`` are detached, so it never reaches the baseline, and the classifier is not on its path.
* The baseline regression reaches only the baseline head (and, with ``reinforce_into_core=True``, the
  core), never the policies.
* ``reinforce_into_core`` (default ``False``): whether the location network and the baseline read ``h_t``
  or ``h_t.detach()``. The paper trains every parameter with the hybrid objective, so its REINFORCE
  gradient also trains the core and glimpse networks (``True``). The default follows the widely used
  reimplementations and detaches: the core is then trained by the low-variance supervised signal alone,
  and the location policy learns to read it. The decision head (classifier, or Catch's paddle policy)
  always reads the attached ``h_t``: it is what trains the core -- in Catch, where there is no
  classifier, the paddle's REINFORCE gradient is the core's only training signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from agents.episodes import Rollout
from agents.recurrent import (
    CoreNetwork,
    FixedCentreHead,
    GaussianLocationHead,
    GlimpseNetwork,
    HardRecurrentAgent,
    HardRecurrentOptions,
    check_lockstep,
    episode_steps,
    evaluate_rollouts,
    gist_shape_of,
    rollout,
)
from agents.recurrent import hybrid_losses as ram_losses
from agents.ranges import Range

__all__ = [
    "GlimpseNetwork",
    "CoreNetwork",
    "RAM",
    "RAMOptions",
    "Rollout",
    "rollout",
    "ram_losses",
    "evaluate_rollouts",
    "episode_steps",
    "check_lockstep",
]

# "center": an ablation without attention -- every glimpse at the image centre (the env must start there
# too, GlimpseVectorEnv(start="center")), no location network: what the retina alone is worth.
LOCATIONS = {"learned": GaussianLocationHead, "center": FixedCentreHead}


@dataclass
class RAMOptions(HardRecurrentOptions):
    """RAM's options (``scripts/train.py --agent ram`` flags); :meth:`RAM.from_env` takes them as keywords."""

    core: Literal["rnn", "lstm"] = "rnn"
    """RAM's core network"""
    hidden: Annotated[int, Range(1)] = 256
    """width of the glimpse features g_t and the core's state h_t (256 in the paper)"""
    std: Annotated[float, Range(0, open_low=True)] = 0.17
    """std of the Gaussian location policy (pre-tanh), fixed as in the paper (the start when learned or scheduled)"""
    learn_std: bool = False
    """ram: learn the location std (a state-independent log-std parameter) instead of fixing it"""
    std_final: Annotated[float | None, Range(0, open_low=True)] = None
    """ram: schedule the location std linearly from --std at the start of training to this at its end (none: fixed)"""
    location: Literal["learned", "center"] = "learned"
    """ram: where to look -- learned (RAM), or every glimpse at the centre (the no-attention ablation)"""
    scale_gain: Annotated[float, Range(0, open_low=True)] = 1.0
    """ram: multiply retina scale k by this**k before the glimpse network: 1 reads the retina's area means (the
    paper), 4 makes them sums, so a 1-px object (Catch's ball) reads 1 at every scale instead of 1/16 at the third"""
    reinforce_into_core: bool = False
    """ram: let the location REINFORCE and the baseline regression train the core and glimpse networks too,
    as in the paper (default: they read a detached state, as popular reimplementations do)"""


class RAM(HardRecurrentAgent):
    """The Recurrent Attention Model: glimpse network, core, location network, classifier, baseline.

    Heads on ``h_t`` (``(N, hidden)``):

    * ``locator``: :class:`~agents.recurrent.GaussianLocationHead`, ``l_t = tanh(u)``, ``u ~ N(W h_t, std^2)``.
    * ``classifier`` (``decision="classify"``): ``Linear(hidden, num_classes)``, read at the last step.
    * ``paddle`` (``decision="catch"``): a categorical policy over the ``num_classes`` moves (3 in Catch:
      left, stay, right), sampled at every step.
    * ``baseline``: ``Linear(hidden, 1)``, ``b_t``, regressed on the return-to-go.

    Args:
        glimpse_shape: ``(S, C, g, g)``, the env's glimpse observation shape.
        num_classes: number of decision scores ``D`` (classes; 3 for Catch).
        hidden: width of ``g_t`` and ``h_t`` (256 in the paper).
        glimpse_hidden: width of ``h_g`` and ``h_l`` (128 in the paper).
        core: ``"rnn"`` (the paper's classification core) or ``"lstm"``.
        std: the location policy's (pre-tanh) standard deviation; see ``GaussianLocationPolicy``.
        learn_std: learn the location std instead of fixing it (the paper fixes it).
        std_final: schedule the std linearly from ``std`` to this over training (:class:`GaussianLocationHead`).
        decision: ``"classify"`` (classifier, trained by cross-entropy) or ``"catch"`` (paddle policy,
            trained by REINFORCE with the game's reward; no classifier loss).
        reinforce_into_core: let the REINFORCE and baseline gradients reach the core and glimpse
            networks (the paper's hybrid objective) instead of stopping them at ``h_t`` (default).
        entropy_coef: entropy bonus of the policies in :meth:`train_losses` (see :func:`ram_losses`).
        location: ``"learned"`` (RAM) or ``"center"`` (the no-attention ablation: no location network).
        scale_gain: retina scale ``k`` times ``scale_gain**k`` into the glimpse network (1: the paper's means).
        step_ce, credit, final_reward: per-step prediction and credit (:class:`~agents.recurrent.HardRecurrentAgent`).
        gist_shape: ``(C, G, G)`` of a coarse view of the canvas read by DRAM's context network (None: none).
        glimpse_encoder: ``"linear"`` (the paper's glimpse network) or ``"conv"``.

    The scripts drive it through the contract of :mod:`agents.common`: :meth:`train_losses`,
    :meth:`evaluate`, :meth:`inference`; it steps the env with continuous actions.
    """

    action_mode = "continuous"

    def __init__(self, glimpse_shape: tuple[int, int, int, int], num_classes: int, *, hidden: int = 256,
                 glimpse_hidden: int = 128, core: str = "rnn", std: float = 0.17, learn_std: bool = False,
                 decision: str = "classify", reinforce_into_core: bool = False, entropy_coef: float = 0.0,
                 location: str = "learned", scale_gain: float = 1.0, std_final: float | None = None,
                 step_ce: float = 0.0, credit: str = "final", final_reward: bool = True,
                 gist_shape: tuple[int, int, int] | None = None, glimpse_encoder: str = "linear") -> None:
        if location not in LOCATIONS:
            raise ValueError(f"location must be one of {tuple(LOCATIONS)}; got {location!r}")
        if location != "learned" and (learn_std or std_final is not None):
            raise ValueError(f"learn_std and std_final shape the learned location policy; location={location!r} "
                             f"has none")
        where_kwargs = dict(std=std, learn_std=learn_std, std_final=std_final) if location == "learned" else {}
        super().__init__(glimpse_shape, num_classes, where=LOCATIONS[location], where_kwargs=where_kwargs,
                         decision=decision, hidden=hidden, glimpse_hidden=glimpse_hidden, core=core,
                         reinforce_into_core=reinforce_into_core, entropy_coef=entropy_coef, scale_gain=scale_gain,
                         step_ce=step_ce, credit=credit, final_reward=final_reward, gist_shape=gist_shape,
                         glimpse_encoder=glimpse_encoder)
        self.location = location

    @classmethod
    def from_env(cls, env, gist: int = 0, **kwargs: Any) -> RAM:
        """A RAM sized for ``env`` (a continuous-action :class:`envs.GlimpseVectorEnv`); Catch gets ``decision="catch"``;
        ``gist=G`` reads the env's ``G x G`` coarse view (an env made with ``gist=G``)."""
        glimpse_shape = tuple(int(s) for s in env.single_observation_space["glimpse"].shape)
        kwargs.setdefault("decision", "catch" if env.decision == "paddle" else "classify")
        return cls(glimpse_shape, env.num_decisions, gist_shape=gist_shape_of(env, gist), **kwargs)
