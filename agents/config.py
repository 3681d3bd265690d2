"""One training run's configuration: :class:`Config` (what every run has) plus ``cfg.options``, an instance
of its agent's own options dataclass (:data:`agents.AGENTS`); its flat form, one key per command-line flag,
in which it is saved (``config.json``, checkpoints) and shown (:func:`flat_config`,
:func:`config_from_flat`); the task's recipe defaults (:func:`task_defaults`, :func:`recipe_in_use`); and
the look-up of agents by name (:func:`agent_spec`) after importing the plugins that may register more
(:func:`import_plugins`)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import tyro

import envs
from agents.registry import AGENTS, AgentSpec
from agents.scripting import ConfigError

__all__ = ["Config", "agent_spec", "import_plugins", "task_defaults", "recipe_in_use", "flat_config",
           "config_from_flat"]


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
    algo: Literal["reinforce", "a2c", "ppo"] = "reinforce"
    """how the hard agents (ram, item-hard, racnn-hard) learn their policies: reinforce (the papers' REINFORCE
    with a learned baseline, one gradient step per batch), a2c (advantage actor-critic: a per-step critic and
    GAE, one step per batch) or ppo (PPO: --ppo-epochs passes of --minibatches minibatches of whole episodes
    per batch, replayed through the current networks); the other agents train by backpropagation (reinforce)"""
    gamma: float = 0.99
    """a2c/ppo: discount of the per-step rewards"""
    gae_lambda: float = 0.95
    """a2c/ppo: GAE's lambda (1: Monte-Carlo returns minus the critic; 0: one-step TD errors)"""
    ppo_epochs: int = 4
    """ppo: passes over each batch of episodes"""
    minibatches: int = 4
    """ppo: minibatches (of whole episodes) per pass"""
    clip_coef: float = 0.2
    """ppo: the surrogate's ratio is clipped to [1 - clip, 1 + clip]"""
    value_clip: float | None = None
    """ppo: clip the critic's change per batch to this much in its loss (none: no clipping)"""
    value_coef: float = 0.5
    """a2c/ppo: weight of the critic's squared error"""
    max_grad_norm: float | None = 0.5
    """a2c/ppo: clip the gradients' total norm to this (none: no clipping)"""
    normalize_advantages: bool = True
    """a2c/ppo: standardise each minibatch's advantages"""
    entropy_coef_final: float | None = None
    """a2c/ppo: anneal the entropy bonus linearly from --entropy-coef to this over --train-images (none: constant)"""
    target_kl: float | None = None
    """ppo: stop a batch's epochs at the first minibatch whose approximate KL from the batch's policy exceeds
    1.5 x this (none: always every epoch)"""
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
    val_images: int = 0
    """hold this many training items out as a validation split (the same items for every agent and seed),
    evaluated whole at every evaluation as val/accuracy: choose options on it, report the test split; 0: none"""
    mc_samples: int = 10
    """final evaluation also averages the classifier over this many stochastic rollouts"""
    checkpoint_every: int = 10_000
    """write checkpoint.pt every this many training images"""
    torch_threads: int | None = None
    """CPU threads for torch; none leaves torch's default"""
    plugins: tuple[str, ...] = ()
    """modules to import first (by name, from sys.path: installed or on PYTHONPATH); they may register
    agents (agents.register_agent) and tasks (envs.register_task)"""
    allow_other_data: bool = False
    """--resume: continue even if the data differ from those the run was trained on (refused by default)"""
    options: tyro.conf.Suppress[Any] = None
    """computed at run time: the agent's options (an instance of AGENTS[agent].options)"""
    images_seen: tyro.conf.Suppress[int] = field(default=0, init=False)
    """computed at run time: training images consumed so far"""

    def __post_init__(self) -> None:
        if self.options is None and self.agent in AGENTS:
            self.options = AGENTS[self.agent].options()


def import_plugins(names: Sequence[str]) -> None:
    """Import each module named in ``names`` (they register agents and tasks as they load); a module that
    cannot be found is a :class:`ConfigError` naming it (a failure inside a plugin propagates as it is)."""
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is None or not (name == error.name or name.startswith(f"{error.name}.")):
                raise  # the plugin imports something missing: its own traceback says what
            raise ConfigError(f"--plugins: no module named {name!r} (a plugin is imported by name from sys.path: "
                              f"install it, or run from its folder with PYTHONPATH=.)") from None


def agent_spec(name: str) -> AgentSpec:
    """``AGENTS[name]``, or a :class:`ConfigError` listing the registered agents."""
    if name not in AGENTS:
        raise ConfigError(f"--agent must be one of {', '.join(AGENTS)}; got {name!r} (a plugin module can "
                          f"register more: --plugins MODULE)")
    return AGENTS[name]


def task_defaults(env: str) -> dict[str, Any]:
    """The training recipe of task ``env`` (:attr:`envs.TaskSpec.train_defaults`): flag defaults that
    ``scripts/train.py`` uses where the command line is silent; empty for an unknown task (refused later)."""
    try:
        return dict(envs.task_of(env).train_defaults)
    except ValueError:
        return {}


def recipe_in_use(cfg: Config) -> dict[str, Any]:
    """The flags of ``cfg`` whose value is its task's recipe default (:func:`task_defaults`)."""
    flat = flat_config(cfg)
    return {k: v for k, v in task_defaults(cfg.env).items() if k in flat and flat[k] == v}


def flat_config(cfg: Config) -> dict[str, Any]:
    """The run's configuration as one flat dict, one key per flag (the run's fields, then its agent's options)."""
    run = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in ("options", "images_seen")}
    run["plugins"] = list(cfg.plugins)
    options = cfg.options if cfg.options is not None else agent_spec(cfg.agent).options()
    return {**run, **dataclasses.asdict(options)}


def config_from_flat(saved: dict[str, Any], plugins: Sequence[str] = ()) -> Config:
    """A :class:`Config` from :func:`flat_config`'s dict (or an older run's ``config.json``, which held every
    agent's options: the other agents' are ignored).

    ``plugins`` are the modules the user named (``--plugins``), imported first. A saved run never imports
    code by itself: plugins it recorded that ``plugins`` does not name are a :class:`ConfigError`
    naming them, since a run folder's files may come from anyone."""
    recorded = saved.get("plugins", [])
    if not isinstance(recorded, list) or not all(isinstance(name, str) for name in recorded):
        raise ConfigError(f"the run's recorded plugins are damaged (not a list of module names): {recorded!r}")
    import_plugins(plugins)
    unnamed = [name for name in recorded if name not in plugins]
    if unnamed:
        raise ConfigError(f"the run was trained with --plugins {' '.join(recorded)}; loading a run never imports "
                          f"modules its files name: pass --plugins {' '.join(recorded)} if you trust them")
    spec = agent_spec(saved.get("agent", Config.agent))
    run_fields = {f.name for f in dataclasses.fields(Config) if f.init and f.name != "options"}
    own = {f.name for f in dataclasses.fields(spec.options)}
    cfg = Config(**{k: v for k, v in saved.items() if k in run_fields},
                 options=spec.options(**{k: v for k, v in saved.items() if k in own}))
    cfg.plugins = tuple(cfg.plugins)
    return cfg
