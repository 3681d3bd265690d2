"""Train an attention agent on a glimpse task: hard attention (REINFORCE, A2C or PPO), its soft counterparts, or a baseline.

Agents (``--agent``), by the project's taxonomy:

* hard, location-wise: ``ram`` (Mnih et al. 2014); hard, item-wise: ``item-hard``;
* soft, item-wise: ``item-soft``; soft, location-wise: ``spatial-soft``, ``stn`` (Jaderberg et al. 2015);
* RA-CNN (Fu et al. 2017), zooming in over 3 scales: ``racnn-soft`` (boxcar mask, ranking loss),
  ``racnn-hard`` (REINFORCE);
* full-image baselines: ``fc``, ``conv``.

    python scripts/train.py --agent ram --env mnist --seed 1 --train-images 60000 --run-dir runs/ram-mnist
    python scripts/train.py --agent ram --env catch --run-dir runs/ram-catch     # Catch's recipe: PPO, 6 px x 3

``--algo`` picks how the hard agents learn their policies (:mod:`agents.trainers`): ``reinforce`` (the
papers' REINFORCE with a learned baseline), ``a2c`` or ``ppo`` (a per-step critic on the recurrent state,
GAE, and for PPO several epochs of clipped minibatch updates over each batch of episodes, replayed through
the current networks). An agent may have a training recipe for a task (:mod:`agents.recipes`; RAM's for
Catch, ``ram-catch``, is PPO with the paper's retina): its values are the defaults where the command line is
silent, printed at the start, marked in TensorBoard's configuration table and named in ``config.json``
(``recipe``); ``--recipe NAME`` picks one by name, ``--recipe none`` trains with the plain defaults.

Writes to ``--run-dir``: TensorBoard events (scalars under ``train/``, ``eval/``, ``charts/``, the config as
a table, pictures of glimpse paths at each evaluation), ``config.json``, ``checkpoint.pt`` (written
atomically) and, at the end, ``results.json``. ``--train-images`` is the budget in images (episodes for
Catch), so runs compare at equal data; 0 evaluates the untrained model.

A run folder has one owner: the process holds ``run.lock`` for its life, and a second one is refused.
``--resume`` completes a run killed at any point (before its first checkpoint, between two, after the
last) to the same ``results.json`` an uninterrupted run writes (same seed, CPU, as many torch threads: with
another ``--torch-threads`` or ``--device`` it goes on and says so, as sums then round differently); it
refuses other flags (naming them) or other data; on a finished run it does nothing. The data's provenance
(kind, path, checksums, sizes) is printed at the start and recorded in ``config.json``, the checkpoint and
``results.json``. A non-finite loss or gradient stops training with a one-line message (exit status 1),
keeping the last good checkpoint and writing no ``results.json``.

Data-parallel under ``torchrun`` (:mod:`agents.distributed`): ``torchrun --nproc-per-node N scripts/train.py
...`` trains with N processes (gloo on CPU; ``--device cuda``: nccl, one GPU each), every one playing its
own rows of each ``--batch-size`` batch (the global batch: together exactly the episodes one process plays)
and stepping with the gradient averaged over all of them. Rank 0 alone writes the run folder;
evaluation is shared out and reduced; ``results.json`` records ``world_size``, and ``--resume`` takes the
same number of processes.

Every flag, with its meaning: ``--help`` (the run's flags, then those of ``--agent``'s own options).
``--plugins MODULE ...`` imports modules first, which may register agents (``agents.register_agent``) and
tasks (``envs.register_task``); the run records them, so ``evaluate.py`` and ``visualize.py`` find them
again. The library behind this script is :mod:`agents.training`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from agents import distributed
from agents.build import make_agent, make_env, make_test_env, make_trainer, make_val_env
from agents.cli import command_flags, parse_train_config, recipe_in_use
from agents.config import flat_config
from agents.distributed import PeerFailure, average_gradients
from agents.evaluation import evaluate_split
from agents.flops import flops_per_image
from agents.health import check_parameters, diverged
from agents.pictures import eval_picture
from agents.progress import Progress
from agents.provenance import announcing_data, check_same_data, describe_data, record_data
from agents.run_folder import (check_processes, check_resume, checkpoint_payload, how_run_differs, open_run,
                               restore_checkpoint, save_checkpoint, write_json)
from agents.scripting import ConfigError, NullWriter, TrainingStopped, run_script


def main() -> None:
    cfg = parse_train_config(description=__doc__.split("\n\n")[0])
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)
    # Under torchrun: this process's rank and device, and its rows of every global batch (else rank 0 of 1),
    # checked before it joins the others.
    first_row, rows = distributed.context_from_env(cfg.device).share(cfg.batch_size, "--batch-size")
    ctx = distributed.init_from_env(cfg.device)
    cfg.device = str(ctx.device)
    run_dir = Path(cfg.run_dir)
    checkpoint_path, config_path, results_path = (run_dir / n for n in ("checkpoint.pt", "config.json", "results.json"))
    # The run folder is rank 0's: it alone reads it (the others get what it read) and writes it.
    started, state, recorded, has_results = distributed.run_on_main(lambda: open_run(cfg, run_dir), (ConfigError,))
    torch.manual_seed(cfg.seed)

    # Environments: the training batch steps all episodes at once (this process's rows of it); the test
    # split, and the validation split held out of training (--val-images), are fixed sets (this process's
    # share of each).
    def build_envs():
        with announcing_data(show=ctx.is_main) as loaded:
            built = make_env(cfg, "train", rows), make_test_env(cfg, ctx), make_val_env(cfg, ctx)
            return *built, record_data(loaded)

    env, test_env, val_env, data = distributed.run_everywhere(build_envs, (ConfigError,))
    check_same_data(data)  # under torchrun: a machine with other data would train another run
    for line in describe_data(data) if ctx.is_main else ():
        print(line, file=sys.stderr)
    recipe = recipe_in_use(cfg)  # the recipe's values the command line left in place
    if recipe:
        flags = " ".join(command_flags(recipe))
        print(f"recipe {cfg.recipe} (--agent {cfg.agent} --env {cfg.env}; --recipe none: without it): {flags}",
              file=sys.stderr)
    if cfg.train_images % cfg.batch_size and ctx.is_main:  # runs compare at equal data: say what this one sees
        batches = -(-cfg.train_images // cfg.batch_size)
        print(f"note: --train-images {cfg.train_images:,} is not a whole number of --batch-size {cfg.batch_size} "
              f"batches: the run trains {batches * cfg.batch_size:,} images ({batches:,} x {cfg.batch_size})",
              file=sys.stderr)
    check_resume(cfg, state, recorded, data)  # --resume: the same data and flags as the run's
    if has_results:  # finished: its results stand, with or without the checkpoint
        if ctx.is_main:
            print(f"{run_dir} is finished (results.json); nothing to do", file=sys.stderr)
        return
    check_processes(run_dir, state, ctx.world_size)

    model = make_agent(cfg, env)
    distributed.broadcast_parameters(model)  # every rank starts from rank 0's weights
    distributed.seed_sampling(cfg.seed)  # ... and samples its own actions (rank r > 0: seed + r)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    trainer = make_trainer(cfg, model, optimizer, sync_gradients=average_gradients)  # --algo: reinforce, a2c or ppo
    obs, _ = env.reset(seed=cfg.seed + first_row)  # row i plays what row first_row + i of one process would
    elapsed = 0.0
    if state is not None:
        obs, elapsed = restore_checkpoint(checkpoint_path, state, cfg, model, optimizer, env, ctx)
        note = how_run_differs(state, torch.get_num_threads(), cfg.device)
        if note and ctx.is_main:
            print(note, file=sys.stderr)
    elif ctx.is_main:
        try:
            write_json(config_path, {**flat_config(cfg), "data": data, "world_size": ctx.world_size})
        except OSError as error:
            raise ConfigError(f"cannot write {config_path} ({error.strerror})") from None
    # A resumed run drops the events its killed predecessor logged after the point it resumes from; those logged at
    # that point (its evaluation) came before the checkpoint and stay.
    writer = SummaryWriter(run_dir, purge_step=cfg.images_seen + 1 if started else None) if ctx.is_main else NullWriter()
    if state is None:
        table = "\n".join(f"|{k}|{v}{f' (recipe {cfg.recipe})' if k in recipe else ''}|"
                          for k, v in flat_config(cfg).items())
        writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}", 0)
    saved_at = cfg.images_seen if state is not None else None

    def checkpoint() -> None:
        nonlocal saved_at
        check_parameters(model, f"at {cfg.images_seen} images")  # a bad model is never saved
        # The whole batch's env state (the ranks' rows in order: one process's layout) and every rank's stream.
        try:
            env_state = distributed.gather_rows(env.state_dict())
            rngs = distributed.all_gather_object(torch.get_rng_state())
            # On CUDA the sampling draws from the device's generator: a resume must continue it too.
            cuda_rngs = (distributed.all_gather_object(torch.cuda.get_rng_state(ctx.device))
                         if ctx.device.type == "cuda" else None)
        except PeerFailure as error:
            raise stopped(f"checkpoint at {cfg.images_seen} images: {error}") from error
        if ctx.is_main:
            try:
                save_checkpoint(checkpoint_path, checkpoint_payload(cfg, data, model, optimizer, env_state, rngs,
                                                                    ctx.world_size, elapsed, cuda_rngs))
            except OSError as error:  # a full disk, a folder made read-only: the last checkpoint is intact
                raise stopped(f"checkpoint at {cfg.images_seen} images: cannot write {checkpoint_path} "
                              f"({error.strerror or error})") from None
        saved_at = cfg.images_seen
        writer.flush()  # the events up to the checkpoint: a resumed run keeps them (and drops the later ones)

    def log_evaluation(step: int, mc_samples: int) -> tuple[dict, dict]:
        """The metrics on the test split and on the validation split (empty without one), logged under
        ``eval/`` and ``val/``."""
        scored = []
        for split_env, tag in ((test_env, "eval"), (val_env, "val")):
            if split_env is None:
                scored.append({})
                continue
            try:
                metrics = evaluate_split(cfg, model, split_env, mc_samples=mc_samples, ctx=ctx)
            except ValueError as error:  # non-finite actions or logits: the last update diverged
                if step == 0:
                    raise  # the untrained model: a bug, not a divergence
                kept = f"{checkpoint_path} holds this model" if saved_at == step else None
                raise stopped(f"evaluation at {step} images: {diverged(error)}", kept) from error
            except PeerFailure as error:
                raise stopped(f"evaluation at {step} images: {error}") from error
            for name, value in metrics.items():
                if name != "examples":
                    writer.add_scalar(f"{tag}/{name}", value, step)
            scored.append(metrics)
        test, val = scored
        writer.add_scalar("charts/train_seconds", elapsed, step)  # for accuracy against wall time
        shown = {f"{tag}_accuracy": f"{metrics['accuracy']:.3f}" for tag, metrics in (("eval", test), ("val", val))
                 if metrics}
        progress.report(shown, final=step >= cfg.train_images)
        if ctx.is_main and (picture := eval_picture(cfg, model, test_env, 8)) is not None:  # paths, or attention
            writer.add_image(*picture, step, dataformats="HWC")
        return test, val

    def stopped(reason: str, kept: str | None = None) -> TrainingStopped:
        progress.close()
        if kept is None:
            kept = f"the last good checkpoint is {checkpoint_path} ({saved_at} images)" if saved_at is not None \
                else "no checkpoint was written"
        return TrainingStopped(f"{reason}; {kept}; no results.json written")

    # A live bar on a terminal; in a log file one line per evaluation, at most one every 30 s. Closed
    # however the loop ends, so that an error or Ctrl-C is printed on a line of its own.
    # The events are closed (flushed, their writer thread joined) however the loop ends: nothing is left to write
    # while the interpreter shuts down.
    with writer, Progress(cfg.train_images, cfg.images_seen, "img", f"{cfg.agent} {cfg.env}",
                          enabled=ctx.is_main) as progress:
        while cfg.images_seen < cfg.train_images:
            # One update: the agent draws its batch (episodes, or scenes) from the env and returns its losses.
            update = cfg.images_seen // cfg.batch_size + 1
            tick = time.perf_counter()
            if cfg.anneal_lr:  # a function of the images seen, so a resumed run follows the same schedule
                for group in optimizer.param_groups:
                    group["lr"] = cfg.learning_rate * (1.0 - cfg.images_seen / cfg.train_images)
            try:
                logged, obs = trainer.update(env, obs, update, progress=cfg.images_seen / max(cfg.train_images, 1))
            except ValueError as error:  # a diverged model trips a check of the forward pass (torch.distributions')
                if not optimizer.state:
                    raise  # no step taken yet, the untrained model: a bug, not a divergence
                raise stopped(f"update {update}: {diverged(error)}") from None
            except (TrainingStopped, PeerFailure) as error:  # a non-finite loss or gradient (check_update), before the step
                raise stopped(str(error) if isinstance(error, TrainingStopped) else f"update {update}: {error}") from error
            elapsed += time.perf_counter() - tick  # training time only: evaluations and logging excluded
            cfg.images_seen += cfg.batch_size
            progress.update(cfg.batch_size)

            step = cfg.images_seen
            for name, value in logged.items():
                writer.add_scalar(f"train/{name}", value, step)
            writer.add_scalar("charts/images_per_second", step / max(elapsed, 1e-9), step)
            writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], step)

            last = step >= cfg.train_images
            if step % cfg.eval_every < cfg.batch_size and not last:
                log_evaluation(step, 1)
            if step % cfg.checkpoint_every < cfg.batch_size or last:
                checkpoint()
        if saved_at != cfg.images_seen:  # --train-images 0: the untrained model is the run's model
            checkpoint()
        # The final evaluation, after the last checkpoint: seeded and isolated from training's random stream,
        # so a run killed after its last checkpoint is completed by --resume to the same numbers.
        metrics, val_metrics = log_evaluation(cfg.images_seen, cfg.mc_samples)
    if not ctx.is_main:
        return

    results = {
        "agent": cfg.agent, "env": cfg.env, "seed": cfg.seed, "train_images": cfg.images_seen,
        "wall_seconds": round(elapsed, 1), "device": cfg.device, "world_size": ctx.world_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "flops_per_image": flops_per_image(model, env),
        **{f"test_{k}": v for k, v in metrics.items()},
        **({"val_images": cfg.val_images, **{f"val_{k}": v for k, v in val_metrics.items()}} if val_metrics else {}),
        "data": data,
    }
    try:
        write_json(results_path, results)  # atomically: results.json is whole or absent
    except OSError as error:
        raise TrainingStopped(f"cannot write {results_path} ({error.strerror or error}); {checkpoint_path} holds the "
                              f"trained model: make room and run the same command with --resume") from None
    print(json.dumps(results))
    print(f"TensorBoard: tensorboard --logdir {run_dir}")


if __name__ == "__main__":
    run_script(main, interrupted_note="the run folder keeps its last checkpoint; continue with the same command and --resume")
