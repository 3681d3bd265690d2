"""What a run is built of, from its :class:`agents.config.Config`: the task's batched env
(:func:`make_env`) and its fixed test split (:func:`make_test_env`, :func:`eval_share`,
:func:`capped_to_test_split`), the agent (:func:`make_agent`) and its trainer (:func:`check_algo`,
:func:`make_trainer`). Under ``torchrun`` each process builds its own share."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import gymnasium as gym
from gymnasium.vector import AutoresetMode
import torch

import envs
from envs import data as envs_data
from agents import distributed
from agents import trainers
from agents.config import Config, agent_spec
from agents.health import check_update
from agents.scripting import ConfigError, in_flag_words
from agents.recurrent import HardRecurrentAgent
from agents.registry import AgentSpec

__all__ = ["task_spec", "make_env", "eval_share", "make_test_env", "make_val_env", "capped_to_test_split", "make_agent",
           "takes_entropy_bonus", "check_algo", "make_trainer"]

T = TypeVar("T")

# The flag of each env keyword that make_env fills from the command line (its refusals name the flag).
ENV_FLAGS = {"glimpse_size": "--glimpse-size", "scales": "--scales", "num_glimpses": "--glimpses",
             "dataset": "--dataset", "data_dir": "--data-dir", "device": "--device", "val_size": "--val-images"}


def task_spec(cfg: Config) -> envs.TaskSpec:
    """``envs.TASKS[cfg.env]``, or a :class:`ConfigError` listing the registered tasks."""
    try:
        return envs.task_of(cfg.env)
    except ValueError as error:
        raise ConfigError(f"--env: {error}") from None


def make_env(cfg: Config, split: str, num_envs: int):
    """The batched env of ``cfg.env`` (``gym.make_vec`` of its registered id) with ``cfg``'s retina,
    and what ``cfg.agent`` needs of it (its action mode, its start). Same-step autoreset: the agents'
    rollouts take every step as a transition, the ending step's observation already the next episode's."""
    spec = task_spec(cfg)
    agent = agent_spec(cfg.agent)
    kwargs: dict[str, Any] = dict(glimpse_size=cfg.glimpse_size, scales=cfg.scales, split=split,
                                  dataset=cfg.dataset, data_dir=cfg.data_dir, device=cfg.device)
    if cfg.val_images:
        kwargs["val_size"] = cfg.val_images
    if spec.is_still:
        kwargs["num_glimpses"] = cfg.glimpses
    kwargs.update(agent.env_kwargs(cfg.options))
    try:
        return gym.make_vec(spec.env_id, num_envs=num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
    except (ValueError, FileNotFoundError) as error:  # the task's own options and data refuse, and say why
        raise ConfigError(f"--env {cfg.env}: {in_flag_words(error, ENV_FLAGS)}") from error


def eval_share(cfg: Config, ctx: distributed.Context | None = None, split: str = "test") -> tuple[int, int]:
    """``(first, count)``: the examples ``first .. first + count - 1`` of those an evaluation of ``split``
    covers (``test``, and ``train``'s fresh canvases: ``eval_images``; ``val``: the ``val_images`` held out) that
    this process evaluates (all of them in one process; under torchrun each rank a contiguous share,
    :meth:`agents.distributed.Context.split`, so each example is evaluated once)."""
    ctx = ctx or distributed.Context()
    total, flag = (cfg.val_images, "--val-images") if split == "val" else (cfg.eval_images, "--eval-images")
    if total < ctx.world_size:
        raise ConfigError(f"{flag} {total} is fewer than the {ctx.world_size} processes; each "
                          f"evaluates a share of them: pass at least {ctx.world_size}")
    return ctx.split(total)


def make_test_env(cfg: Config, ctx: distributed.Context | None = None):
    """The fixed test split, as wide as the largest divisor of ``eval_images`` up to the batch size, so
    that ``eval_images / width`` episodes cover exactly ``eval_images`` test examples, each once. Under
    torchrun (``ctx``), this rank's share of them (:func:`eval_share`), up to its share of the batch.

    ``cfg.eval_images`` above the size of the test split is lowered to that size, with a warning: an
    evaluation never counts an example twice (:func:`capped_to_test_split`)."""
    def build(count: int):
        cfg.eval_images = count
        return _fixed_set_env(cfg, "test", ctx)

    test_env, cfg.eval_images = capped_to_test_split(cfg.eval_images, "--eval-images", build)
    return test_env


def make_val_env(cfg: Config, ctx: distributed.Context | None = None):
    """The validation split (``val_images`` items held out of the training split, ``envs.data.hold_out``)
    laid out as :func:`make_test_env` lays out the test split, so that an evaluation covers each of its
    items once; ``None`` for a run without one."""
    return _fixed_set_env(cfg, "val", ctx) if cfg.val_images else None


def make_split_env(cfg: Config, split: str, ctx: distributed.Context | None = None):
    """The env an evaluation of ``split`` plays: ``"test"`` (:func:`make_test_env`), ``"val"``
    (:func:`make_val_env`; a :class:`ConfigError` for a run without one) or ``"train"``: ``eval_images`` fresh
    canvases of the items the run trains on (seeded like the others), which measure how well an agent fits its
    own training items, beside the test split's how well it generalises."""
    if split == "test":
        return make_test_env(cfg, ctx)
    if split == "val":
        if not cfg.val_images:
            raise ConfigError("--split val: this run holds out no validation split (it was trained without "
                              "--val-images)")
        return make_val_env(cfg, ctx)
    if split == "train":
        return _fixed_set_env(cfg, "train", ctx)
    raise ConfigError(f"--split must be test, val or train; got {split!r}")


def _fixed_set_env(cfg: Config, split: str, ctx: distributed.Context | None):
    """The env of a fixed split, as wide as the largest divisor of this process's share of it up to its
    share of the batch."""
    ctx = ctx or distributed.Context()
    share = eval_share(cfg, ctx, split)[1]
    cap = min(max(1, cfg.batch_size // ctx.world_size), share)
    return make_env(cfg, split, max(d for d in range(1, cap + 1) if share % d == 0))


def capped_to_test_split(count: int, flag: str, build: Callable[[int], T]) -> tuple[T, int]:
    """``(build(count), count)``: an env that evaluates ``count`` test examples, each once; ``count``
    above the size of the test split ``build`` loads is lowered to that size with a warning naming
    ``flag`` (``build`` is called again), so that no example is counted twice. Tasks without a finite
    test split (Catch's games) keep ``count``."""
    with envs_data.recording() as loaded:
        built = build(count)
    size = next((len(d) for d in reversed(loaded) if d.split == "test"), None)
    if size is not None and count > size:
        warnings.warn(f"{flag} {count} is more than the test split holds; evaluating on its {size} examples, "
                      f"each once", stacklevel=2)
        count = size
        built = build(count)
    return built, count


def takes_entropy_bonus(spec: AgentSpec) -> bool:
    """Whether agent ``spec``'s own losses add the trainer's entropy bonus (``--entropy-coef``): the
    recurrent hard agents' policies (:class:`agents.recurrent.HardRecurrentAgent`)."""
    return issubclass(spec.cls, HardRecurrentAgent)


def make_agent(cfg: Config, env) -> torch.nn.Module:
    """The ``--agent`` model sized for ``env``, built by its registry entry from ``cfg.options`` (and the
    trainer's ``--entropy-coef``, which its REINFORCE losses add: :func:`takes_entropy_bonus`)."""
    spec = agent_spec(cfg.agent)
    if spec.still_only and not env.is_still:
        raise ConfigError(f"--agent {cfg.agent} classifies still images; it does not apply to --env {cfg.env}")
    bonus = {"entropy_coef": cfg.algorithm.entropy_coef} if takes_entropy_bonus(spec) else {}
    try:
        model = spec.make(env, cfg.options, **bonus)
    except ValueError as error:  # the model refuses the env (item-wise attention on Catch), or options together
        # (--no-final-reward without --credit gain)
        raise ConfigError(f"--agent {cfg.agent} --env {cfg.env}: {error}") from None
    return model.to(cfg.device)


def check_algo(cfg: Config) -> None:
    """A :class:`ConfigError` naming the flag if ``--algo`` and its options cannot train ``--agent``."""
    spec = agent_spec(cfg.agent)
    algorithm = cfg.algorithm
    if algorithm.entropy_coef and not takes_entropy_bonus(spec):
        raise ConfigError(f"--entropy-coef {algorithm.entropy_coef}: --agent {cfg.agent} has no policy whose losses "
                          f"take an entropy bonus; leave it at 0")
    if algorithm.algo == "reinforce":
        return
    if spec.family != "hard":
        raise ConfigError(f"--algo {algorithm.algo}: --agent {cfg.agent} has no policy to train ({spec.family} "
                          f"attention learns by backpropagation); use --algo reinforce")
    if not issubclass(spec.cls, trainers.PolicyAgent):  # a (plugin's) hard agent without collect/replay
        raise ConfigError(f"--algo {algorithm.algo}: --agent {cfg.agent} cannot replay its episodes (it has no "
                          f"collect/replay for the actor-critic trainers); use --algo reinforce")
    world = distributed.current().world_size  # under torchrun each process splits its share of the batch
    if algorithm.algo == "ppo" and algorithm.minibatches > cfg.batch_size // world:
        share = f" ({cfg.batch_size // world} per process of {world})" if world > 1 else ""
        raise ConfigError(f"--minibatches {algorithm.minibatches} is more than the --batch-size {cfg.batch_size} "
                          f"episodes it splits{share}")
    if getattr(cfg.options, "expected_context_prob", 0.0) > 0:
        raise ConfigError(f"--expected-context-prob trains by backpropagation through the expected context, which "
                          f"--algo {algorithm.algo} cannot replay; use it with --algo reinforce")


def make_trainer(cfg: Config, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 sync_gradients: Callable[[torch.nn.Module], None] | None = None):
    """The ``--algo`` trainer of ``model`` (:mod:`agents.trainers`), checking each update with :func:`check_update`."""
    check_algo(cfg)
    return trainers.trainer_for(cfg.algorithm, model, optimizer, check_update, sync_gradients)
