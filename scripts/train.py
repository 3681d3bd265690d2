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
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import parse_config  # noqa: E402

from agents import baselines, itemwise, racnn, ram, spatial, stn  # noqa: E402
from agents.flops import flops_per_image  # noqa: E402
from envs import ENV_IDS, PRESETS, STILL_TASKS, GlimpseVectorEnv  # noqa: E402
from envs.glimpse_env import render_attention, render_path  # noqa: E402

@dataclass
class Config:
    agent: Literal["ram", "item-hard", "item-soft", "spatial-soft", "stn", "racnn-soft", "racnn-hard", "fc",
                   "conv"] = "ram"
    """the model: hard attention (ram, item-hard, racnn-hard), soft attention (item-soft, spatial-soft, stn,
    racnn-soft) or a full-image baseline"""
    env: Literal["mnist", "translated-60", "cluttered-60", "cluttered-100", "small-100", "folder", "moving-mnist",
                 "catch"] = "mnist"
    """the task: the RAM paper's settings, small-100 (14 px digits on a 100x100 canvas), or folder (--data-dir)"""
    seed: int = 1
    """seed of the data order, the initial weights and the policy's samples"""
    train_images: int = 60_000
    """training budget in images (episodes for Catch)"""
    run_dir: str = "runs/train"
    """where events, config, checkpoints and results go"""
    resume: bool = False
    """continue the run in --run-dir from its last checkpoint"""
    glimpses: int = 6
    """glimpses per image (classification tasks; video and Catch glimpse once per frame); the soft
    recurrent agents (item-soft, spatial-soft, a recurrent stn) attend this many times"""
    stn_steps: int = 1
    """stn: transforms per image (1: the feed-forward ST-CNN; T > 1: recurrent, T glimpses like RAM)"""
    glimpse_size: int = 8
    """retina side in pixels"""
    scales: int = 1
    """retina scales; scale k covers glimpse_size * 2**k pixels"""
    std: float = 0.17
    """std of the Gaussian location policy (pre-tanh), fixed as in the paper"""
    core: Literal["rnn", "lstm"] = "rnn"
    """RAM's core network"""
    location: Literal["learned", "center"] = "learned"
    """ram: where to look -- learned (RAM), or every glimpse at the centre (the no-attention ablation)"""
    entropy_coef: float = 0.0
    """entropy bonus of the hard agents' policies (0: none)"""
    reinforce_into_core: bool = False
    """ram: let the location REINFORCE and the baseline regression train the core and glimpse networks too,
    as in the paper (default: they read a detached state, as popular reimplementations do)"""
    expected_context_prob: float = 0.0
    """item-hard: chance per minibatch of training on the expected context instead of the sample (Show, Attend and Tell: 0.5)"""
    doubly_stochastic: float = 0.0
    """item-soft: weight of Show, Attend and Tell's doubly stochastic attention regulariser (0: off)"""
    stn_transform: Literal["affine", "attention"] = "attention"
    """stn: full affine theta, or the attention form [[s, 0, tx], [0, s, ty]]"""
    stn_size: int = 28
    """stn: side of each transformer output in pixels (one step: what the classifier CNN sees)"""
    racnn_input_size: int | None = None
    """racnn-*: side of what each scale's CNN sees (none: the canvas's own; smaller is much cheaper)"""
    learning_rate: float = 1e-3
    """Adam's step size (Catch: start from 3e-4 with --entropy-coef 0.01; at 1e-3 its paddle policy collapses)"""
    anneal_lr: bool = False
    """decay the step size linearly from --learning-rate to 0 over --train-images"""
    batch_size: int = 128
    """images (episodes) per update"""
    dataset: Literal["mnist", "fashion-mnist"] = "mnist"
    """which digits/items (see envs.data for the sources)"""
    data_dir: str | None = None
    """folder with IDX files (none: $GLIMPSE_DATA_DIR, then the offline default); for --env folder, the
    root of the class folders of pictures"""
    device: str = "cpu"
    """torch device"""
    eval_every: int = 10_000
    """evaluate on the test split every this many training images"""
    eval_images: int = 1_000
    """test images (episodes) per evaluation"""
    mc_samples: int = 10
    """final evaluation also averages the classifier over this many stochastic rollouts"""
    checkpoint_every: int = 10_000
    """write checkpoint.pt every this many training images"""
    torch_threads: int | None = None
    """CPU threads for torch; none leaves torch's default"""
    images_seen: int = field(default=0, init=False)
    """computed at run time: training images consumed so far"""


