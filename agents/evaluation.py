"""A run's evaluation: :func:`evaluate_split` scores an agent on a fixed split (test, or validation), seeded
and isolated from training's random stream; under ``torchrun`` each rank evaluates its share and the metrics
are combined."""

from __future__ import annotations

import torch

from agents import distributed
from agents.build import eval_share
from agents.config import Config

__all__ = ["evaluate_split"]


def evaluate_split(cfg: Config, model: torch.nn.Module, split_env, mc_samples: int = 1,
                   ctx: distributed.Context | None = None) -> dict:
    """The agent's metrics on the split ``split_env`` plays: the test split (:func:`agents.build.make_test_env`), the
    validation split (:func:`agents.build.make_val_env`) or fresh canvases of the training items
    (:func:`agents.build.make_split_env`) (hard agents: mean locations, and the MC average when ``mc_samples > 1``).

    Under torchrun (``ctx``, with ``split_env`` made with the same ``ctx``) each rank
    evaluates its share of the examples (:func:`eval_share`), and the metrics, means over examples, are
    combined weighted by each share's ``examples`` (summed): every rank returns the metrics of all
    the split's examples, each evaluated once. A ``ValueError`` of the model's (a diverged model's
    non-finite outputs) on any rank is raised on every rank.
    """
    ctx = ctx or distributed.Context()
    first, count = eval_share(cfg, ctx, split_env.split)
    episodes = max(1, count // split_env.num_envs)  # make_test_env and make_val_env make this exact
    # Seeded and isolated: a checkpoint always gets the same Monte-Carlo score, and training's random
    # stream is the same whether or how often it is evaluated.
    with torch.random.fork_rng(devices=[split_env.device] if split_env.device.type == "cuda" else []):
        torch.manual_seed(cfg.seed + ctx.rank)
        if not ctx.is_distributed:
            return model.evaluate(split_env, episodes, mc_samples=mc_samples)
        metrics = distributed.run_everywhere(  # a failure on one rank is raised on all of them
            lambda: model.evaluate(split_env, episodes, mc_samples=mc_samples, seed=first), (ValueError,))
    shares = distributed.all_gather_object(metrics)
    total = sum(share["examples"] for share in shares)
    return {name: total if name == "examples" else sum(share[name] * share["examples"] for share in shares) / total
            for name in metrics}
