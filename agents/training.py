"""The training library behind ``scripts/``, gathered in one namespace: one run's configuration, its env
and agent, checkpoints, evaluation, pictures, the command line, and running many runs.

``scripts/train.py`` is the loop (arguments, build, loop, like CleanRL's scripts); everything it shares
with ``evaluate.py``, ``visualize.py``, ``compare.py``, ``ram_table.py`` and ``bench_train.py`` is here::

    from agents import training

    cfg = training.Config(agent="ram", env="mnist", glimpses=6, glimpse_size=8, scales=3)
    env = training.make_env(cfg, "train", cfg.batch_size)
    model = training.make_agent(cfg, env)
    obs, _ = env.reset(seed=cfg.seed)
    losses, obs = model.train_losses(env, obs)      # one update's losses (see agents.contract.Agent)
    metrics = training.evaluate_split(cfg, model, training.make_test_env(cfg))

This module only re-exports; each name lives in the module of its job:

- :mod:`agents.scripting`: :class:`ConfigError`, :class:`TrainingStopped` and their exit statuses
  (:func:`run_script`), :class:`NullWriter`;
- :mod:`agents.config`: :class:`Config` and its groups (run, task and retina, optimiser; the trainer's
  options are :class:`agents.trainers.AlgorithmOptions`), its flat form (:func:`flat_config`,
  :func:`config_from_flat`), the agent look-up and ``--plugins``;
- :mod:`agents.ranges`: the ranges numeric fields declare (:class:`Range`, :func:`check_values`);
- :mod:`agents.recipes`: named training recipes per agent and task (:data:`RECIPES`);
- :mod:`agents.cli`: the command line (:func:`cli`, :func:`parse_train_config`, :func:`recipe_in_use`,
  :func:`command_flags`);
- :mod:`agents.build`: the env, test env, agent and trainer factories;
- :mod:`agents.provenance`: which data a run trained and is tested on;
- :mod:`agents.evaluation`: :func:`evaluate_split`;
- :mod:`agents.pictures`: glimpse paths and attention maps;
- :mod:`agents.health`: non-finite losses, gradients and weights stop a run;
- :mod:`agents.run_folder`: the run folder's lock, files, checkpoint and ``--resume``, :func:`load_run`;
- :mod:`agents.sweep`: many runs as subprocesses (:func:`run_parallel`).

Under ``torchrun`` the same script trains data-parallel (:mod:`agents.distributed`): :func:`make_env` builds
this process's rows of the global batch, :func:`make_test_env` and :func:`evaluate_split` its share of the test
examples (reduced over the processes), :func:`check_update` logs and checks the losses averaged over them.

A run's configuration is :class:`Config` (what every run has) plus ``cfg.options``, an instance of its
agent's own options dataclass (:data:`agents.AGENTS`). Saved (``config.json``, checkpoints) and shown
(TensorBoard's table) flat, by :func:`flat_config`: one key per command-line flag. Agents and tasks
are looked up by name here only, in :data:`agents.AGENTS` and :data:`envs.TASKS`; ``plugins`` names
modules to import first, which may register more of either.
"""

from __future__ import annotations

from agents.build import (capped_to_test_split, check_algo, eval_share, make_agent, make_env, make_split_env,
                          make_test_env, make_trainer, make_val_env, takes_entropy_bonus, task_spec)
from agents.cli import check_device, check_text, cli, command_flags, parse_train_config, recipe_in_use
from agents.config import (Config, OptimiserOptions, Retina, RunOptions, TaskOptions, agent_spec, config_from_flat,
                           flat_config, import_plugins)
from agents.ranges import MAX_SEED, Range, check_values
from agents.recipes import RECIPES, Recipe, register_recipe, resolve_recipe
from agents.evaluation import evaluate_split
from agents.health import check_parameters, check_update, diverged
from agents.pictures import attention_picture, eval_picture, paths_picture, picture_at, replay_test_paths
from agents.provenance import announcing_data, check_data, check_same_data, describe_data, record_data
from agents.run_folder import (CHECKPOINT_KEYS, LOCK_NAME, NOT_COMPARED, RUN_FILES, check_processes, check_resume,
                               check_run_files, checkpoint_payload, flag_differences, load_run, lock_run_dir,
                               open_run, processes, read_checkpoint, read_json, release_run_dir, restore_checkpoint,
                               save_checkpoint, saved_config, write_json)
from agents.scripting import ConfigError, NullWriter, TrainingStopped, output_folder, run_script
from agents.sweep import run_parallel, threads_per_job

__all__ = [
    # agents.scripting
    "ConfigError", "TrainingStopped", "run_script", "output_folder", "NullWriter",
    # agents.config
    "Retina", "TaskOptions", "OptimiserOptions", "RunOptions", "Config", "agent_spec", "import_plugins",
    "flat_config", "config_from_flat",
    # agents.ranges
    "Range", "MAX_SEED", "check_values",
    # agents.recipes
    "Recipe", "RECIPES", "register_recipe", "resolve_recipe",
    # agents.cli
    "cli", "check_text", "check_device", "parse_train_config", "recipe_in_use", "command_flags",
    # agents.build
    "task_spec", "make_env", "eval_share", "make_test_env", "make_val_env", "make_split_env", "capped_to_test_split",
    "make_agent",
    "takes_entropy_bonus", "check_algo", "make_trainer",
    # agents.provenance
    "announcing_data", "record_data", "describe_data", "check_data", "check_same_data",
    # agents.evaluation
    "evaluate_split",
    # agents.pictures
    "replay_test_paths", "picture_at", "paths_picture", "attention_picture", "eval_picture",
    # agents.health
    "check_update", "check_parameters", "diverged",
    # agents.run_folder
    "LOCK_NAME", "RUN_FILES", "release_run_dir", "check_run_files", "lock_run_dir", "read_json", "write_json",
    "CHECKPOINT_KEYS", "read_checkpoint", "checkpoint_payload", "save_checkpoint", "restore_checkpoint",
    "NOT_COMPARED", "saved_config", "flag_differences", "open_run", "check_resume", "processes", "check_processes",
    "load_run",
    # agents.sweep
    "run_parallel", "threads_per_job",
]
