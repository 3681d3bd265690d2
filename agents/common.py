"""The one contract between an attention model and the scripts, and what the image-reading agents share.

``scripts/train.py``, ``evaluate.py`` and ``compare.py`` drive every agent the same way (the contract is
also written as ``typing.Protocol`` s in :mod:`agents.contract`). An agent is an ``nn.Module`` that also has:

* ``action_mode`` (class attribute): how it uses :class:`envs.GlimpseVectorEnv`. ``"continuous"`` or
  ``"discrete"``: a *hard* agent, which steps the env in that mode and sees only the glimpses the env
  returns. ``None``: an agent that reads what the env shows (``env.scene()``, ``env.item_glimpses()``)
  and never steps it -- the full-image baselines and the soft, differentiable attention models.
* ``train_losses(env, obs) -> (losses, obs)``: one update's worth of data from ``env`` (a batch of
  episodes, or of scenes) and its losses: ``losses["loss"]`` is what the optimiser minimises; every other
  entry is a detached scalar logged as ``train/<name>``. ``obs`` is the env's current observation
  (hard agents continue from it; the others pass it through).
* ``evaluate(env, episodes, *, mc_samples=1, seed=0) -> dict[str, float]``: metrics over ``episodes``
  batched episodes of the fixed test split, round ``e`` reset with ``seed + e * N`` (so every agent sees
  the same test examples), at least ``accuracy``; each is logged as ``eval/<name>``.
* ``inference(env)``: one image's inference pass, what :func:`agents.flops.flops_per_image` counts.

:class:`SceneClassifier` implements the contract for every model that maps what the env shows to class
logits by backpropagation; a subclass writes ``forward`` (and, if it reads something other than the
canvas, ``scene_inputs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.recurrent import CoreNetwork
from glimpse.checks import check_finite, check_positive_int, check_shape

__all__ = ["SceneClassifier", "RecurrentSoftAttention", "classification_losses", "soft_attention_losses",
           "check_still_canvas", "check_canvas_shape", "box_corners"]


def box_corners(theta: Tensor) -> Tensor:
    """``(..., 4, 2)``: where an affine ``theta`` ``(..., 2, 3)`` (output -> input, normalized) puts the output's
    corners ``(-1, -1), (1, -1), (1, 1), (-1, 1)`` in the input -- the region a transformer samples."""
    unit = theta.new_tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]])  # (4, 3)
    return torch.einsum("...ij,kj->...ki", theta, unit)


def classification_losses(logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Cross-entropy of ``logits`` ``(N, D)`` against ``labels`` ``(N,)``; accuracy and reward (no grad).

    ``reward`` is the env's reward for the same decision (1 when correct), so that hard and soft agents
    log ``train/reward`` on one scale.
    """
    check_shape(labels, "labels", "(N,)", dims=(logits.shape[0],))
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.argmax(dim=1) == labels).float().mean().detach()
    return {"loss": loss, "loss_classifier": loss.detach(), "accuracy": accuracy, "reward": accuracy}


def check_canvas_shape(canvas_shape: Sequence[int]) -> tuple[int, int, int]:
    """``canvas_shape`` as a ``(C, H, W)`` tuple of positive ints, or a ``ValueError`` that names it."""
    shape = tuple(canvas_shape)
    if len(shape) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"canvas_shape must be (C, H, W) positive ints, e.g. env.canvas_shape; got {canvas_shape!r}")
    return shape


def check_still_canvas(env, agent: str) -> None:
    """Refuse tasks that are not still canvases with labels (video, Catch), naming the agent."""
    if not env.is_still:
        raise ValueError(f"{agent} classifies still canvases; task {env.task_spec.name!r} is a {env.task_spec.kind} "
                         f"(use a task whose kind is 'still')")


