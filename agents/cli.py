"""The scripts' command line: :func:`cli` parses a dataclass into flags with ``tyro`` (``none`` for
``X | None``), checks every numeric value against its :class:`Range` in :data:`LIMITS`
(:func:`check_values`) and every text and device (:func:`check_text`, :func:`check_device`);
:func:`parse_train_config` is ``scripts/train.py``'s command line (plugins, the agent's own options, the
task's recipe defaults); :func:`command_flags` writes values back as flags."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import tyro
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo

from glimpse import checks
from agents import trainers
from agents.build import check_algo
from agents.config import Config, agent_spec, import_plugins, task_defaults
from agents.registry import AGENTS
from agents.scripting import ConfigError

__all__ = ["Range", "MAX_SEED", "LIMITS", "check_values", "cli", "check_text", "check_device",
           "parse_train_config", "command_flags"]

T = TypeVar("T")


def _none_or(value_type: type, metavar: str) -> PrimitiveConstructorSpec:
    """``X | None`` flags read the word ``none`` (any case) as None, as the scripts always have."""
    return PrimitiveConstructorSpec(
        nargs=1, metavar=f"{metavar}|none",
        instance_from_str=lambda args: None if args[0].lower() == "none" else value_type(args[0]),
        is_instance=lambda value: value is None or isinstance(value, value_type),
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


@dataclass(frozen=True)
class Range:
    """The values a numeric flag allows: ``low <= value`` (``low < value`` if ``open_low``), ``value <= high``."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def admits(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        low = "" if self.low is None else f"{'>' if self.open_low else '>='} {_number(self.low)}"
        high = "" if self.high is None else f"<= {_number(self.high)}"
        return " and ".join(part for part in (low, high) if part) or "finite"


def _number(value: float) -> str:
    """A bound as written: integers in full (``4294967295``), other values short (``0.001``)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


#: Seeds are at most 2**32 - 1, numpy's and most RL libraries' range; every seed derived from one (env
#: ``i``'s ``seed + i``, rank ``r``'s ``seed + r``) then stays far inside the 64 bits the generators take.
MAX_SEED = 2**32 - 1


#: The allowed range of every numeric flag of the scripts, by field name (the run's, the agents' options,
#: the other scripts' own). A numeric field not listed must only be finite; ``None`` is always allowed
#: where the field's type allows it. A plugin may add its own options' ranges here.
LIMITS: dict[str, Range] = {
    # the run (Config)
    "seed": Range(0, MAX_SEED), "train_images": Range(0), "glimpses": Range(1), "glimpse_size": Range(1),
    "scales": Range(1), "learning_rate": Range(0, open_low=True), "batch_size": Range(1),
    "gae_lambda": Range(0, 1), "ppo_epochs": Range(1), "minibatches": Range(1), "clip_coef": Range(0, open_low=True),
    "value_clip": Range(0, open_low=True), "value_coef": Range(0), "max_grad_norm": Range(0, open_low=True),
    "entropy_coef_final": Range(0), "target_kl": Range(0, open_low=True),
    "eval_every": Range(1), "eval_images": Range(1), "val_images": Range(0), "mc_samples": Range(1), "checkpoint_every": Range(1),
    "torch_threads": Range(1),
    # the agents' options
    "std": Range(0, open_low=True), "std_final": Range(0, open_low=True), "step_ce": Range(0), "entropy_coef": Range(0), "expected_context_prob": Range(0, 1),
    "doubly_stochastic": Range(0), "racnn_input_size": Range(1), "hidden": Range(1), "stn_steps": Range(1), "stn_size": Range(1),
    # the other scripts
    "count": Range(1), "frame_ms": Range(1), "seeds": Range(1), "jobs": Range(1), "total_timesteps": Range(1),
    "num_envs": Range(1), "num_glimpses": Range(1), "n_steps": Range(1), "n_epochs": Range(1),
    "gamma": Range(0, 1), "ent_coef": Range(0), "features_dim": Range(1), "eval_episodes": Range(1),
    "canvas": Range(3), "distractors": Range(0), "steps": Range(1), "budget": Range(0, open_low=True),
    "grid": Range(1), "scale_gain": Range(0, open_low=True), "lstm_hidden": Range(1),
    "threads": Range(1), "updates": Range(1), "repeats": Range(1), "games": Range(1),
}


def check_values(config: Any) -> None:
    """Every numeric field of dataclass ``config`` is finite and within :data:`LIMITS`; else a
    :class:`ConfigError` naming its flag, its range and the value given."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        allowed = LIMITS.get(f.name, Range())
        if not math.isfinite(value) or not allowed.admits(value):
            raise ConfigError(f"--{f.name.replace('_', '-')} must be {allowed}; got {value}")


