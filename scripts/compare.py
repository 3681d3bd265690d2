"""Compare attention agents fairly: same env, data, seeds and training budget, one TensorBoard run each.

    python scripts/compare.py --env cluttered-60 --agents ram,item-hard,item-soft,spatial-soft,stn,conv \\
        --seeds 3 --train-images 100000 --out runs/compare-cluttered-60

Every (agent, seed) is one ``scripts/train.py`` run in ``OUT/<env>__<agent>__<seed>`` with the same flags,
so the runs log identical tags (``eval/accuracy``, ``train/loss_classifier``, ...) and TensorBoard overlays
them with ``tensorboard --logdir OUT``. Runs share nothing, so ``--jobs J`` runs J at once (each with
``cores / J`` torch threads), as separate processes: compare.py itself is not launched with ``torchrun``
(to train each run data-parallel is to give it the machine: see the README). A run whose ``results.json``
exists is reused once ``train.py --resume`` has checked that this command made it (the same flags, recipe and
data; else one line naming the difference); a killed one is resumed (with the same ``--jobs`` on the same
machine, so with as many torch threads, to the numbers an uninterrupted run reaches; with other threads
``train.py`` says so).

Then, in ``OUT``:

* ``mean-<agent>/``: one aggregate TensorBoard run per agent, its test accuracy against training images,
  mean / min / max over seeds (tags ``compare/accuracy_{mean,min,max}``, the same for every agent, so the
  Scalars tab overlays the agents, one colour and one name each; and ``compare/<family>/accuracy_…``);
  the *Custom Scalars* tab shows hard vs soft over them: the means of all agents, of the hard ones, of
  the soft ones, and the same with min-max bands (the seeds' runs have none of these tags);
* ``comparison.png``: test accuracy against training images and against training wall time, mean and
  min-max over seeds;
* ``comparison.md``: final test error (mean +- std over seeds), FLOPs per image, parameters, wall time.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from dataclasses import dataclass, field
from typing import Annotated, Literal
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
import tyro
from torch.utils.tensorboard import SummaryWriter

from agents import AGENTS, distributed
from agents.training import (ConfigError, cli, command_flags, import_plugins, output_folder, run_parallel, run_script,
                             threads_per_job)
from agents.config import TaskOptions
from agents.ranges import Range
from agents.trainers import OPTIONS_USED, Algo


def family(agent: str) -> str:
    """The agent's place in the taxonomy (``AGENTS[agent].family``): hard, soft or baseline."""
    return AGENTS[agent].family


def title(agent: str) -> str:
    """The agent's name in tables and legends."""
    return AGENTS[agent].title or agent


@dataclass
class CompareTask(TaskOptions):
    """The task, its data, and one retina and glimpse count for every agent: by default the task's budget."""

    env: str = "cluttered-60"
    """the task, a name in envs.TASKS (train.py's --env)"""
    glimpse_size: Annotated[int | None, Range(1)] = None
    """retina side in pixels (none: the task's budget, agents.recipes.TASK_BUDGETS, through each agent's recipe)"""
    scales: Annotated[int | None, Range(1)] = None
    """retina scales (none: the task's budget)"""
    glimpses: Annotated[int | None, Range(1)] = None
    """glimpses per image (none: the task's budget)"""