class SceneClassifier(nn.Module):
    """Base of the agents that classify what the env shows, trained by backpropagation alone.

    Convention:
        ``scene_inputs(env)`` turns the env's current scenes into the model's input -- by default the
        canvases ``(N, C, H, W)`` as float in ``[0, 1]`` (a copy: the env overwrites its own at reset);
        ``forward(inputs)`` returns logits ``(N, D)``. ``eval_logits`` may return several named logits
        (``{"accuracy": ..., "accuracy_scale1": ...}``): each becomes one evaluation metric.
    """

    action_mode: ClassVar[str | None] = None

    @classmethod
    def from_env(cls, env, **kwargs: Any):
        """Sized for ``env``'s canvases ``(C, H, W)`` and its classes; ``kwargs`` are the constructor's."""
        return cls(env.canvas_shape, env.num_decisions, **kwargs)

    def scene_inputs(self, env) -> Tensor:
        """The input for ``env``'s current scenes: the canvases as float in [0, 1], ``(N, C, H, W)``."""
        check_still_canvas(env, type(self).__name__)
        canvases, _ = env.scene()
        return canvases.float() / 255 if canvases.dtype == torch.uint8 else canvases.float().clone()

    def losses(self, inputs: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """The training loss of one batch (cross-entropy; subclasses add their regularisers)."""
        return classification_losses(self(inputs), labels)

    def eval_logits(self, inputs: Tensor) -> dict[str, Tensor]:
        """Logits to score at evaluation, by metric name."""
        return {"accuracy": self(inputs)}

    def attention_maps(self, inputs: Tensor) -> dict[str, Tensor]:
        """Where the model attends, for pictures (:func:`envs.render.render_attention`): ``heat``
        ``(N, h, w)`` weights over a grid on the canvas and/or ``quads`` ``(N, Q, 4, 2)`` sampled regions.
        Full-image models attend everywhere: an empty dict."""
        return {}

    def train_losses(self, env, obs: Any = None) -> tuple[dict[str, Tensor], Any]:
        inputs, labels = self.scene_inputs(env), env.scene()[1].clone()
        env.reset()  # draw the next batch of scenes
        return self.losses(inputs, labels), obs

    @torch.no_grad()
    def evaluate(self, env, episodes: int, *, mc_samples: int = 1, seed: int = 0) -> dict[str, float]:
        """Accuracies over ``episodes * N`` test scenes; deterministic, so ``mc_samples`` is ignored."""
        check_positive_int(episodes, "episodes")
        was_training = self.training
        self.eval()
        hits: dict[str, float] = {}
        for e in range(episodes):
            env.reset(seed=seed + e * env.num_envs)
            labels = env.scene()[1]
            for name, logits in self.eval_logits(self.scene_inputs(env)).items():
                check_finite(logits, f"the {name} logits")  # a diverged model must not score by argmax of NaN
                hits[name] = hits.get(name, 0.0) + float((logits.argmax(dim=1) == labels).sum())
        self.train(was_training)
        examples = episodes * env.num_envs
        return {**{name: count / examples for name, count in hits.items()}, "examples": examples}

    def inference(self, env) -> None:
        """One (blank) canvas of ``env`` through ``forward``, for FLOP counting."""
        self(torch.zeros(1, *env.canvas_shape))


class RecurrentSoftAttention(nn.Module):
    r"""``T`` steps of soft attention over ``K`` value vectors, then a classifier: the shared reader of the
    soft item-wise and spatial models (Xu et al. 2015, Section 4.2; Bahdanau et al. 2015's scoring).

    ``e_tk = w^T tanh(W h_{t-1} + U a_k)``, ``alpha_t = softmax_k(e_t)``, ``z_t = sum_k alpha_tk a_k``,
    ``h_t = f_h(h_{t-1}, z_t)`` (:class:`agents.recurrent.CoreNetwork`, ``h_0 = 0``); logits ``= Linear(h_T)``.

    Convention:
        ``values`` ``(N, K, V)``: the ``K`` things to attend to (item encodings, feature-map cells).
        Returns ``(logits (N, D), alpha (N, T, K))``; each ``alpha[n, t]`` sums to 1.

    Args:
        value_size: ``V``.
        num_classes: ``D``.
        steps: ``T``.
        hidden: width of ``h_t``.
        attention_hidden: width of the ``tanh`` layer.
        core: ``"rnn"`` or ``"lstm"``.
    """

    def __init__(self, value_size: int, num_classes: int, *, steps: int, hidden: int = 256,
                 attention_hidden: int = 128, core: str = "rnn") -> None:
        super().__init__()
        check_positive_int(steps, "steps")
        self.steps, self.value_size = steps, value_size
        self.core = CoreNetwork(value_size, hidden, core)
        self.query = nn.Linear(hidden, attention_hidden, bias=False)  # W
        self.key = nn.Linear(value_size, attention_hidden)  # U
        self.score = nn.Linear(attention_hidden, 1, bias=False)  # w
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, values: Tensor) -> tuple[Tensor, Tensor]:
        check_shape(values, "values", f"(N, K, {self.value_size})", dims=(None, None, self.value_size))
        n = values.shape[0]
        keys = self.key(values)  # (N, K, A): U a_k, once per image
        state = self.core.initial_state(n, values.device)
        h = values.new_zeros(n, self.core.hidden_size)
        alphas = []
        for _ in range(self.steps):
            scores = self.score(torch.tanh(self.query(h)[:, None] + keys)).squeeze(2)  # (N, K)
            alpha = F.softmax(scores, dim=1)
            h, state = self.core(torch.einsum("nk,nkv->nv", alpha, values), state)  # z_t = sum_k alpha_k a_k
            alphas.append(alpha)
        return self.classifier(h), torch.stack(alphas, dim=1)


def soft_attention_losses(logits: Tensor, alpha: Tensor, labels: Tensor, doubly_stochastic: float = 0.0
                          ) -> dict[str, Tensor]:
    """Cross-entropy plus Show, Attend and Tell's doubly stochastic regulariser (eq. 14), and the
    attention's mean entropy to log.

    The regulariser is ``lambda * sum_k (tau - sum_t alpha_tk)^2`` averaged over the batch, for
    ``alpha`` ``(N, T, K)``. SAT uses ``tau = 1``, which ``T < K`` steps cannot reach; we use
    ``tau = T / K``, whose minimum is an episode that attends to every item equally.
    """
    out = classification_losses(logits, labels)
    steps, items = alpha.shape[1:]
    regulariser = doubly_stochastic * ((steps / items - alpha.sum(dim=1)) ** 2).sum(dim=1).mean()
    out["loss"] = out["loss"] + regulariser
    out["loss_attention"] = regulariser.detach()
    out["attention_entropy"] = -(alpha * alpha.clamp_min(1e-12).log()).sum(dim=2).mean().detach()
    return out
