"""The training library behind ``scripts/``: one run's configuration, its env and agent, checkpoints,
evaluation, pictures, the command line, and running many runs.

``scripts/train.py`` is the loop (arguments, build, loop, like CleanRL's scripts); everything it shares
with ``evaluate.py``, ``visualize.py``, ``compare.py``, ``ram_table.py`` and ``bench_train.py`` is here::

    from agents import training

    cfg = training.Config(agent="ram", env="mnist", glimpses=6, glimpse_size=8, scales=3)
    env = training.make_env(cfg, "train", cfg.batch_size)
    model = training.make_agent(cfg, env)
    obs, _ = env.reset(seed=cfg.seed)
    losses, obs = model.train_losses(env, obs)      # one update's losses (see agents.contract.Agent)
    metrics = training.evaluate(cfg, model, training.make_test_env(cfg))

A run's configuration is :class:`Config` (what every run has) plus ``cfg.options``, an instance of its
agent's own options dataclass (:data:`agents.AGENTS`). Saved (``config.json``, checkpoints) and shown
(TensorBoard's table) flat, by :func:`flat_config`: one key per command-line flag. Agents and tasks
are looked up by name here only, in :data:`agents.AGENTS` and :data:`envs.TASKS`; ``plugins`` names
modules to import first, which may register more of either.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
import time
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import gymnasium as gym
from gymnasium.vector import AutoresetMode
import numpy as np
import torch
import tyro
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo

import envs
from agents.contract import RolloutAgent, SceneAgent
from agents.registry import AGENTS, AgentSpec
from envs.render import render_attention, render_path

__all__ = [
    "Config", "ConfigError", "parse_train_config", "cli", "flat_config", "config_from_flat", "agent_spec",
    "make_env", "make_test_env", "make_agent", "evaluate", "replay_test_paths", "picture_at", "paths_picture",
    "attention_picture", "eval_picture", "load_run", "save_checkpoint", "run_parallel", "threads_per_job",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that cannot run (an agent that does not apply to a task, a missing folder, ...);
    the scripts print its message and exit."""


@dataclass
class Config:
    """One training run: what every run has; its agent's own options are ``options``."""

    agent: str = "ram"
    """the model, a name in agents.AGENTS: hard attention (ram, item-hard, racnn-hard), soft attention
    (item-soft, spatial-soft, stn, racnn-soft) or a full-image baseline (fc, conv)"""
    env: str = "mnist"
    """the task, a name in envs.TASKS: the RAM paper's settings (mnist, translated-60, cluttered-60,
    cluttered-100, moving-mnist, catch), small-100 (14 px digits on a 100x100 canvas), or folder (--data-dir)"""
    seed: int = 1
    """seed of the data order, the initial weights and the policy's samples"""
    train_images: int = 60_000
    """training budget in images (episodes for Catch)"""
    run_dir: str = "runs/train"
    """where events, config, checkpoints and results go"""
    resume: bool = False
    """continue the run in --run-dir from its last checkpoint"""
    glimpses: int = 6
    """glimpses per image (classification tasks; video and Catch glimpse once per frame); the soft
    recurrent agents (item-soft, spatial-soft) attend this many times"""
    glimpse_size: int = 8
    """retina side in pixels"""
    scales: int = 1
    """retina scales; scale k covers glimpse_size * 2**k pixels"""
    learning_rate: float = 1e-3
    """Adam's step size (Catch: start from 3e-4 with --entropy-coef 0.01; at 1e-3 its paddle policy collapses)"""
    anneal_lr: bool = False
    """decay the step size linearly from --learning-rate to 0 over --train-images"""
    batch_size: int = 128
    """images (episodes) per update"""
    dataset: Literal["mnist", "fashion-mnist"] = "mnist"
    """which digits/items (see envs.data for the sources)"""
    data_dir: str | None = None
    """folder with IDX files (none: $GLIMPSE_DATA_DIR, then the offline default); for --env folder, the
    root of the class folders of pictures"""
    device: str = "cpu"
    """torch device"""
    eval_every: int = 10_000
    """evaluate on the test split every this many training images"""
    eval_images: int = 1_000
    """test images (episodes) per evaluation"""
    mc_samples: int = 10
    """final evaluation also averages the classifier over this many stochastic rollouts"""
    checkpoint_every: int = 10_000
    """write checkpoint.pt every this many training images"""
    torch_threads: int | None = None
    """CPU threads for torch; none leaves torch's default"""
    plugins: tuple[str, ...] = ()
    """modules to import first (by name, from sys.path: installed or on PYTHONPATH); they may register
    agents (agents.register_agent) and tasks (envs.register_task)"""
    options: tyro.conf.Suppress[Any] = None
    """computed at run time: the agent's options (an instance of AGENTS[agent].options)"""
    images_seen: tyro.conf.Suppress[int] = field(default=0, init=False)
    """computed at run time: training images consumed so far"""

    def __post_init__(self) -> None:
        if self.options is None and self.agent in AGENTS:
            self.options = AGENTS[self.agent].options()


