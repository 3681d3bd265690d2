"""A run folder (``--run-dir``) and what it holds: its owner (:func:`lock_run_dir`: one process at a time)
and its files (:data:`RUN_FILES`, never symbolic links), ``config.json`` and ``results.json``
(:func:`read_json`, :func:`write_json`), the checkpoint, written and read here only (:data:`CHECKPOINT_KEYS`,
:func:`checkpoint_payload`, :func:`save_checkpoint`, :func:`read_checkpoint`, :func:`restore_checkpoint`),
``--resume`` (:func:`open_run`, :func:`check_resume`, :func:`check_processes`) and a finished run loaded
back (:func:`load_run`). Every file is written atomically (:mod:`envs.files`)."""

from __future__ import annotations

import json
import math
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from envs import data as envs_data
from envs.files import atomic_write, open_no_follow, write_text_atomic
from agents import distributed
from agents.build import make_agent, make_split_env
from agents.cli import command_flags, recipe_in_use
from agents.config import Config, config_from_flat, flat_config
from agents.provenance import check_data, record_data
from agents.scripting import ConfigError

__all__ = ["LOCK_NAME", "RUN_FILES", "release_run_dir", "check_run_files", "lock_run_dir", "read_json",
           "write_json", "CHECKPOINT_KEYS", "read_checkpoint", "checkpoint_payload", "how_run_differs",
           "save_checkpoint", "restore_checkpoint", "NOT_COMPARED", "saved_config", "flag_differences", "open_run",
           "check_resume", "processes", "check_processes", "load_run"]


LOCK_NAME = "run.lock"


#: What scripts read or write inside a run folder. Each must be the folder's own file (or, ``viz``,
#: folder), never a symbolic link: a link planted there would make a run read or overwrite a file elsewhere.
RUN_FILES = (LOCK_NAME, "config.json", "checkpoint.pt", "results.json", "train.log", "viz")


_held_locks: dict[str, int] = {}


def release_run_dir(run_dir: Path) -> None:
    """Give up this process's ownership of ``run_dir`` (taken by :func:`lock_run_dir`); nothing if not held."""
    handle = _held_locks.pop(str(Path(run_dir).resolve()), None)
    if handle is not None:
        os.close(handle)  # closing the file drops its flock


def check_run_files(run_dir: Path) -> None:
    """A :class:`ConfigError` if any of ``run_dir``'s :data:`RUN_FILES` is a symbolic link."""
    links = [name for name in RUN_FILES if (Path(run_dir) / name).is_symlink()]
    if links:
        raise ConfigError(f"{run_dir}: {', '.join(links)} {'is a symbolic link' if len(links) == 1 else 'are symbolic links'}"
                          f"; a run folder's files must be its own (a link would make the run read or overwrite "
                          f"another file): remove {'it' if len(links) == 1 else 'them'}")


