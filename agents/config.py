"""One training run's configuration, :class:`Config`, composed of groups each declared once: the run
(:class:`RunOptions`), the task and its retina (:class:`TaskOptions`, :class:`Retina`), the optimiser
(:class:`OptimiserOptions`), the trainer's options (``cfg.algorithm``, :class:`agents.trainers.AlgorithmOptions`)
and ``cfg.options``, an instance of its agent's own options dataclass (:data:`agents.AGENTS`). Each numeric
field declares its range (:class:`agents.ranges.Range`). Its flat form, one key per command-line flag, is how
it is saved (``config.json``, checkpoints) and shown (:func:`flat_config`, :func:`config_from_flat`); agents
are looked up by name (:func:`agent_spec`) after importing the plugins that may register more
(:func:`import_plugins`). Scripts that need the retina or the task compose these groups."""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import tyro

from agents.ranges import MAX_SEED, Range, check_values
from agents.registry import AGENTS, AgentSpec
from agents.scripting import ConfigError
from agents.trainers import AlgorithmOptions

__all__ = ["Retina", "TaskOptions", "OptimiserOptions", "RunOptions", "Config", "agent_spec", "import_plugins",
           "flat_config", "config_from_flat"]


@dataclass
class Retina:
    """The retina: what every script that glimpses shares (a script with other defaults passes its own instance)."""

    glimpse_size: Annotated[int, Range(1)] = 8
    """retina side in pixels"""
    scales: Annotated[int, Range(1)] = 1
    """retina scales; scale k covers glimpse_size * 2**k pixels"""


@dataclass
class TaskOptions(Retina):
    """The task: which env, on which data, seen through which retina, how many times."""

    env: str = "mnist"
    """the task, a name in envs.TASKS: the RAM paper's settings (mnist, translated-60, cluttered-60,
    cluttered-100, moving-mnist, catch), small-100 (14 px digits on a 100x100 canvas), or folder (--data-dir)"""
    glimpses: Annotated[int, Range(1)] = 6
    """glimpses per image (classification tasks; video and Catch glimpse once per frame); the soft
    recurrent agents (item-soft, spatial-soft) attend this many times"""
    dataset: Literal["mnist", "fashion-mnist"] = "mnist"
    """which digits/items (see envs.data for the sources)"""
    data_dir: str | None = None
    """folder with IDX files (none: $GLIMPSE_DATA_DIR, then the offline default); for --env folder, the
    root of the class folders of pictures"""


@dataclass
class OptimiserOptions:
    """Adam's step and the batch each step is computed on."""

    learning_rate: Annotated[float, Range(0, open_low=True)] = 1e-3
    """Adam's step size (Catch: start from 3e-4 with --entropy-coef 0.01; at 1e-3 its paddle policy collapses)"""
    anneal_lr: bool = False
    """decay the step size linearly from --learning-rate to 0 over --train-images"""
    batch_size: Annotated[int, Range(1)] = 128
    """images (episodes) per update"""


@dataclass
class RunOptions:
    """The run: what is trained, its seed, budgets, evaluations, checkpoints, folder and machine."""

    agent: str = "ram"
    """the model, a name in agents.AGENTS: hard attention (ram, item-hard, racnn-hard), soft attention
    (item-soft, spatial-soft, stn, racnn-soft) or a full-image baseline (fc, conv)"""
    seed: Annotated[int, Range(0, MAX_SEED)] = 1
    """seed of the data order, the initial weights and the policy's samples"""
    train_images: Annotated[int, Range(0)] = 60_000
    """training budget in images (episodes for Catch)"""
    run_dir: str = "runs/train"
    """where events, config, checkpoints and results go"""
    resume: bool = False
    """continue the run in --run-dir from its last checkpoint"""
    device: str = "cpu"
    """torch device"""
    eval_every: Annotated[int, Range(1)] = 10_000
    """evaluate on the test split every this many training images"""
    eval_images: Annotated[int, Range(1)] = 1_000
    """test images (episodes) per evaluation"""
    val_images: Annotated[int, Range(0)] = 0
    """hold this many training items out as a validation split (the same items for every agent and seed),
    evaluated whole at every evaluation as val/accuracy: choose options on it, report the test split; 0: none"""
    mc_samples: Annotated[int, Range(1)] = 10
    """final evaluation also averages the classifier over this many stochastic rollouts"""
    checkpoint_every: Annotated[int, Range(1)] = 10_000
    """write checkpoint.pt every this many training images"""
    torch_threads: Annotated[int | None, Range(1)] = None
    """CPU threads for torch; none leaves torch's default"""
    plugins: tuple[str, ...] = ()
    """modules to import first (by name, from sys.path: installed or on PYTHONPATH); they may register
    agents (agents.register_agent) and tasks (envs.register_task)"""
    allow_other_data: bool = False
    """--resume: continue even if the data differ from those the run was trained on (refused by default)"""