# ------------------------------------------------------------------------------------------------
# The command line (tyro), and the flat form a run is saved in
# ------------------------------------------------------------------------------------------------


def _none_or(kind: type, metavar: str) -> PrimitiveConstructorSpec:
    """``X | None`` flags read the word ``none`` (any case) as None, as the scripts always have."""
    return PrimitiveConstructorSpec(
        nargs=1, metavar=f"{metavar}|none",
        instance_from_str=lambda args: None if args[0].lower() == "none" else kind(args[0]),
        is_instance=lambda value: value is None or isinstance(value, kind),
        str_from_instance=lambda value: ["none" if value is None else str(value)])


_REGISTRY = ConstructorRegistry()


@_REGISTRY.primitive_rule
def _optional_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    if typing.get_origin(info.type) not in (typing.Union, types.UnionType):
        return None
    args = typing.get_args(info.type)
    rest = [a for a in args if a is not type(None)]
    if len(args) != 2 or len(rest) != 1 or rest[0] not in (int, float, str):
        return None
    return _none_or(rest[0], rest[0].__name__.upper())


def cli(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into dataclass ``cls`` with ``tyro``: one ``--kebab-case``
    flag per field, its help the field's docstring, ``--flag`` / ``--no-flag`` for booleans, ``none`` for
    ``X | None``. Fields annotated ``tyro.conf.Suppress[...]`` are computed at run time: no flag."""
    return tyro.cli(cls, args=argv, description=description, registry=_REGISTRY)


def _preparse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--agent", default=Config.agent)
    parser.add_argument("--plugins", nargs="*", default=[])
    return parser.parse_known_args(list(argv))[0]


def import_plugins(names: Sequence[str]) -> None:
    """Import each module named in ``names`` (they register agents and tasks as they load)."""
    for name in names:
        importlib.import_module(name)


def agent_spec(name: str) -> AgentSpec:
    """``AGENTS[name]``, or a :class:`ConfigError` listing the registered agents."""
    if name not in AGENTS:
        raise ConfigError(f"--agent must be one of {', '.join(AGENTS)}; got {name!r} (a plugin module can "
                          f"register more: --plugins MODULE)")
    return AGENTS[name]


def parse_train_config(argv: Sequence[str] | None = None, description: str | None = None) -> Config:
    """``scripts/train.py``'s command line: :class:`Config`'s flags and those of ``--agent``'s options.

    ``--plugins`` are imported and ``--agent`` looked up first; then ``tyro`` builds one flat command line
    from :class:`Config` and that agent's options dataclass (two groups in ``--help``). A flag that
    belongs to another agent's options is refused with a message naming its agents.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    early = _preparse(argv)
    import_plugins(early.plugins)
    spec = agent_spec(early.agent)
    own = {f.name for f in dataclasses.fields(spec.options)}
    shared = {f.name for f in dataclasses.fields(Config)}
    for arg in argv:
        name = arg.split("=", 1)[0].removeprefix("--").removeprefix("no-").replace("-", "_")
        if not arg.startswith("--") or name in own or name in shared:
            continue
        owners = [other for other in AGENTS.values() if name in {f.name for f in dataclasses.fields(other.options)}]
        if owners:
            titles = "/".join(dict.fromkeys(o.title or o.name for o in owners))
            raise ConfigError(f"{arg.split('=', 1)[0]} is a {titles} option; --agent {spec.name} has no such option")
    group = f"{spec.name.replace('-', '_')}_agent"  # --help titles the group "<agent>-agent options"
    wrapper = dataclasses.make_dataclass("train", [
        ("run", Annotated[Config, tyro.conf.OmitArgPrefixes], field(default_factory=Config)),
        (group, Annotated[spec.options, tyro.conf.OmitArgPrefixes], field(default_factory=spec.options)),
    ])
    parsed = cli(wrapper, argv, description)
    cfg = parsed.run
    cfg.plugins = tuple(cfg.plugins)
    cfg.options = getattr(parsed, group)
    return cfg


def flat_config(cfg: Config) -> dict[str, Any]:
    """The run's configuration as one flat dict, one key per flag (the run's fields, then its agent's options)."""
    run = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in ("options", "images_seen")}
    run["plugins"] = list(cfg.plugins)
    options = cfg.options if cfg.options is not None else agent_spec(cfg.agent).options()
    return {**run, **dataclasses.asdict(options)}


