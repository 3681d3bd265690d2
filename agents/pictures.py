"""What a run draws at each evaluation (TensorBoard, ``scripts/visualize.py``): a hard agent's glimpse paths
on the first test episodes (:func:`replay_test_paths`, :func:`paths_picture`, :func:`picture_at`), a soft
agent's attention (:func:`attention_picture`), and which of them an agent gets (:func:`eval_picture`)."""

from __future__ import annotations

import numpy as np
import torch

from agents.config import Config
from agents.contract import RolloutAgent, SceneAgent
from envs.render import render_attention, render_paths
from glimpse import RetinaSpec

__all__ = ["replay_test_paths", "picture_at", "paths_picture", "attention_picture", "eval_picture"]


def replay_test_paths(model: RolloutAgent, test_env):
    """The first test episodes played with a hard agent's mean locations: ``(pictures, labels, trajectory)``.

    The pictures and labels are cloned before the rollout: the env reuses its tensors at autoreset.
    """
    with torch.no_grad():
        obs, _ = test_env.reset(seed=0)
        pictures, labels = (t.clone() if t is not None else None for t in test_env.scene())
        trajectory, _ = model.rollout(test_env, obs, deterministic=True)
    return pictures, labels, trajectory


def picture_at(pictures: torch.Tensor, i: int, t: int) -> torch.Tensor:
    """Env ``i``'s picture at step ``t``: its canvas, or frame ``t`` of its video (the last one after the end)."""
    return pictures[i] if pictures.dim() == 4 else pictures[i, min(t, pictures.shape[1] - 1)]


def paths_picture(retina: RetinaSpec, pictures: torch.Tensor, trajectory, count: int, *,
                  all_scales: bool = False) -> np.ndarray:
    """``(H, W, 3)`` uint8: the first ``count`` episodes' glimpse paths (:func:`envs.render.render_paths`),
    numbered in order, each tile captioned with its label and the agent's decision and framed green if
    right, red if wrong (Catch: caught or missed; neither for an agent without a final decision).

    ``retina``: the env's (``test_env.retina``); ``pictures``, ``trajectory``: from :func:`replay_test_paths`.
    Only the ``T`` looks the agent read are drawn: the last location of an episode only produced the
    observation after its end."""
    steps = trajectory.rewards.shape[1]  # T
    count = min(count, len(pictures))
    captions = correct = None
    if trajectory.logits is not None and trajectory.labels is not None:  # a class at the last step
        decided, labels = trajectory.logits[:count].argmax(1).tolist(), trajectory.labels[:count].tolist()
        captions = [f"label {y}, decided {d}" for y, d in zip(labels, decided)]
        correct = [d == y for y, d in zip(labels, decided)]
    elif trajectory.decision_log_probs is not None:  # Catch: the last step's reward is 1 when the ball is caught
        correct = (trajectory.rewards[:count, -1] > 0).tolist()
        captions = ["caught" if caught else "missed" for caught in correct]
    return render_paths([picture_at(pictures, i, steps - 1) for i in range(count)],
                        trajectory.locations[:count, :steps], retina=retina, captions=captions, correct=correct,
                        all_scales=all_scales)


def attention_picture(model: SceneAgent, test_env, count: int) -> np.ndarray | None:
    """``(H, W, 3)`` uint8: the first ``count`` test scenes side by side with a soft agent's attention
    (heat maps, sampled regions); None for models that attend everywhere."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        test_env.reset(seed=0)
        pictures = test_env.scene()[0][:count]
        maps = model.attention_maps(model.scene_inputs(test_env)[:count])
    model.train(was_training)
    if not maps:
        return None
    tiles = [render_attention(pictures[i], **{name: value[i] for name, value in maps.items()})
             for i in range(len(pictures))]
    return np.concatenate(tiles, axis=1)


def eval_picture(cfg: Config, model: torch.nn.Module, test_env, count: int = 8) -> tuple[str, np.ndarray] | None:
    """What to draw at an evaluation, by the agent's contract: ``("eval/glimpse_paths", picture)`` for an
    agent that plays episodes, ``("eval/attention", picture)`` for one that attends to what the env shows
    (None if it attends everywhere)."""
    if isinstance(model, RolloutAgent):
        pictures, _, trajectory = replay_test_paths(model, test_env)
        return "eval/glimpse_paths", paths_picture(test_env.retina, pictures, trajectory, count)
    if isinstance(model, SceneAgent) and (picture := attention_picture(model, test_env, count)) is not None:
        return "eval/attention", picture
    return None