@dataclass
class Config:
    task: Annotated[CompareTask, tyro.conf.OmitArgPrefixes] = field(default_factory=CompareTask)
    """the task every agent trains on, its data and the same retina and glimpses for all (train.py's flags)"""
    agents: str = "ram,item-hard,item-soft,spatial-soft,stn,conv"
    """comma-separated train.py agents"""
    seeds: Annotated[int, Range(1)] = 3
    """seeds 1..S for every agent"""
    train_images: Annotated[int, Range(0)] = 100_000
    """training budget of every run, in images"""
    out: str = "runs/compare"
    """output folder: one run folder per (agent, seed), one mean-<agent> run per agent, the plot and the table"""
    jobs: Annotated[int, Range(1)] = 1
    """runs at once (separate processes)"""
    batch_size: Annotated[int | None, Range(1)] = None
    """images per update (none: each agent's recipe for the task, else train.py's default, 128)"""
    learning_rate: Annotated[float | None, Range(0, open_low=True)] = None
    """Adam's step size (none: each agent's recipe for the task, else train.py's default, 1e-3)"""
    eval_every: Annotated[int, Range(1)] = 10_000
    """evaluate every this many training images"""
    eval_images: Annotated[int, Range(1)] = 1_000
    """test images per evaluation"""
    val_images: Annotated[int, Range(0)] = 0
    """training items every run holds out as its validation split (train.py's --val-images: the same items for
    every agent and seed), evaluated whole at every evaluation; 0: none"""
    mc_samples: Annotated[int, Range(1)] = 10
    """hard agents' final Monte-Carlo evaluation"""
    device: str = "cpu"
    """torch device of every run"""
    racnn_input_size: Annotated[int | None, Range(1)] = None
    """RA-CNN runs: side each scale's CNN sees (none: the canvas's)"""
    plugins: str = ""
    """comma-separated modules for train.py to import first (they may register agents and tasks)"""
    hard_algo: Algo | None = None
    """train.py's --algo for the hard agents (the others learn by backpropagation); None: each agent's recipe
    for the task, else train.py's default, reinforce"""
    target_kl: Annotated[float | None, Range(0, open_low=True)] = None
    """train.py's --target-kl for the hard agents (PPO's KL guard); None: each agent's recipe's"""
    recipe: Literal["default", "none"] = "default"
    """train.py's --recipe for every run: default, each agent's recipe for the task (agents.recipes; the flags
    above win); none, the plain defaults"""


def flags(cfg: Config) -> dict:
    """``cfg`` flat, one key per flag (the task group's fields among the others)."""
    return {**dataclasses.asdict(cfg.task), **{k: v for k, v in vars(cfg).items() if k != "task"}}


def run_name(cfg: Config, agent: str, seed: int) -> str:
    return f"{cfg.task.env}__{agent}__{seed}"


def train_command(cfg: Config, agent: str, seed: int, threads: int) -> list[str]:
    """The one train.py command line of (agent, seed): every other flag is the same for all runs; an
    agent's own option (``--racnn-input-size``) goes only to the agents whose options have it."""
    shared = dict(**dataclasses.asdict(cfg.task), recipe=cfg.recipe, train_images=cfg.train_images,
                  batch_size=cfg.batch_size,
                  learning_rate=cfg.learning_rate, eval_every=cfg.eval_every, eval_images=cfg.eval_images,
                  val_images=cfg.val_images or None,
                  mc_samples=cfg.mc_samples, device=cfg.device, torch_threads=threads)
    own = {f.name for f in dataclasses.fields(AGENTS[agent].options)}
    if "racnn_input_size" in own:
        shared["racnn_input_size"] = cfg.racnn_input_size
    if family(agent) == "hard":  # what is not given here is the agent's recipe's (train.py --recipe default)
        shared["algo"] = cfg.hard_algo
        shared["target_kl"] = cfg.target_kl
    args = [sys.executable, str(Path(__file__).with_name("train.py")), "--agent", agent, "--seed", str(seed),
            "--run-dir", str(Path(cfg.out) / run_name(cfg, agent, seed))]
    args += command_flags({name: value for name, value in shared.items() if value is not None})
    if plugins := [p for p in cfg.plugins.split(",") if p]:
        args += ["--plugins", *plugins]
    return args


def run_all(cfg: Config, agents: list[str]) -> None:
    """Train every (agent, seed) not yet done, ``cfg.jobs`` processes at a time; stop on the first failure."""
    threads = threads_per_job(cfg.jobs)
    run_parallel([(Path(cfg.out) / run_name(cfg, a, s), train_command(cfg, a, s, threads))
                  for a in agents for s in range(1, cfg.seeds + 1)], cfg.jobs)