def config_from_flat(saved: dict[str, Any]) -> Config:
    """A :class:`Config` from :func:`flat_config`'s dict (or an older run's ``config.json``, which held every
    agent's options: the other agents' are ignored). Its plugins are imported first."""
    import_plugins(saved.get("plugins", ()))
    spec = agent_spec(saved.get("agent", Config.agent))
    run_fields = {f.name for f in dataclasses.fields(Config) if f.init and f.name != "options"}
    own = {f.name for f in dataclasses.fields(spec.options)}
    cfg = Config(**{k: v for k, v in saved.items() if k in run_fields},
                 options=spec.options(**{k: v for k, v in saved.items() if k in own}))
    cfg.plugins = tuple(cfg.plugins)
    return cfg


# ------------------------------------------------------------------------------------------------
# Env and agent
# ------------------------------------------------------------------------------------------------


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
    if spec.is_still:
        kwargs["num_glimpses"] = cfg.glimpses
    kwargs.update(agent.env_kwargs(cfg.options))
    try:
        return gym.make_vec(spec.env_id, num_envs=num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
    except (ValueError, FileNotFoundError) as error:  # the task's own options and data refuse, and say why
        raise ConfigError(f"--env {cfg.env}: {_as_flags(str(error))}") from error


def _as_flags(message: str) -> str:
    """An env's message in the command line's words: ``data_dir=<root>`` becomes ``--data-dir <root>``."""
    names = "|".join(f.name for f in dataclasses.fields(Config))
    return re.sub(rf"\b({names})=", lambda m: "--" + m.group(1).replace("_", "-") + " ", message)


def make_test_env(cfg: Config):
    """The fixed test split, as wide as the largest divisor of ``eval_images`` up to the batch size, so
    that ``eval_images / width`` episodes cover exactly ``eval_images`` test examples, each once."""
    width = max(d for d in range(1, min(cfg.batch_size, cfg.eval_images) + 1) if cfg.eval_images % d == 0)
    return make_env(cfg, "test", width)


def make_agent(cfg: Config, env) -> torch.nn.Module:
    """The ``--agent`` model sized for ``env``, built by its registry entry from ``cfg.options``."""
    spec = agent_spec(cfg.agent)
    if spec.still_only and not env.is_still:
        raise ConfigError(f"--agent {cfg.agent} classifies still images; it does not apply to --env {cfg.env}")
    return spec.make(env, cfg.options).to(cfg.device)


# ------------------------------------------------------------------------------------------------
# Evaluation and pictures
# ------------------------------------------------------------------------------------------------


def evaluate(cfg: Config, model: torch.nn.Module, test_env, mc_samples: int = 1) -> dict:
    """The agent's metrics on the fixed test split (hard agents: mean locations, and the MC average when
    ``mc_samples > 1``)."""
    episodes = max(1, cfg.eval_images // test_env.num_envs)  # make_test_env makes this exact
    # Seeded and isolated: a checkpoint always gets the same Monte-Carlo score, and training's random
    # stream is the same whether or how often it is evaluated.
    with torch.random.fork_rng(devices=[test_env.device] if test_env.device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        return model.evaluate(test_env, episodes, mc_samples=mc_samples)


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


def paths_picture(cfg: Config, pictures: torch.Tensor, trajectory, count: int) -> np.ndarray:
    """``(H, W, 3)`` uint8: the first ``count`` pictures side by side, each with its glimpse path drawn."""
    retina = dict(size=cfg.glimpse_size, scales=cfg.scales, factor=2)
    last = trajectory.locations.shape[1] - 1
    tiles = [render_path(picture_at(pictures, i, last), trajectory.locations[i], **retina, height_px=160)
             for i in range(min(count, len(pictures)))]
    return np.concatenate(tiles, axis=1)


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
        return "eval/glimpse_paths", paths_picture(cfg, pictures, trajectory, count)
    if isinstance(model, SceneAgent) and (picture := attention_picture(model, test_env, count)) is not None:
        return "eval/attention", picture
    return None


# ------------------------------------------------------------------------------------------------
# Runs on disk
# ------------------------------------------------------------------------------------------------


def load_run(run_dir: Path, **overrides: Any) -> tuple[Config, torch.nn.Module, Any]:
    """The config, trained model and test env of a run written by ``scripts/train.py``."""
    run_dir = Path(run_dir)
    saved = json.loads((run_dir / "config.json").read_text())
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    cfg = config_from_flat(saved)
    for name, value in overrides.items():
        setattr(cfg, name, value)
    cfg.images_seen = state["images_seen"]
    test_env = make_test_env(cfg)
    model = make_agent(cfg, test_env)
    model.load_state_dict(state["model"])
    return cfg, model, test_env


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically: a killed run never leaves a half-written checkpoint behind."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of ``jobs`` concurrent runs: the cores shared out, at least 1."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_parallel(runs: list[tuple[Path, list[str]]], jobs: int) -> None:
    """Run each ``(run_dir, command)`` whose ``run_dir/results.json`` does not exist yet, ``jobs`` at a time.

    A run with a checkpoint but no results (killed) is resumed with ``--resume``. Output goes to
    ``run_dir/train.log``. The first failure stops the others and exits with a message naming its log.
    """
    todo = [(run_dir, command) for run_dir, command in runs if not (run_dir / "results.json").exists()]
    running: list[tuple[Path, subprocess.Popen, object]] = []
    while todo or running:
        while todo and len(running) < jobs:
            run_dir, command = todo.pop(0)
            resume = (run_dir / "checkpoint.pt").exists()
            run_dir.mkdir(parents=True, exist_ok=True)
            log = open(run_dir / "train.log", "a")
            print(f"start {run_dir.name}{' (resuming)' if resume else ''}", flush=True)
            proc = subprocess.Popen(command + (["--resume"] if resume else []), stdout=log, stderr=subprocess.STDOUT)
            running.append((run_dir, proc, log))
        time.sleep(0.5)
        for entry in list(running):
            run_dir, proc, log = entry
            if proc.poll() is None:
                continue
            log.close()
            running.remove(entry)
            if proc.returncode != 0:
                for _, other, _ in running:
                    other.terminate()
                raise SystemExit(f"{run_dir.name} failed (exit {proc.returncode}); see {run_dir / 'train.log'}")
            print(f"done  {run_dir.name}", flush=True)
