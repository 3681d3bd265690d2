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

Under ``torchrun`` the same script trains data-parallel (:mod:`agents.distributed`): :func:`make_env` builds
this process's rows of the global batch, :func:`make_test_env` and :func:`evaluate` its share of the test
examples (reduced over the processes), :func:`check_update` logs and checks the losses averaged over them.

A run's configuration is :class:`Config` (what every run has) plus ``cfg.options``, an instance of its
agent's own options dataclass (:data:`agents.AGENTS`). Saved (``config.json``, checkpoints) and shown
(TensorBoard's table) flat, by :func:`flat_config`: one key per command-line flag. Agents and tasks
are looked up by name here only, in :data:`agents.AGENTS` and :data:`envs.TASKS`; ``plugins`` names
modules to import first, which may register more of either.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


from envs.files import open_no_follow
from agents.build import (capped_to_test_split, check_algo, eval_share, make_agent, make_env, make_test_env,
                          make_trainer, task_spec, trainer_options)
from agents.cli import (LIMITS, MAX_SEED, Range, check_device, check_text, check_values, cli, command_flags,
                        parse_train_config)
from agents.config import (Config, agent_spec, config_from_flat, flat_config, import_plugins, recipe_in_use,
                           task_defaults)
from agents.evaluation import evaluate
from agents.health import check_parameters, check_update
from agents.pictures import attention_picture, eval_picture, paths_picture, picture_at, replay_test_paths
from agents.provenance import announcing_data, check_data, check_same_data, describe_data, record_data
from agents.run_folder import (CHECKPOINT_KEYS, LOCK_NAME, NOT_COMPARED, RUN_FILES, check_run_files, flag_differences,
                               load_run, lock_run_dir, read_checkpoint, read_json, release_run_dir,
                               restore_checkpoint, save_checkpoint, write_json)
from agents.scripting import ConfigError, NullWriter, TrainingStopped, run_script

__all__ = [
    "Config", "ConfigError", "TrainingStopped", "run_script", "LIMITS", "Range", "check_values", "release_run_dir",
    "parse_train_config", "cli", "task_defaults", "recipe_in_use", "command_flags", "flat_config", "config_from_flat", "agent_spec",
    "task_spec", "make_env", "eval_share", "make_test_env", "capped_to_test_split", "make_agent", "check_algo", "trainer_options", "make_trainer",
    "import_plugins", "announcing_data", "record_data", "describe_data", "check_data", "check_same_data", "evaluate", "replay_test_paths",
    "picture_at", "paths_picture", "attention_picture", "eval_picture", "lock_run_dir", "read_json",
    "read_checkpoint", "restore_checkpoint", "flag_differences", "load_run", "save_checkpoint", "write_json",
    "check_run_files", "check_text", "check_device", "MAX_SEED", "check_update", "check_parameters", "run_parallel",
    "threads_per_job", "NullWriter", "CHECKPOINT_KEYS", "LOCK_NAME", "NOT_COMPARED", "RUN_FILES",
]

# ------------------------------------------------------------------------------------------------
# The command line (tyro), and the flat form a run is saved in
# ------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------
# Env and agent
# ------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------
# Evaluation and pictures
# ------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------
# Runs on disk
# ------------------------------------------------------------------------------------------------


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of ``jobs`` concurrent runs: the cores shared out, at least 1."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_parallel(runs: list[tuple[Path, list[str]]], jobs: int) -> None:
    """Run each ``(run_dir, command)`` whose ``run_dir/results.json`` does not exist yet, ``jobs`` at a time.

    A run started before (``config.json`` or a checkpoint) but without results (killed at any point) is
    completed with ``--resume``. Output goes to
    ``run_dir/train.log``. The first failure stops the others and exits with a message naming its log.
    """
    todo = [(run_dir, command) for run_dir, command in runs if not (run_dir / "results.json").exists()]
    running: list[tuple[Path, subprocess.Popen, object]] = []
    while todo or running:
        while todo and len(running) < jobs:
            run_dir, command = todo.pop(0)
            resume = (run_dir / "checkpoint.pt").exists() or (run_dir / "config.json").exists()
            run_dir.mkdir(parents=True, exist_ok=True)
            check_run_files(run_dir)
            log = os.fdopen(open_no_follow(run_dir / "train.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a")
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