def read_curves(run_dir: Path) -> dict[str, np.ndarray]:
    """``images``, ``accuracy`` and ``seconds`` (training time) at each evaluation of one run."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    accuracy = {e.step: e.value for e in events.Scalars("eval/accuracy")}
    seconds = {e.step: e.value for e in events.Scalars("charts/train_seconds")}
    steps = sorted(accuracy)
    return {"images": np.array(steps), "accuracy": np.array([accuracy[s] for s in steps]),
            "seconds": np.array([seconds.get(s, np.nan) for s in steps])}


def summarize(cfg: Config, agents: list[str]) -> list[dict]:
    """Per agent: the seeds' curves and results."""
    rows = []
    for agent in agents:
        dirs = [Path(cfg.out) / run_name(cfg, agent, s) for s in range(1, cfg.seeds + 1)]
        results = [json.loads((d / "results.json").read_text()) for d in dirs]
        curves = [read_curves(d) for d in dirs]
        # The evaluations every seed has, matched by step: a seed may lack one (a run resumed before train.py kept
        # the evaluation at its checkpoint; one stopped early), and a mean over misaligned steps would be wrong.
        images = np.array(sorted(set.intersection(*(set(c["images"].tolist()) for c in curves))), dtype=np.int64)
        at = [np.searchsorted(c["images"], images) for c in curves]
        rows.append({
            "agent": agent, "family": family(agent), "results": results, "images": images,
            "accuracy": np.stack([c["accuracy"][i] for c, i in zip(curves, at)]),  # (seeds, evaluations)
            "seconds": np.stack([c["seconds"][i] for c, i in zip(curves, at)]),
        })
    return rows


MEAN_PREFIX = "mean-"
"""The aggregate run of agent A is ``OUT/mean-A``: its mean over seeds, a run of its own."""

SUMMARIES = ("mean", "min", "max")
"""Per evaluation, over the seeds' test accuracies."""

FAMILY_CHARTS = {"hard": "hard attention", "soft": "soft attention", "baseline": "baselines"}


def mean_run_name(agent: str) -> str:
    return f"{MEAN_PREFIX}{agent}"


def mean_tags(family: str | None = None) -> dict[str, str]:
    """Tags of an aggregate run: ``compare/accuracy_<summary>`` (every agent's run), or with ``family``
    ``compare/<family>/accuracy_<summary>`` (only the runs of agents of that family: hard, soft, baseline)."""
    prefix = "compare/" if family is None else f"compare/{family}/"
    return {s: f"{prefix}accuracy_{s}" for s in SUMMARIES}


def tensorboard_layout(families: list[str]) -> dict[str, dict[str, list]]:
    """The Custom Scalars layout over the aggregate runs, for agents of ``families``.

    A chart selects tags, by regex (Multiline) or by name (Margin), in every run; TensorBoard draws one
    line per (run, tag) and colours it by run. The aggregate runs share their tags, so each chart is one
    line (and band) per agent, in the agent's colour; the seeds' runs have none of these tags."""
    every = mean_tags()
    means = {"all agents": ["Multiline", [f"^{every['mean']}$"]]}
    bands = {"all agents": ["Margin", [every["mean"], every["min"], every["max"]]]}
    for k in families:
        tags = mean_tags(k)
        means[FAMILY_CHARTS[k]] = ["Multiline", [f"^{tags['mean']}$"]]
        bands[FAMILY_CHARTS[k]] = ["Margin", [tags["mean"], tags["min"], tags["max"]]]
    return {"hard vs soft: test accuracy, mean over seeds": means,
            "hard vs soft: test accuracy, mean and min-max over seeds": bands}


