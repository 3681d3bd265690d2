"""Train an attention agent on a glimpse task: hard attention (REINFORCE), its soft counterparts, or a baseline.

Agents (``--agent``), by the project's taxonomy:

* hard, location-wise: ``ram`` (Mnih et al. 2014); hard, item-wise: ``item-hard``;
* soft, item-wise: ``item-soft``; soft, location-wise: ``spatial-soft``, ``stn`` (Jaderberg et al. 2015);
* RA-CNN (Fu et al. 2017), zooming in over 3 scales: ``racnn-soft`` (boxcar mask, ranking loss),
  ``racnn-hard`` (REINFORCE);
* full-image baselines: ``fc``, ``conv``.

    python scripts/train.py --agent ram --env mnist --seed 1 --train-images 60000 --run-dir runs/ram-mnist

Writes to ``--run-dir``: TensorBoard events (scalars under ``train/``, ``eval/``, ``charts/``, the config as
a table, pictures of glimpse paths at each evaluation), ``config.json``, ``checkpoint.pt`` (written
atomically) and, at the end, ``results.json``. ``--resume`` continues a killed run from its last checkpoint
to the same final result as an uninterrupted run (same seed, CPU). ``--train-images`` is the budget in
images (episodes for Catch), so runs compare at equal data.

Every flag, with its meaning: ``--help`` (the run's flags, then those of ``--agent``'s own options).
``--plugins MODULE ...`` imports modules first, which may register agents (``agents.register_agent``) and
tasks (``envs.register_task``); the run records them, so ``evaluate.py`` and ``visualize.py`` find them
again. The library behind this script is :mod:`agents.training`.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.flops import flops_per_image
from agents.training import (
    ConfigError,
    evaluate,
    eval_picture,
    flat_config,
    make_agent,
    make_env,
    make_test_env,
    parse_train_config,
    save_checkpoint,
)


def main() -> None:
    cfg = parse_train_config(description=__doc__)
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)
    run_dir = Path(cfg.run_dir)
    checkpoint_path = run_dir / "checkpoint.pt"
    if checkpoint_path.exists() and not cfg.resume:
        raise SystemExit(f"{run_dir} already holds a run; pass --resume to continue it or choose a new --run-dir")
    if cfg.resume and not checkpoint_path.exists():
        raise SystemExit(f"--resume: no checkpoint.pt in {run_dir}")
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    # Environments: the training batch steps all episodes at once; the test split is a fixed set.
    with warnings.catch_warnings(record=True) as data_notes:
        warnings.simplefilter("always")
        env = make_env(cfg, "train", cfg.batch_size)
        test_env = make_test_env(cfg)
    for note in {str(w.message) for w in data_notes}:
        print(f"data: {note}", file=sys.stderr)
    model = make_agent(cfg, env)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    obs, _ = env.reset(seed=cfg.seed)
    elapsed = 0.0

    if cfg.resume:
        state = torch.load(checkpoint_path, weights_only=False)
        if any(state["config"].get(k, MISSING) != v for k, v in saved_config(cfg).items()):
            raise SystemExit("--resume: the command's configuration differs from the checkpoint's; pass the same flags")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        obs = env.load_state_dict(state["env"])
        torch.set_rng_state(state["torch_rng"])
        cfg.images_seen, elapsed = state["images_seen"], state["elapsed"]
    writer = SummaryWriter(run_dir, purge_step=cfg.images_seen if cfg.resume else None)
    if not cfg.resume:
        table = "\n".join(f"|{k}|{v}|" for k, v in flat_config(cfg).items())
        writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}", 0)
        (run_dir / "config.json").write_text(json.dumps(flat_config(cfg), indent=1))

    def checkpoint() -> None:
        save_checkpoint(checkpoint_path, {
            "config": saved_config(cfg),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "env": env.state_dict(),
            "torch_rng": torch.get_rng_state(), "images_seen": cfg.images_seen, "elapsed": elapsed,
        })

    progress = tqdm(total=cfg.train_images, initial=cfg.images_seen, unit="img", desc=f"{cfg.agent} {cfg.env}")
    while cfg.images_seen < cfg.train_images:
        # One update: the agent draws its batch (episodes, or scenes) from the env and returns its losses.
        tick = time.perf_counter()
        if cfg.anneal_lr:  # a function of the images seen, so a resumed run follows the same schedule
            for group in optimizer.param_groups:
                group["lr"] = cfg.learning_rate * (1.0 - cfg.images_seen / cfg.train_images)
        losses, obs = model.train_losses(env, obs)
        optimizer.zero_grad(set_to_none=True)  # parameters a loss does not reach get no update at all
        losses["loss"].backward()
        optimizer.step()
        elapsed += time.perf_counter() - tick  # training time only: evaluations and logging excluded
        cfg.images_seen += cfg.batch_size
        progress.update(cfg.batch_size)

        step = cfg.images_seen
        for name, value in losses.items():
            if name != "loss":
                writer.add_scalar(f"train/{name}", float(value), step)
        writer.add_scalar("charts/images_per_second", step / max(elapsed, 1e-9), step)
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], step)

        last = step >= cfg.train_images
        if step % cfg.eval_every < cfg.batch_size or last:
            metrics = evaluate(cfg, model, test_env, mc_samples=cfg.mc_samples if last else 1)
            for name, value in metrics.items():
                if name != "examples":
                    writer.add_scalar(f"eval/{name}", value, step)
            writer.add_scalar("charts/train_seconds", elapsed, step)  # for accuracy against wall time
            progress.set_postfix(eval_accuracy=f"{metrics['accuracy']:.3f}")
            if (picture := eval_picture(cfg, model, test_env, 8)) is not None:  # glimpse paths, or attention
                writer.add_image(*picture, step, dataformats="HWC")
        if step % cfg.checkpoint_every < cfg.batch_size or last:
            checkpoint()
    progress.close()

    results = {
        "agent": cfg.agent, "env": cfg.env, "seed": cfg.seed, "train_images": cfg.images_seen,
        "wall_seconds": round(elapsed, 1), "device": cfg.device,
        "parameters": sum(p.numel() for p in model.parameters()),
        "flops_per_image": flops_per_image(model, env),
        **{f"test_{k}": v for k, v in metrics.items()},
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    writer.close()
    print(json.dumps(results))
    print(f"TensorBoard: tensorboard --logdir {run_dir}")


MISSING = object()


def saved_config(cfg) -> dict:
    """What a checkpoint records of the run's configuration: every flag but --resume."""
    return {k: v for k, v in flat_config(cfg).items() if k != "resume"}


if __name__ == "__main__":
    try:
        main()
    except ConfigError as error:
        raise SystemExit(str(error)) from None
