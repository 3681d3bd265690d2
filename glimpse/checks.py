"""Input checks for every public boundary of the project: one helper per kind of argument.

Every package (``glimpse``, ``envs``, ``agents``, ``scripts``) validates its inputs with these, so every
error reports what arrived in the same words, e.g. ``images must be (N, C, H, W); got (3, 28, 28)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["ArgumentError", "check_shape", "check_finite", "check_int", "check_positive_int", "check_number",
           "check_canvas", "check_device"]


class ArgumentError(ValueError):
    """A refused argument that says which one: ``field`` names it, so that a caller who knows the argument
    by another name (an env keyword, a command-line flag) can re-word the message without searching it.

    Subclassed where an error needs its own type (:class:`glimpse.RetinaError`; a missing data folder is also
    a ``FileNotFoundError``). The message is ``template`` with these tokens filled in:

    - ``{name}``: the argument itself, as its caller names it (``names[field]``, else ``field``);
    - ``{=}``: what joins it to a value that follows (``=`` in Python's words, ``" "`` on a command line);
    - ``{f}`` for each ``f`` of :attr:`FIELDS`: another argument mentioned, as its caller names it.

    Example:
        >>> error = ArgumentError("scales", "{name}{=}10 is too many; use {name} <= 4")
        >>> str(error), error.worded("--scales", " ")
        ('scales=10 is too many; use scales <= 4', '--scales 10 is too many; use --scales <= 4')
    """

    #: The other arguments a message of this type may mention by token.
    FIELDS: tuple[str, ...] = ()

    def __init__(self, field: str, template: str, names: dict[str, str] | None = None) -> None:
        self.field, self.template, self.names = field, template, dict(names or {})
        super().__init__(self.worded())

    @property
    def name(self) -> str:
        """The argument as its caller names it."""
        return self.names.get(self.field, self.field)

    def worded(self, name: str | None = None, assign: str = "=") -> str:
        """The message with the argument called ``name`` (default :attr:`name`) and joined to its value by
        ``assign``; other arguments keep their callers' names."""
        text = self.template.replace("{name}", self.name if name is None else name).replace("{=}", assign)
        for field in self.FIELDS:
            text = text.replace("{" + field + "}", self.names.get(field, field))
        return text

    def renamed(self, names: dict[str, str]) -> ArgumentError:
        """The same error for a caller that names the arguments ``names`` (``{field: its name}``)."""
        return type(self)(self.field, self.template, {**self.names, **names})

    def __reduce__(self):  # picklable (async vector envs send errors between processes)
        return type(self), (self.field, self.template, self.names)


def check_shape(tensor: object, name: str, pattern: str, dims: Sequence[int | None] | None = None) -> None:
    """Raise ``ValueError`` unless ``tensor`` is a ``Tensor`` of the given rank (and sizes).

    Args:
        tensor: the argument to check.
        name: the argument's name, used in the message.
        pattern: the expected layout for the message, e.g. ``"(B, C, H, W)"``.
        dims: one entry per dimension; an int fixes that size, ``None`` leaves it free.
            When omitted, only the rank (the number of comma-separated names in ``pattern``) is checked.

    Example:
        >>> check_shape(torch.zeros(2, 3), "x", "(N, 3)", (None, 3))
        >>> check_shape(torch.zeros(2, 4), "x", "(N, 3)", (None, 3))
        Traceback (most recent call last):
        ...
        ValueError: x must be (N, 3); got (2, 4)
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {pattern}; got {type(tensor).__name__}")
    rank = len(dims) if dims is not None else pattern.count(",") + 1
    if tensor.dim() != rank:
        raise ValueError(f"{name} must be {pattern}; got {tuple(tensor.shape)}")
    if dims is not None:
        for size, want in zip(tensor.shape, dims):
            if want is not None and size != want:
                raise ValueError(f"{name} must be {pattern}; got {tuple(tensor.shape)}")


def check_finite(tensor: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``tensor`` holds a NaN or an infinity."""
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must be finite; got NaN or inf in {tuple(tensor.shape)}")


def check_int(value: object, name: str, *, minimum: int = 1, why: str = "") -> int:
    """Return ``value`` as an ``int``, or raise ``ValueError`` unless it is an integer ``>= minimum``.

    Python and NumPy integers pass; ``bool`` and floats (even ``2.0``) do not.

    Args:
        value: the argument to check.
        name: the argument's name, used in the message.
        minimum: the smallest allowed value.
        why: an optional reason appended to the requirement in the message.

    Example:
        >>> check_int(3, "scales")
        3
        >>> check_int(2, "screen", minimum=3, why="(a 2-pixel paddle and room to move)")
        Traceback (most recent call last):
        ...
        ValueError: screen must be an integer >= 3 (a 2-pixel paddle and room to move); got 2
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' ' + why if why else ''}; got {value!r}")
    return int(value)


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an ``int``, or raise ``ValueError`` if it is not an integer ``>= 1``
    (:func:`check_int` with ``minimum=1``)."""
    return check_int(value, name, minimum=1)


def check_number(value: object, name: str, *, minimum: float = 0.0, open_low: bool = False, why: str = "") -> float:
    """Return ``value`` as a ``float``, or raise ``ValueError`` unless it is a finite Python ``int`` or ``float``
    ``>= minimum`` (``> minimum`` with ``open_low``); ``bool`` does not pass.

    Example:
        >>> check_number(0.3, "std", open_low=True)
        0.3
        >>> check_number(-1, "speed", why="(pixels per frame)")
        Traceback (most recent call last):
        ...
        ValueError: speed must be a finite number >= 0 (pixels per frame); got -1
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (value <= minimum if open_low else value < minimum):
        raise ValueError(f"{name} must be a finite number {'>' if open_low else '>='} {minimum:g}"
                         f"{' ' + why if why else ''}; got {value!r}")
    return float(value)


def check_device(device: object, name: str = "device") -> torch.device:
    """Return ``device`` as a ``torch.device``, or raise ``ValueError`` unless it is a device this machine
    has that can hold the glimpse core's tensors: ``cpu``, ``cuda[:N]``, ``mps`` (torch's other device
    types, such as ``meta``, hold no data or are not supported here).

    Example:
        >>> check_device("cpu")
        device(type='cpu')
        >>> check_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: device must be cpu, cuda, cuda:N or mps; got 'gpu'
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name} must be cpu, cuda, cuda:N or mps; got {device!r}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} {str(device)!r}: this torch has no CUDA device (torch {torch.__version__})")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"{name} {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name} {str(device)!r}: this torch has no MPS device (torch {torch.__version__})")
    return parsed


def check_canvas(images: object, name: str = "images", shape: Sequence[int] | None = None) -> None:
    """Raise unless ``images`` is a float canvas batch ``(N, C, H, W)`` (values meant in ``[0, 1]``).

    Args:
        images: the argument to check.
        name: the argument's name, used in the message.
        shape: ``(C, H, W)`` the canvases must have (e.g. an env's ``canvas_shape``); ``None`` checks
            only the rank.

    Raises:
        ValueError: wrong rank or sizes. TypeError: not a tensor, or not floating point (uint8
            canvases must be divided by 255 first).

    Example:
        >>> check_canvas(torch.zeros(2, 1, 28, 28), shape=(1, 28, 28))
        >>> check_canvas(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
        Traceback (most recent call last):
        ...
        TypeError: images must be float in [0, 1] (divide uint8 canvases by 255); got torch.uint8
    """
    if shape is None:
        check_shape(images, name, "(N, C, H, W)")
    else:
        check_shape(images, name, f"(N, {', '.join(map(str, shape))})", dims=(None, *shape))
    if not images.is_floating_point():
        raise TypeError(f"{name} must be float in [0, 1] (divide uint8 canvases by 255); got {images.dtype}")