def lock_run_dir(run_dir: Path) -> None:
    """Make ``run_dir`` and own it for the rest of this process: an exclusive ``flock`` on
    ``run_dir/run.lock``, which the OS releases when the process ends, however it ends (so a killed run
    leaves no stale lock). A folder another process owns is refused at once, touching nothing of it; so is
    a folder holding symbolic links where its files belong (:func:`check_run_files`)."""
    import fcntl  # POSIX; imported here so that the rest of the library imports anywhere

    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder")
    if str(run_dir.resolve()) in _held_locks:  # this process owns it already (a second run in one process)
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--run-dir {run_dir}: cannot be made ({error.strerror})") from None
    check_run_files(run_dir)
    try:
        handle = open_no_follow(run_dir / LOCK_NAME)
    except OSError as error:
        check_run_files(run_dir)  # a link made since the check above
        raise ConfigError(f"--run-dir {run_dir}: cannot write there ({error.strerror})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(handle, 64, 0).decode("utf-8", "replace").strip()
        os.close(handle)
        raise ConfigError(f"{run_dir} is in use by another process{f' (pid {holder})' if holder else ''}, which "
                          f"holds {run_dir / LOCK_NAME}; wait for it to end or choose another --run-dir") from None
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
    _held_locks[str(run_dir.resolve())] = handle


def read_json(path: Path) -> dict:
    """A run's JSON file (``config.json``, ``results.json``); missing or damaged: a :class:`ConfigError`
    naming it."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: not a run folder written by scripts/train.py") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path} is damaged (truncated or not JSON: {error})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} is damaged (not a JSON object)")
    return value


def write_json(path: Path, value: dict) -> None:
    """Write a run's JSON file atomically (:func:`envs.files.write_text_atomic`): whole or absent, never
    through a symbolic link. An ``OSError`` (a full disk, a read-only folder) propagates."""
    write_text_atomic(path, json.dumps(value, indent=1))


CHECKPOINT_KEYS = ("config", "model", "optimizer", "env", "torch_rng", "images_seen", "elapsed")


def read_checkpoint(path: Path) -> dict:
    """A checkpoint written by ``scripts/train.py``; missing, truncated, damaged or not a checkpoint: a
    :class:`ConfigError` naming the file.

    Loaded with ``torch.load(weights_only=True)``: tensors and plain values (dicts, lists, strings,
    numbers) only, so a file holding other pickled objects, which could run code as they load, is
    refused without running any of it."""
    path = Path(path)
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; a run's checkpoint must be its own file")
    if not path.is_file():
        raise ConfigError(f"{path} is missing: no checkpoint in {path.parent}")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        if "unsupported global" in str(error).lower():  # a pickled object, not a byte of damage
            raise ConfigError(f"{path} is not a checkpoint of scripts/train.py: it holds objects other than tensors "
                              f"and plain values, which are never loaded (they could run code)") from None
        raise ConfigError(f"{path} is damaged and cannot be read ({_first_line(error)})") from None
    except Exception as error:  # torch.load fails in many ways on a damaged file; all mean the same here
        raise ConfigError(f"{path} is damaged and cannot be read ({_first_line(error)})") from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise ConfigError(f"{path} is not a checkpoint of scripts/train.py (it lacks {', '.join(missing)})")
    wrong = [key for key, valid in _CHECKPOINT_ENTRIES.items() if key in state and not valid(state[key])]
    if wrong:
        raise ConfigError(f"{path} is damaged: its {', '.join(wrong)} {'entry is' if len(wrong) == 1 else 'entries are'} "
                          f"not what scripts/train.py writes")
    return state


def _first_line(error: BaseException) -> str:
    """An exception's first line of text, or its type's name if it has none."""
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_rng_state(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1


#: The form of each entry of a checkpoint (what :func:`read_checkpoint` accepts).
_CHECKPOINT_ENTRIES: dict[str, Callable[[Any], bool]] = {
    "config": lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
    "data": lambda v: isinstance(v, dict),
    "model": lambda v: isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values()),
    "optimizer": lambda v: isinstance(v, dict) and isinstance(v.get("state"), dict)
    and isinstance(v.get("param_groups"), list),
    "env": lambda v: isinstance(v, dict),
    "torch_rng": _is_rng_state,
    "torch_rng_ranks": lambda v: isinstance(v, list) and len(v) > 0 and all(map(_is_rng_state, v)),
    "cuda_rng_ranks": lambda v: isinstance(v, list) and len(v) > 0 and all(map(_is_rng_state, v)),
    "world_size": lambda v: _is_count(v) and v >= 1,
    "images_seen": _is_count,
    "elapsed": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
    "torch_threads": lambda v: _is_count(v) and v >= 1,
    "device": lambda v: isinstance(v, str),
}


def checkpoint_payload(cfg: Config, data: dict[str, dict], model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer, env_state: dict, rngs: list[torch.Tensor],
                       world_size: int, elapsed: float, cuda_rngs: list[torch.Tensor] | None = None) -> dict:
    """What a checkpoint of ``scripts/train.py`` holds (the entries :func:`read_checkpoint` checks): the run's
    flags (:func:`saved_config`) and data record, the weights, the optimizer's state, the whole batch's env
    state ``env_state`` (the ranks' rows in order), every rank's random stream ``rngs`` (rank 0's also as
    ``torch_rng``) and, training on CUDA, every rank's CUDA stream ``cuda_rngs`` (where its sampling draws),
    the number of processes, ``cfg.images_seen``, the training seconds ``elapsed``, and how it ran (torch's CPU
    threads, the device: :func:`how_run_differs`)."""
    return {**({"cuda_rng_ranks": cuda_rngs} if cuda_rngs is not None else {}),
        "config": saved_config(cfg), "data": data,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "env": env_state,
        "torch_rng": rngs[0], "torch_rng_ranks": rngs, "world_size": world_size,
        "images_seen": cfg.images_seen, "elapsed": elapsed,
        "torch_threads": torch.get_num_threads(), "device": str(cfg.device),
    }


def how_run_differs(state: dict, torch_threads: int, device: str) -> str | None:
    """A one-line note if checkpoint ``state`` was trained with another number of torch CPU threads or on another
    device than the resuming process's (``torch_threads``, ``device``), else None (also for a checkpoint that does
    not say). Both are allowed (:data:`NOT_COMPARED`), but sums split over other threads or run on another device
    round differently, so from there the run is no longer bit-identical to an uninterrupted one."""
    was = (state.get("torch_threads"), state.get("device"))
    now = (torch_threads, str(device))
    if None in was or was == now:
        return None
    return (f"--resume: the run was trained so far with {was[0]} torch thread(s) on {was[1]} and goes on with {now[0]} "
            f"on {now[1]}: sums round differently, so its numbers may differ in their last digits from an "
            f"uninterrupted run's (--torch-threads {was[0]} --device {was[1]} would match)")


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write a checkpoint atomically (:func:`envs.files.atomic_write`: flushed to disk, then renamed): a
    killed run or a full disk never leaves a half-written checkpoint, nor a temporary file, behind. An
    ``OSError`` (a full disk, a read-only folder) propagates with the old checkpoint intact."""
    atomic_write(path, lambda file: torch.save(payload, file))


def restore_checkpoint(path: Path, state: dict, cfg: Config, model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer, env, ctx: distributed.Context) -> tuple[Any, float]:
    """Put a run back where checkpoint ``state`` (from :func:`read_checkpoint` of ``path``) left it: the
    model's weights, the optimizer's state, this process's rows of the env and its random stream, and
    ``cfg.images_seen``. Returns ``(obs, elapsed seconds)``. An entry that does not fit this run (other
    shapes, a counter off the run's batches) is a :class:`ConfigError` naming it."""
    seen, ranks = state["images_seen"], state.get("torch_rng_ranks", [state["torch_rng"]])
    if seen % cfg.batch_size or seen >= cfg.train_images + cfg.batch_size:
        raise ConfigError(f"{path} is damaged: its images_seen ({seen}) is not a count of whole --batch-size "
                          f"{cfg.batch_size} batches within --train-images {cfg.train_images}")
    if len(ranks) <= ctx.rank:
        raise ConfigError(f"{path} is damaged: it holds the random streams of {len(ranks)} process(es), not of "
                          f"rank {ctx.rank}")
    steps = (("model", "weights do", lambda: model.load_state_dict(state["model"])),
             ("optimizer", "optimizer state does", lambda: optimizer.load_state_dict(state["optimizer"])),
             ("env", "env state does", lambda: env.load_state_dict(ctx.take_rows(state["env"], cfg.batch_size))),
             ("torch_rng", "random stream does", lambda: torch.set_rng_state(ranks[ctx.rank])))
    cuda_ranks = state.get("cuda_rng_ranks")
    if cuda_ranks is not None and ctx.device.type == "cuda":  # on another device the run goes on, noted
        if len(cuda_ranks) <= ctx.rank:
            raise ConfigError(f"{path} is damaged: it holds the CUDA random streams of {len(cuda_ranks)} "
                              f"process(es), not of rank {ctx.rank}")
        steps += (("cuda_rng", "CUDA random stream does",
                   lambda: torch.cuda.set_rng_state(cuda_ranks[ctx.rank], ctx.device)),)
    results = {}
    for key, what, load in steps:
        try:
            results[key] = load()
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise ConfigError(f"{path}: its {what} not fit the run's own configuration ({_first_line(error)})") from None
    cfg.images_seen = seen
    return results["env"], float(state["elapsed"])


#: Flags that say how to run, not what the run is: they may differ on --resume.
NOT_COMPARED = ("resume", "allow_other_data", "torch_threads", "device")


def saved_config(cfg: Config) -> dict:
    """What a checkpoint records of the run's configuration: every flag but those that say how to run."""
    return {k: v for k, v in flat_config(cfg).items() if k not in NOT_COMPARED}


def flag_differences(recorded: dict, current: dict, data_checked: bool = False) -> list[str]:
    """The flags whose values differ between a run's recorded configuration and ``current`` (both as
    :func:`flat_config` gives them), each as :func:`flag_difference` names it (:func:`differing_fields`)."""
    return [flag_difference(k, recorded, current) for k in differing_fields(recorded, current, data_checked)]


def flag_difference(name: str, recorded: dict, current: dict) -> str:
    """Field ``name``'s values in the run and in the command: ``--flag (run: X, command: Y)``."""
    return f"--{name.replace('_', '-')} (run: {recorded.get(name, 'unset')}, command: {current.get(name, 'unset')})"


def differing_fields(recorded: dict, current: dict, data_checked: bool = False) -> list[str]:
    """The fields whose values differ between a run's recorded configuration and ``current``. Where the folder is
    (``run_dir``: a moved run is the same run), the recipe's name (its values are flags, compared) and its
    number of processes (``world_size``, checked on its own by ``scripts/train.py``) are not compared; nor, when ``data_checked`` (the data's contents were
    compared with the run's record by :func:`check_data`), where the data are (``data_dir``: identical
    files elsewhere are the same data)."""
    missing = object()
    skipped = (*NOT_COMPARED, "run_dir", "recipe", "data", "world_size", *(("data_dir",) if data_checked else ()))
    names = [k for k in dict.fromkeys([*current, *recorded]) if k not in skipped]
    return [k for k in names if recorded.get(k, missing) != current.get(k, missing)
            and not (k == "plugins" and list(recorded.get(k, [])) == list(current.get(k, [])))]


def open_run(cfg: Config, run_dir: Path) -> tuple[bool, dict | None, dict | None, bool]:
    """Take ``run_dir`` (its lock) and read what it holds: ``(started, checkpoint, recorded flags, whether
    results.json exists)``."""
    if cfg.resume and not run_dir.exists():
        raise ConfigError(f"--resume: {run_dir} does not exist")
    lock_run_dir(run_dir)  # ours until this process ends; refused at once if another process trains here
    checkpoint_path, config_path, results_path = (run_dir / n for n in ("checkpoint.pt", "config.json", "results.json"))
    started = checkpoint_path.exists() or config_path.exists() or results_path.exists()
    if started and not cfg.resume:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose a new --run-dir")
    if cfg.resume and not started:  # killed before it wrote config.json: nothing to continue, so start it
        print(f"--resume: {run_dir} holds no run yet; starting it", file=sys.stderr)
    # Killed before its first checkpoint: the run starts again from scratch, with the flags it recorded.
    state = read_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
    recorded = state["config"] if state is not None else read_json(config_path) if config_path.exists() else None
    return started, state, recorded, results_path.exists()


def check_resume(cfg: Config, state: dict | None, recorded: dict | None, data: dict[str, dict]) -> None:
    """``--resume`` of a run that recorded its flags (``state``, ``recorded``: from :func:`open_run`; nothing
    if ``recorded`` is None): a :class:`ConfigError` if the data loaded (``data``, :func:`record_data`)
    differ from the run's, unless ``--allow-other-data``, or if any flag does (:func:`flag_differences`)."""
    if recorded is None:
        return
    recorded_data = state.get("data") if state is not None else recorded.get("data")
    held_out = recorded.get("val_images", 0)  # before the data: it decides which training items the run has
    if held_out != cfg.val_images:
        raise ConfigError(f"--resume: the run holds out --val-images {held_out} of its training split for validation "
                          f"and this command {cfg.val_images}; pass --val-images {held_out}")
    if not cfg.allow_other_data:  # first: other data can change values computed from them (--eval-images)
        check_data(recorded_data, data, "--resume", "--allow-other-data")
    try:  # a run recorded before a flag existed ran with its default: read through config_from_flat
        recorded = {**flat_config(config_from_flat(recorded, cfg.plugins)), **recorded}
    except (ValueError, TypeError):  # ConfigError is a ValueError
        pass  # damaged or from unnamed plugins: compared as recorded, each difference named below
    # Where the data lie is no flag to compare once their contents are (identical files elsewhere).
    current = saved_config(cfg)
    fields = differing_fields(recorded, current, data_checked=recorded_data is not None)
    if fields:
        differ = [flag_difference(k, recorded, current) for k in fields]
        recipe = recorded.get("recipe", cfg.recipe)  # flags the user never typed may be a recipe's: say whose
        if recipe != cfg.recipe:
            hint = f" (the run's recipe is {recipe}, this command's {cfg.recipe}: --recipe {recipe})"
        else:  # the run's values, word for word; where the recipe gives the command's, say so
            runs = command_flags({k: recorded[k] for k in fields if k in recorded and k != "plugins"})
            given = {k: v for k, v in recipe_in_use(cfg).items() if k in fields}
            hint = (f": {' '.join(runs)}" if runs else "") + (
                f" (recipe {cfg.recipe} gives {' '.join(command_flags(given))}; the run's were typed or its recipe "
                f"has changed since)" if given else "")
        raise ConfigError(f"--resume: the command's flags differ from the run's: {'; '.join(differ)}; "
                          f"pass the run's flags{hint}")


def processes(count: int) -> str:
    """``count`` processes in words: one (no torchrun) or ``torchrun`` with that many."""
    return "one process (no torchrun)" if count == 1 else f"{count} processes (torchrun)"


def check_processes(run_dir: Path, state: dict | None, world_size: int) -> None:
    """A :class:`ConfigError` if checkpoint ``state`` of ``run_dir`` was trained by another number of processes
    than ``world_size``: each one's episodes and random stream continue from the checkpoint."""
    if state is not None and state.get("world_size", 1) != world_size:
        raise ConfigError(f"--resume: {run_dir} was trained by {processes(state.get('world_size', 1))} and this launch "
                          f"has {processes(world_size)}; resume it with as many (each one's episodes and random "
                          f"stream continue from the checkpoint)")


def load_run(run_dir: Path, allow_other_data: bool = False, plugins: Sequence[str] = (), split: str = "test",
             **overrides: Any) -> tuple[Config, torch.nn.Module, Any]:
    """The config, trained model and test env of a run written by ``scripts/train.py`` (or the env of another
    ``split``: :func:`agents.build.make_split_env`).

    The model is built from the checkpoint's own configuration (not the loose ``config.json``), and the
    split's data must be those the run recorded unless ``allow_other_data``. Loading runs no code from the
    folder: the checkpoint holds tensors and plain values only (:func:`read_checkpoint`), and the plugins
    the run recorded must be among ``plugins``, the ones the user named (:func:`config_from_flat`).
    ``overrides`` set fields of the config (``eval_images``, ``device``); ``eval_images`` above the test
    split is capped to it.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder")
    if not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} does not exist")
    check_run_files(run_dir)
    state = read_checkpoint(run_dir / "checkpoint.pt")
    try:
        cfg = config_from_flat(state["config"], plugins)
    except ConfigError as error:
        raise ConfigError(f"{run_dir}: {error}") from None
    except (TypeError, ValueError) as error:  # fields of the wrong type or value: the options refuse them
        raise ConfigError(f"{run_dir / 'checkpoint.pt'} is damaged: its configuration does not load "
                          f"({_first_line(error)})") from None
    for name, value in overrides.items():
        setattr(cfg, name, value)
    cfg.images_seen = state["images_seen"]
    with envs_data.recording() as loaded:
        split_env = make_split_env(cfg, split)
    recorded_data = state.get("data")
    if recorded_data is not None and not (isinstance(recorded_data, dict)
                                          and all(isinstance(v, dict) for v in recorded_data.values())):
        raise ConfigError(f"{run_dir / 'checkpoint.pt'} is damaged: its data record is not one entry per split")
    if not allow_other_data:
        check_data({k: v for k, v in state["data"].items() if k == split} if "data" in state else None,
                   record_data(loaded), f"{run_dir}", "--allow-other-data")
    model = make_agent(cfg, split_env)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ConfigError(f"{run_dir / 'checkpoint.pt'}: its weights do not fit its own configuration "
                          f"({_first_line(error)})") from None
    bad = [name for name, value in model.state_dict().items() if value.is_floating_point() and not value.isfinite().all()]
    if bad:  # train.py stops before saving such weights
        raise ConfigError(f"{run_dir / 'checkpoint.pt'} is damaged: non-finite weights {', '.join(bad[:3])}"
                          f"{' ...' if len(bad) > 3 else ''}")
    return cfg, model, split_env