def cli(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None,
        default: T | None = None) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into dataclass ``cls`` with ``tyro``: one ``--kebab-case``
    flag per field, its help the field's docstring, ``--flag`` / ``--no-flag`` for booleans, ``none`` for
    ``X | None``. Fields annotated ``tyro.conf.Suppress[...]`` are computed at run time: no flag. Numeric
    values are checked against :data:`LIMITS` (:func:`check_values`): a value out of range is one line on
    stderr and exit status 2, as tyro does for a value of the wrong type. ``default``, an instance of
    ``cls``, replaces the class's defaults (and ``--help`` shows its values), e.g. a task's own defaults."""
    try:
        return _parse(cls, argv, description, default)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _parse(cls: type[T], argv: Sequence[str] | None, description: str | None, default: T | None = None) -> T:
    """:func:`cli` that raises :class:`ConfigError` for a value out of range."""
    extra = {} if default is None else {"default": default}
    parsed = tyro.cli(cls, args=argv, description=description, registry=_REGISTRY, **extra)
    for part in [parsed, *(getattr(parsed, f.name) for f in dataclasses.fields(parsed))]:
        if dataclasses.is_dataclass(part) and not isinstance(part, type):
            check_values(part)
            check_text(part)
            if isinstance(getattr(part, "device", None), str):
                check_device(part.device)
    return parsed


def check_text(config: Any) -> None:
    """Every text field of dataclass ``config`` is valid Unicode (a folder name with bytes that are not
    UTF-8 arrives as undecodable surrogates, which no JSON file or log line can hold); else a
    :class:`ConfigError` naming its flag."""
    for f in dataclasses.fields(config):
        values = getattr(config, f.name, None)
        for value in values if isinstance(values, (tuple, list)) else [values]:
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise ConfigError(f"--{f.name.replace('_', '-')} must be valid UTF-8 text; got {ascii(value)} "
                                      f"(rename it)") from None


def check_device(name: str) -> None:
    """A :class:`ConfigError` unless ``name`` is a device that can train here (:func:`glimpse.checks.check_device`)."""
    try:
        checks.check_device(name, "--device")
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _preparse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--agent", default=Config.agent)
    parser.add_argument("--env", default=Config.env)
    parser.add_argument("--plugins", nargs="*", default=[])
    return parser.parse_known_args(list(argv))[0]


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
    recipe = task_defaults(early.env)
    # Flags an agent lacks are skipped: its own options, and --algo for agents the actor-critic trainers
    # cannot train (no policy, or no collect/replay: see check_algo).
    trains = spec.family == "hard" and issubclass(spec.cls, trainers.PolicyAgent)
    run_defaults = {k: v for k, v in recipe.items() if k in shared and (k != "algo" or trains)}
    own_defaults = {k: v for k, v in recipe.items() if k in own}
    wrapper = dataclasses.make_dataclass("train", [
        ("run", Annotated[Config, tyro.conf.OmitArgPrefixes], field(default_factory=lambda: Config(**run_defaults))),
        (group, Annotated[spec.options, tyro.conf.OmitArgPrefixes],
         field(default_factory=lambda: spec.options(**own_defaults))),
    ])
    parsed = _parse(wrapper, argv, description)
    cfg = parsed.run
    cfg.plugins = tuple(cfg.plugins)
    cfg.options = getattr(parsed, group)
    check_algo(cfg)
    return cfg


def command_flags(values: dict[str, Any]) -> list[str]:
    """``{field: value}`` as the command line's words: ``--name value``, a boolean as ``--name`` or
    ``--no-name``, None as ``--name none`` (what :func:`cli` reads back to the same values).

    >>> command_flags({"learning_rate": 0.0003, "anneal_lr": True, "value_clip": None, "resume": False})
    ['--learning-rate', '0.0003', '--anneal-lr', '--value-clip', 'none', '--no-resume']
    """
    words = []
    for name, value in values.items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            words.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            words += [f"--{flag}", "none" if value is None else str(value)]
    return words