AGENT_CLASSES = {
    "ram": ram.RAM, "item-hard": itemwise.HardItemAttention, "item-soft": itemwise.SoftItemAttention,
    "spatial-soft": spatial.SpatialSoftAttention, "stn": stn.SpatialTransformerClassifier,
    "racnn-soft": racnn.RACNN, "racnn-hard": racnn.RACNN,
    "fc": baselines.FCClassifier, "conv": baselines.ConvClassifier,
}


def make_env(cfg: Config, split: str, num_envs: int) -> GlimpseVectorEnv:
    env_id, task = PRESETS[cfg.env]
    task = {"task": ENV_IDS[env_id], **task}
    if task["task"] in STILL_TASKS:
        task["num_glimpses"] = cfg.glimpses
    if task["task"] == "folder":  # the user's pictures: --data-dir is their root
        if cfg.data_dir is None:
            raise SystemExit("--env folder needs --data-dir: a folder of class folders of JPEG/PNG pictures")
        task["data_dir"] = cfg.data_dir
    elif task["task"] != "catch":
        task.update(dataset=cfg.dataset, data_dir=cfg.data_dir)
    action_mode = AGENT_CLASSES[cfg.agent].action_mode or "continuous"  # None: the agent never steps it
    start = "center" if cfg.location == "center" else "random"  # the ablation's first glimpse is central too
    return GlimpseVectorEnv(num_envs, split=split, glimpse_size=cfg.glimpse_size, scales=cfg.scales,
                            action_mode=action_mode, start=start, device=cfg.device, **task)


def make_test_env(cfg: Config) -> GlimpseVectorEnv:
    """The fixed test split, as wide as the largest divisor of ``eval_images`` up to the batch size, so
    that ``eval_images / width`` episodes cover exactly ``eval_images`` test examples, each once."""
    width = max(d for d in range(1, min(cfg.batch_size, cfg.eval_images) + 1) if cfg.eval_images % d == 0)
    return make_env(cfg, "test", width)


def make_agent(cfg: Config, env: GlimpseVectorEnv) -> torch.nn.Module:
    """The ``--agent`` model sized for ``env``; it follows the contract of :mod:`agents.common`."""
    if cfg.agent == "ram":
        model = ram.RAM.from_env(env, core=cfg.core, std=cfg.std, entropy_coef=cfg.entropy_coef, location=cfg.location,
                                 reinforce_into_core=cfg.reinforce_into_core)
    elif cfg.agent == "item-hard":
        model = itemwise.HardItemAttention.from_env(env, core=cfg.core, entropy_coef=cfg.entropy_coef,
                                                    expected_context_prob=cfg.expected_context_prob)
    elif cfg.agent == "item-soft":
        model = itemwise.SoftItemAttention.from_env(env, core=cfg.core, doubly_stochastic=cfg.doubly_stochastic)
    else:
        if ENV_IDS[PRESETS[cfg.env][0]] not in STILL_TASKS:
            raise SystemExit(f"--agent {cfg.agent} classifies still images; it does not apply to --env {cfg.env}")
        shape, num_classes = env.canvas_shape, env.num_decisions
        if cfg.agent == "spatial-soft":
            model = spatial.SpatialSoftAttention(shape, num_classes, steps=cfg.glimpses, core=cfg.core)
        elif cfg.agent == "stn":
            model = stn.SpatialTransformerClassifier(shape, num_classes, transform=cfg.stn_transform,
                                                     size=cfg.stn_size, steps=cfg.stn_steps, core=cfg.core)
        elif cfg.agent in ("racnn-soft", "racnn-hard"):
            model = racnn.RACNN(shape, num_classes, attention=cfg.agent.removeprefix("racnn-"),
                                input_size=cfg.racnn_input_size)
        else:
            model = AGENT_CLASSES[cfg.agent](shape, num_classes)
    return model.to(cfg.device)


