"""Run the RAM paper's comparison grid with train.py and write its results table (markdown).

    python scripts/ram_table.py --train-images 100000 --out runs/ram-table

Rows: RAM with 4, 6 and 8 glimpses against the full-image FC and conv baselines on 28x28 MNIST,
translated 60x60 and cluttered 60x60, plus RAM on Catch (success rate) and on Moving MNIST (accuracy).
Every run is a ``scripts/train.py`` subprocess in its own folder under ``--out`` (``--jobs J`` runs J at
once, each with ``cores / J`` torch threads); its checkpoint is then evaluated on the whole fixed test
split by ``scripts/evaluate.py`` (mean locations, and the average over 10 stochastic rollouts), and the
table, with each run's command, is written to ``OUT/results.md``. Runs already finished
(``results.json`` present) are reused once ``train.py --resume`` has checked that the same command made them, and
killed ones resumed, so an interrupted table is completed by running the same command again.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from agents.recipes import TASK_BUDGETS
from agents.training import ConfigError, cli, command_flags, output_folder, run_parallel, run_script, threads_per_job
from agents.ranges import MAX_SEED, Range

# Each setting's retina: its task's glimpse budget (agents.recipes.TASK_BUDGETS: the paper's, 8 px x 1 on 28x28,
# 12 px x 3 on 60x60; Catch's 6 px x 3 with the rest of RAM's recipe for it, ram-catch, which train.py applies).
RETINA = {env: command_flags({k: v for k, v in TASK_BUDGETS[env].items() if k != "glimpses"})
          for env in ("mnist", "translated-60", "cluttered-60", "moving-mnist", "catch")}
STILL = ("mnist", "translated-60", "cluttered-60")


@dataclass
class Config:
    train_images: Annotated[int, Range(0)] = 100_000
    """training budget of every run, in images (episodes for Catch)"""
    seed: Annotated[int, Range(0, MAX_SEED)] = 1
    """seed of every run"""
    out: str = "runs/ram-table"
    """folder holding one run folder per row and results.md"""
    dataset: Literal["mnist", "fashion-mnist"] = "mnist"
    """which digits/items (train.py's --dataset)"""
    envs: str = "mnist,translated-60,cluttered-60,moving-mnist,catch"
    """comma-separated settings to run (a table can be built in parts with different budgets)"""
    quick: bool = False
    """only one row per setting (a smoke test of the script)"""
    jobs: Annotated[int, Range(1)] = 1
    """runs trained at once"""
    eval_every: Annotated[int, Range(1)] = 10_000
    """each run's test evaluation interval in images (train.py's --eval-every)"""


def rows(cfg: Config) -> list[tuple[str, list[str]]]:
    envs = cfg.envs.split(",")
    if unknown := [e for e in envs if e not in RETINA]:
        raise ConfigError(f"--envs: unknown setting(s) {', '.join(unknown)}; choose from {', '.join(RETINA)}")
    grid = []
    for env in (e for e in STILL if e in envs):
        for glimpses in ((4,) if cfg.quick else (4, 6, 8)):
            grid.append((f"ram{glimpses}-{env}", ["--agent", "ram", "--env", env, "--recipe", "none", "--glimpses",
                                                  str(glimpses), *RETINA[env]]))  # the paper's RAM: REINFORCE
        for agent in (() if cfg.quick else ("fc", "conv")):
            grid.append((f"{agent}-{env}", ["--agent", agent, "--env", env]))
    for env in (e for e in ("moving-mnist", "catch") if e in envs and not cfg.quick):
        grid.append((f"ram-{env}", ["--agent", "ram", "--env", env, *RETINA[env]]))
    return grid


def main() -> None:
    cfg = cli(Config, description=__doc__.split("\n\n")[0])
    out = output_folder(cfg.out, "--out")
    lines = ["| run | agent | env | glimpses | test accuracy (mean loc.) | MC accuracy (K=10) | test images | train images | wall s | FLOPs/image | params | command |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    threads = threads_per_job(cfg.jobs)
    commands = {name: ["python", "scripts/train.py", *args, "--seed", str(cfg.seed), "--train-images", str(cfg.train_images),
                       "--dataset", cfg.dataset, "--eval-every", str(cfg.eval_every), "--torch-threads", str(threads),
                       "--run-dir", str(out / name)]
                for name, args in rows(cfg)}
    started = time.perf_counter()
    # The scripts beside this one, wherever it is run from (the table shows the commands as run from the repository).
    script = {name: str(Path(__file__).with_name(name)) for name in ("train.py", "evaluate.py")}
    run_parallel([(out / name, [sys.executable, script["train.py"], *command[2:]]) for name, command in commands.items()],
                 cfg.jobs)
    print(f"training: {time.perf_counter() - started:.0f} s", flush=True)
    for name, command in commands.items():
        run_dir, args = out / name, command[2:]
        r = json.loads((run_dir / "results.json").read_text())
        # The table's accuracies: the checkpoint evaluated on the whole fixed test split (evaluate.py).
        evaluated = subprocess.run([sys.executable, script["evaluate.py"], "--run-dir", str(run_dir), "--mc-samples", "10"],
                                   capture_output=True, text=True)
        if evaluated.returncode != 0:  # its own one-line error, not a traceback of this script
            last = next((line for line in reversed(evaluated.stderr.splitlines()) if line.strip()), "no message")
            raise ConfigError(f"{run_dir}: evaluate.py failed (exit {evaluated.returncode}): {last}")
        r.update(json.loads(evaluated.stdout.strip().splitlines()[-1]))
        glimpses = next((args[i + 1] for i, a in enumerate(args) if a == "--glimpses"), "per frame" if "ram" in name else "-")
        mc = f"{r['test_accuracy_mc']:.3f}" if "test_accuracy_mc" in r else "-"
        lines.append(f"| {name} | {r['agent']} | {r['env']} | {glimpses} | {r['test_accuracy']:.3f} | {mc} | "
                     f"{r.get('test_examples', '-')} | {r['train_images']} | {r['wall_seconds']:.0f} | {r['flops_per_image'] / 1e6:.2f} M | "
                     f"{r['parameters'] / 1e3:.0f} k | `{shlex.join(command)}` |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    run_script(main)