@dataclass
class Config(OptimiserOptions, TaskOptions, RunOptions):
    """One training run: its run, task and optimiser groups (flat: ``cfg.seed``, ``cfg.glimpse_size``,
    ``cfg.batch_size``), its trainer's options ``algorithm`` and its agent's own options ``options``."""

    recipe: str = "default"
    """named flag values for --agent on --env (agents.recipes.RECIPES), used where the command line is silent:
    default (the agent's recipe for the task, if it has one), none (the plain defaults) or a recipe's name;
    config.json records the name used"""
    algorithm: Annotated[AlgorithmOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=AlgorithmOptions)
    """how the hard agents learn their policies (agents.trainers)"""
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


def flat_config(cfg: Config) -> dict[str, Any]:
    """The run's configuration as one flat dict, one key per flag: the run's, task's and optimiser's fields,
    the recipe's name, the trainer's options (``algorithm``), then the agent's own options."""
    skipped = ("algorithm", "options", "images_seen")
    run = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in skipped}
    run["plugins"] = list(cfg.plugins)
    options = cfg.options if cfg.options is not None else agent_spec(cfg.agent).options()
    return {**run, **dataclasses.asdict(cfg.algorithm), **dataclasses.asdict(options)}


def config_from_flat(saved: dict[str, Any], plugins: Sequence[str] = ()) -> Config:
    """A :class:`Config` from :func:`flat_config`'s dict, or an older run's ``config.json``: one that held every
    agent's options (the other agents' are ignored), or one from before the trainer's options were a group
    of their own (the same flat keys; ``entropy_coef``, then an agent's option, is the trainer's now).

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

    def known(cls: type) -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(cls) if f.init} - {"algorithm", "options"}
        values = {k: v for k, v in saved.items() if k in names}
        try:
            hints = typing.get_type_hints(cls)
        except (NameError, TypeError):  # a plugin's options with unresolvable annotations: its own checks stand
            hints = {}
        for name, value in values.items():
            if name in hints and not value_fits(value, hints[name]):
                raise ConfigError(f"the run's recorded --{name.replace('_', '-')} is damaged: {value!r} is not of "
                                  f"type {typing_name(hints[name])}")
        return values

    cfg = Config(**known(Config), algorithm=AlgorithmOptions(**known(AlgorithmOptions)),
                 options=spec.options(**known(spec.options)))
    cfg.plugins = tuple(cfg.plugins)
    for group in (cfg, cfg.algorithm, cfg.options):
        check_values(group)  # the flags' ranges, as on a command line
    return cfg


def value_fits(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON has type ``hint`` (a field's annotation: ``int``, ``float | None``,
    ``Literal[...]``, ``tuple[str, ...]``; a bool is no number, an int is a float); other types pass."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(value_fits(value, arm) for arm in args)
    if origin is Literal:
        return any(value == arm and type(value) is type(arm) for arm in args)
    if origin in (tuple, list):
        return isinstance(value, (tuple, list)) and all(value_fits(item, args[0]) for item in value)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    return not isinstance(hint, type) or hint is Any or isinstance(value, hint)


def typing_name(hint: Any) -> str:
    """A field's annotation in words for an error: ``int``, ``float | None``, ``Literal['rnn', 'lstm']``."""
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