def write_tensorboard_layout(cfg: Config, rows: list[dict]) -> None:
    """One aggregate run per agent, ``OUT/mean-<agent>``: the seeds' mean, min and max test accuracy at
    each evaluation, under the same tags for every agent, and the Custom Scalars layout of hard vs soft.

    TensorBoard colours and names lines by run, so each agent's mean is one line of its own colour both in
    the Scalars tab (tags ``compare/accuracy_{mean,min,max}``; also ``compare/<family>/accuracy_…``, shared
    by the agents of one family) and in the Custom Scalars tab. Every aggregate run holds the same layout
    (TensorBoard merges identical charts into one). All ``OUT/mean-*`` runs are rewritten whole on every call,
    so a re-run leaves one summary, not two; nothing else in ``OUT`` is touched."""
    out = Path(cfg.out)
    for old in out.glob(f"{MEAN_PREFIX}*/events.out.tfevents.*"):
        old.unlink()
    families = [k for k in FAMILY_CHARTS if any(row["family"] == k for row in rows)]
    layout = tensorboard_layout(families)
    for row in rows:
        writer = SummaryWriter(str(out / mean_run_name(row["agent"])))
        for i, images in enumerate(row["images"]):
            acc = row["accuracy"][:, i]  # (seeds,)
            values = {"mean": acc.mean(), "min": acc.min(), "max": acc.max()}
            for tags in (mean_tags(), mean_tags(row["family"])):
                for summary, tag in tags.items():
                    writer.add_scalar(tag, float(values[summary]), int(images))
        writer.add_custom_scalars(layout)
        writer.close()