def evaluate(cfg: Config, model: torch.nn.Module, test_env: GlimpseVectorEnv, mc_samples: int = 1) -> dict:
    """The agent's metrics on the fixed test split (hard agents: mean locations, and the MC average when
    ``mc_samples > 1``)."""
    episodes = max(1, cfg.eval_images // test_env.num_envs)  # make_test_env makes this exact
    # Seeded and isolated: a checkpoint always gets the same Monte-Carlo score, and training's random
    # stream is the same whether or how often it is evaluated.
    with torch.random.fork_rng(devices=[test_env.device] if test_env.device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        return model.evaluate(test_env, episodes, mc_samples=mc_samples)


def replay_test_paths(model: torch.nn.Module, test_env: GlimpseVectorEnv):
    """The first test episodes played with a hard agent's mean locations: ``(pictures, labels, trajectory)``.

    The pictures and labels are cloned before the rollout: the env reuses its tensors at autoreset.
    """
    with torch.no_grad():
        obs, _ = test_env.reset(seed=0)
        pictures, labels = (t.clone() if t is not None else None for t in test_env.scene())
        trajectory, _ = model.rollout(test_env, obs, deterministic=True)
    return pictures, labels, trajectory


def picture_at(pictures: torch.Tensor, i: int, t: int) -> torch.Tensor:
    """Env ``i``'s picture at step ``t``: its canvas, or frame ``t`` of its video (the last one after the end)."""
    return pictures[i] if pictures.dim() == 4 else pictures[i, min(t, pictures.shape[1] - 1)]


def paths_picture(cfg: Config, pictures: torch.Tensor, trajectory, count: int) -> np.ndarray:
    """``(H, W, 3)`` uint8: the first ``count`` pictures side by side, each with its glimpse path drawn."""
    retina = dict(size=cfg.glimpse_size, scales=cfg.scales, factor=2)
    last = trajectory.locations.shape[1] - 1
    tiles = [render_path(picture_at(pictures, i, last), trajectory.locations[i], **retina, height_px=160)
             for i in range(min(count, len(pictures)))]
    return np.concatenate(tiles, axis=1)


def attention_picture(model: torch.nn.Module, test_env: GlimpseVectorEnv, count: int) -> np.ndarray | None:
    """``(H, W, 3)`` uint8: the first ``count`` test scenes side by side with a soft agent's attention
    (heat maps, sampled regions); None for models that attend everywhere."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        test_env.reset(seed=0)
        pictures = test_env.scene()[0][:count]
        maps = model.attention_maps(model.scene_inputs(test_env)[:count])
    model.train(was_training)
    if not maps:
        return None
    tiles = [render_attention(pictures[i], **{name: value[i] for name, value in maps.items()})
             for i in range(len(pictures))]
    return np.concatenate(tiles, axis=1)


def load_run(run_dir: Path, **overrides) -> tuple[Config, torch.nn.Module, GlimpseVectorEnv]:
    """The config, trained model and test env of a run written by :func:`main` (for evaluate/visualize)."""
    saved = json.loads((run_dir / "config.json").read_text())
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    cfg = Config(**{k: v for k, v in saved.items() if k != "images_seen"})
    for name, value in overrides.items():
        setattr(cfg, name, value)
    cfg.images_seen = state["images_seen"]
    test_env = make_test_env(cfg)
    model = make_agent(cfg, test_env)
    model.load_state_dict(state["model"])
    return cfg, model, test_env


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically: a killed run never leaves a half-written checkpoint behind."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def main() -> None:
    cfg = parse_config(Config, description=__doc__)
    if cfg.location != "learned" and cfg.agent != "ram":
        raise SystemExit(f"--location {cfg.location} is RAM's no-attention ablation; --agent {cfg.agent} has no such option")
    if cfg.reinforce_into_core and cfg.agent != "ram":
        raise SystemExit(f"--reinforce-into-core is a RAM option; --agent {cfg.agent} has no such option")
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
        if state["config"] != {k: v for k, v in asdict(cfg).items() if k not in ("resume", "images_seen")}:
            raise SystemExit("--resume: the command's configuration differs from the checkpoint's; pass the same flags")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        obs = env.load_state_dict(state["env"])
        torch.set_rng_state(state["torch_rng"])
        cfg.images_seen, elapsed = state["images_seen"], state["elapsed"]
    writer = SummaryWriter(run_dir, purge_step=cfg.images_seen if cfg.resume else None)
    if not cfg.resume:
        table = "\n".join(f"|{k}|{v}|" for k, v in asdict(cfg).items())
        writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}", 0)
        (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    def checkpoint() -> None:
        save_checkpoint(checkpoint_path, {
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("resume", "images_seen")},
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
            if hasattr(model, "rollout"):  # hard agents: where they looked
                pictures, _, trajectory = replay_test_paths(model, test_env)
                writer.add_image("eval/glimpse_paths", paths_picture(cfg, pictures, trajectory, 8), step,
                                 dataformats="HWC")
            elif hasattr(model, "attention_maps") and (picture := attention_picture(model, test_env, 8)) is not None:
                writer.add_image("eval/attention", picture, step, dataformats="HWC")  # soft agents
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


if __name__ == "__main__":
    main()
