"""The scripts' command line: :func:`cli` parses a dataclass into flags with ``tyro`` (``none`` for
``X | None``), checks every numeric value against the :class:`~agents.ranges.Range` its field declares
(:func:`~agents.ranges.check_values`) and every text and device (:func:`check_text`, :func:`check_device`);
:func:`parse_train_config` is ``scripts/train.py``'s command line (plugins, the agent's own options, the
recipe of the agent on the task, :mod:`agents.recipes`; :func:`recipe_in_use`); :func:`command_flags`
writes values back as flags."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import field
from typing import Annotated, Any, TypeVar

import tyro
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo

from glimpse import checks
from agents.build import check_algo
from agents.config import Config, agent_spec, flat_config, import_plugins
from agents.ranges import MAX_SEED, Range, check_values
from agents.recipes import RECIPES, resolve_recipe
from agents.registry import AGENTS
from agents.scripting import ConfigError
from agents.trainers import OPTIONS_USED, AlgorithmOptions

__all__ = ["Range", "MAX_SEED", "check_values", "cli", "check_text", "check_device", "parse_train_config",
           "recipe_in_use", "command_flags"]

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


def cli(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None,
        default: T | None = None) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into dataclass ``cls`` with ``tyro``: one ``--kebab-case``
    flag per field, its help the field's docstring, ``--flag`` / ``--no-flag`` for booleans, ``none`` for
    ``X | None``. Fields annotated ``tyro.conf.Suppress[...]`` are computed at run time: no flag. Numeric
    values are checked against the ranges their fields declare (:func:`agents.ranges.check_values`),
    nested groups too: a value out of range is one line on
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
    for part in _groups(parsed):
        check_values(part)
        check_text(part)
        if isinstance(getattr(part, "device", None), str):
            check_device(part.device)
    return parsed


def _groups(config: Any) -> list[Any]:
    """Dataclass instance ``config`` and the dataclass instances nested in its fields, at any depth."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        return []
    return [config, *(part for f in dataclasses.fields(config) for part in _groups(getattr(config, f.name, None)))]


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
    parser.add_argument("--recipe", default=Config.recipe)
    parser.add_argument("--plugins", nargs="*", default=[])
    return parser.parse_known_args(list(argv))[0]


def parse_train_config(argv: Sequence[str] | None = None, description: str | None = None) -> Config:
    """``scripts/train.py``'s command line: :class:`Config`'s flags and those of ``--agent``'s options.

    ``--plugins`` are imported and ``--agent`` looked up first, and the recipe of ``--agent`` on ``--env``
    (or ``--recipe``'s, :func:`agents.recipes.resolve_recipe`) gives the defaults; then ``tyro`` builds one
    flat command line from :class:`Config`, its trainer's options and that agent's options dataclass (groups
    in ``--help``), so a flag given wins over the recipe. A flag that belongs to another agent's options is
    refused with a message naming its agents. ``cfg.recipe`` is the name of the recipe used (or ``none``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    early = _preparse(argv)
    import_plugins(early.plugins)
    spec = agent_spec(early.agent)
    own = {f.name for f in dataclasses.fields(spec.options)}
    shared = {f.name for f in dataclasses.fields(Config)} | {f.name for f in dataclasses.fields(AlgorithmOptions)}
    given = set()
    for arg in argv:
        name = arg.split("=", 1)[0].removeprefix("--").removeprefix("no-").replace("-", "_")
        if arg.startswith("--"):
            given.add(name)
        if not arg.startswith("--") or name in own or name in shared:
            continue
        owners = [other for other in AGENTS.values() if name in {f.name for f in dataclasses.fields(other.options)}]
        if owners:
            titles = "/".join(dict.fromkeys(o.title or o.name for o in owners))
            raise ConfigError(f"{arg.split('=', 1)[0]} is a {titles} option; --agent {spec.name} has no such option")
    recipe = resolve_recipe(early.recipe, spec.name, early.env)
    values = recipe.values if recipe is not None else {}
    algorithm = {f.name for f in dataclasses.fields(AlgorithmOptions)}
    unknown = set(values) - own - shared
    if unknown:  # a recipe written for other options: its author's mistake, named
        raise ConfigError(f"recipe {recipe.name} sets {', '.join(sorted(unknown))}, which --agent {spec.name} has no "
                          f"flag for")

    def run_defaults() -> Config:
        return Config(**{k: v for k, v in values.items() if k in shared and k not in algorithm},
                      algorithm=AlgorithmOptions(**{k: v for k, v in values.items() if k in algorithm}))

    group = f"{spec.name.replace('-', '_')}_agent"  # --help titles the group "<agent>-agent options"
    wrapper = dataclasses.make_dataclass("train", [
        ("run", Annotated[Config, tyro.conf.OmitArgPrefixes], field(default_factory=run_defaults)),
        (group, Annotated[spec.options, tyro.conf.OmitArgPrefixes],
         field(default_factory=lambda: spec.options(**{k: v for k, v in values.items() if k in own}))),
    ])
    parsed = _parse(wrapper, argv, description)
    cfg = parsed.run
    cfg.plugins = tuple(cfg.plugins)
    cfg.options = getattr(parsed, group)
    cfg.recipe = recipe.name if recipe is not None else "none"
    algo = cfg.algorithm.algo
    unused = sorted(given & set(OPTIONS_USED["ppo"]) - OPTIONS_USED[algo])  # given, so meant: never silently inert
    if unused:
        users = [a for a in OPTIONS_USED if unused[0] in OPTIONS_USED[a]]
        raise ConfigError(f"--{unused[0].replace('_', '-')} is an option of --algo {'/'.join(users)}; --algo {algo} "
                          f"does not use it")
    check_algo(cfg)
    return cfg


def recipe_in_use(cfg: Config) -> dict[str, Any]:
    """The flags of ``cfg`` whose value is its recipe's (``cfg.recipe``, :data:`agents.recipes.RECIPES`): the
    recipe's values the command line left in place, but for trainer options its ``--algo`` does not read (the
    cluttered-60 recipe's ``--target-kl`` under ``--algo reinforce``: shown, it would look in force)."""
    if cfg.recipe not in RECIPES:
        return {}
    flat = flat_config(cfg)
    ignored = OPTIONS_USED["ppo"] - OPTIONS_USED[cfg.algorithm.algo]
    return {k: v for k, v in RECIPES[cfg.recipe].values.items() if k in flat and flat[k] == v and k not in ignored}


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