def write_plot(cfg: Config, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = {"hard": "-", "soft": "--", "baseline": ":"}
    for row in rows:
        label = f"{title(row['agent'])} ({row['family']})"
        mean, low, high = row["accuracy"].mean(0), row["accuracy"].min(0), row["accuracy"].max(0)
        line = axes[0].plot(row["images"], mean, styles.get(row["family"], "-"), label=label)[0]
        axes[0].fill_between(row["images"], low, high, color=line.get_color(), alpha=0.2)
        seconds = np.nanmean(row["seconds"], axis=0)
        axes[1].plot(seconds, mean, styles.get(row["family"], "-"), color=line.get_color(), label=label)
        axes[1].fill_between(seconds, low, high, color=line.get_color(), alpha=0.2)
    for ax, xlabel in zip(axes, ("training images", "training wall time (s, mean over seeds)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"--env {cfg.task.env}, --dataset {cfg.task.dataset}: mean and min-max over {cfg.seeds} seed(s), {cfg.train_images:,} images each; "
                 f"hard agents: --algo {cfg.hard_algo or 'of their recipes'}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_table(cfg: Config, rows: list[dict], path: Path) -> None:
    lines = [
        f"# {cfg.task.env} ({cfg.task.dataset}): {cfg.seeds} seed(s), {cfg.train_images:,} training images per run",
        "",
        "| agent | kind | test error % (mean +- std) | seeds' errors % | MC error % (K samples) | "
        + ("val error % (mean +- std) | " if cfg.val_images else "") + "FLOPs/image | parameters | train s (mean) |",
        "|---|---|---|---|---|---|---|---|" + ("---|" if cfg.val_images else ""),
    ]
    for row in rows:
        errors = np.array([100 * (1 - r["test_accuracy"]) for r in row["results"]])
        first = row["results"][0]
        wall = np.mean([r["wall_seconds"] for r in row["results"]])
        mc = [100 * (1 - r["test_accuracy_mc"]) for r in row["results"] if "test_accuracy_mc" in r]
        mc_text = f"{np.mean(mc):.2f} +- {np.std(mc):.2f}" if len(mc) == len(errors) else "–"
        val = np.array([100 * (1 - r["val_accuracy"]) for r in row["results"]]) if cfg.val_images else None
        val_text = f"{val.mean():.2f} +- {val.std():.2f} | " if val is not None else ""
        lines.append(f"| {title(row['agent'])} | {row['family']} | {errors.mean():.2f} +- {errors.std():.2f} | "
                     f"{', '.join(f'{e:.1f}' for e in errors)} | {mc_text} | {val_text}"
                     f"{first['flops_per_image'] / 1e6:.2f} M | "
                     f"{first['parameters'] / 1e3:.0f} k | {wall:.0f} |")
    scaled = [row for row in rows if "test_accuracy_scale1" in row["results"][0]]
    if scaled:  # RA-CNN: does each scale improve on the last?
        count = max(int(k.removeprefix("test_accuracy_scale")) for k in scaled[0]["results"][0]
                    if k.startswith("test_accuracy_scale"))
        lines += ["", "| agent | " + " | ".join(f"scale {s} acc." for s in range(1, count + 1)) + " | fused acc. |",
                  "|---|" + "---|" * (count + 1)]
        for row in scaled:
            cells = [np.mean([r[f"test_accuracy_scale{s}"] for r in row["results"]]) for s in range(1, count + 1)]
            fused = np.mean([r["test_accuracy"] for r in row["results"]])
            lines.append(f"| {title(row['agent'])} | " + " | ".join(f"{c:.3f}" for c in cells)
                         + f" | {fused:.3f} |")
    lines += ["", "Test error on the fixed test split, hard agents with their mean locations (MC: the classifier's "
              f"softmax averaged over K = {cfg.mc_samples} sampled rollouts; std is over seeds). FLOPs count matmuls "
              "and convolutions of one image's inference (agents/flops.py). "
              + (f"Val: the {cfg.val_images:,} training items every run held out (--val-images), whole, mean locations: "
                 "the split to choose on; the test split is the one to report. " if cfg.val_images else "")
              + "Command: `" + shlex.join(["python", "scripts/compare.py", *command_flags(
                  {k: v for k, v in flags(cfg).items() if v not in (None, "")})]) + "`."]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    cfg = cli(Config, description=__doc__.split("\n\n")[0])
    if distributed.current().is_distributed:  # every rank would train every run
        raise ConfigError("compare.py runs its independent runs as separate processes (--jobs); launch it with "
                          "python, not torchrun")
    import_plugins([p for p in cfg.plugins.split(",") if p])
    agents = [a.strip() for a in cfg.agents.split(",") if a.strip()]
    unknown = [a for a in agents if a not in AGENTS]
    if not agents or unknown:
        raise ConfigError(f"--agents must list train.py agents ({', '.join(AGENTS)}); got unknown {unknown or 'none'}")
    if twice := sorted({a for a in agents if agents.count(a) > 1}):  # one run folder per (agent, seed)
        raise ConfigError(f"--agents lists {', '.join(twice)} more than once")
    if cfg.seeds < 1 or cfg.jobs < 1:
        raise ConfigError("--seeds and --jobs must be >= 1")
    if cfg.target_kl is not None and cfg.hard_algo is not None and "target_kl" not in OPTIONS_USED[cfg.hard_algo]:
        raise ConfigError(f"--target-kl {cfg.target_kl} is PPO's KL guard; --hard-algo {cfg.hard_algo} has none")
    out = Path(cfg.out)
    if any((out / name).exists() for name in ("config.json", "checkpoint.pt", "results.json")):
        raise ConfigError(f"--out {out} is a train.py run folder; compare.py makes one run folder per agent and seed "
                          f"inside its own --out: choose another")
    output_folder(out, "--out")
    run_all(cfg, agents)
    rows = summarize(cfg, agents)
    write_tensorboard_layout(cfg, rows)
    write_plot(cfg, rows, out / "comparison.png")
    write_table(cfg, rows, out / "comparison.md")
    print((out / "comparison.md").read_text())
    print(f"TensorBoard: tensorboard --logdir {out}")


if __name__ == "__main__":
    run_script(main)
