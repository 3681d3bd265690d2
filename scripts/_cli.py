"""Build a command line from a config dataclass, so ``--help`` explains every flag.

Each field becomes one ``--kebab-case`` flag with the field's default; its help is the string literal
written under the field (a "field docstring"), or else the comment that ends the field's line::

    @dataclass
    class Config:
        seed: int = 1
        \"\"\"seed of the run\"\"\"
        lr: float = 3e-4  # Adam's step size
        device: str | None = None
        \"\"\"torch device; 'none' picks one at run time\"\"\"
        cuda: bool = True
        \"\"\"use the GPU if there is one (--cuda / --no-cuda)\"\"\"

    cfg = parse_config(Config)  # reads sys.argv[1:]

Supported annotations: ``int``, ``float``, ``str``, ``bool`` (``--flag`` / ``--no-flag``),
``Literal[...]`` (the values become argparse ``choices``), and ``X | None`` / ``Optional[X]`` of those,
where the word ``none`` on the command line gives ``None``. Fields declared ``field(init=False)`` are
computed at run time and get no flag. Scripts import this file with the scripts folder on ``sys.path``,
which is where Python puts it when it runs ``python scripts/NAME.py``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

__all__ = ["build_parser", "parse_config", "field_help"]

T = TypeVar("T")


def field_help(cls: type) -> dict[str, str]:
    """``{field name: help}`` read from the class source: the docstring under a field, else its line's comment."""
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):  # no source (e.g. defined in an interactive session)
        return {}
    source = textwrap.dedent("".join(lines))
    comments = {  # line number -> text of the comment that ends that line
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    body = ast.parse(source).body[0].body
    helps = {}
    for node, after in zip(body, [*body[1:], None]):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        docstring = after is not None and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
        if docstring and isinstance(after.value.value, str):
            helps[node.target.id] = inspect.cleandoc(after.value.value)
        elif node.end_lineno in comments:
            helps[node.target.id] = comments[node.end_lineno]
    return helps


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(text)
    return text.lower() == "true"


def _none_or(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_optional(text: str) -> Any:
        return None if text.lower() == "none" else parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")  # argparse names the type in its errors
    return parse_optional


def _argument(name: str, hint: Any, default: Any) -> dict[str, Any]:
    """argparse keyword arguments for a field annotated ``hint``."""
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"field {name!r}: only 'X | None' unions are supported; got {hint}")
        hint = rest[0]
    if hint is bool:
        if not optional:
            return dict(action=argparse.BooleanOptionalAction, default=default)
        hint = Literal[True, False]  # "--flag true|false|none"
    if typing.get_origin(hint) is Literal:
        choices = list(typing.get_args(hint))
        parse = _parse_bool if isinstance(choices[0], bool) else type(choices[0])
        return dict(type=_none_or(parse) if optional else parse, choices=[*choices, None] if optional else choices,
                    default=default, metavar="{" + ",".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices) + (",none}" if optional else "}"))
    if hint in (int, float, str):
        return dict(type=_none_or(hint) if optional else hint, default=default,
                    metavar=hint.__name__.upper() + ("|none" if optional else ""))
    raise TypeError(f"field {name!r}: unsupported annotation {hint}; use int, float, str, bool, Literal[...] or X | None")


def build_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with one ``--kebab-case`` flag per init field of dataclass ``cls``."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"build_parser needs a dataclass type; got {cls!r}")
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    hints, helps = typing.get_type_hints(cls), field_help(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue  # computed at run time
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"field {f.name!r} of {cls.__name__} needs a default to become an optional flag")
        kwargs = _argument(f.name, hints[f.name], default)
        text = helps.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        action = parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kwargs)
        # Set after construction: some Pythons' BooleanOptionalAction append their own "(default: ...)".
        action.help = f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
    return parser


def parse_config(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into an instance of dataclass ``cls``.

    ``description`` (default: the docstring of the module that defines ``cls``) heads ``--help``.
    """
    if description is None:
        description = getattr(sys.modules.get(cls.__module__), "__doc__", None)
    namespace = build_parser(cls, description).parse_args(argv)
    return cls(**vars(namespace))
