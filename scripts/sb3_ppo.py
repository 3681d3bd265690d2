"""PPO (Stable-Baselines3) on a glimpse environment, logged to TensorBoard.

The batched glimpse env is made for SB3 by ``envs.sb3.to_sb3`` (from the task's id) and read by
``envs.sb3.GlimpseExtractor``. ``--algo recurrent-ppo`` runs sb3-contrib's ``RecurrentPPO`` (an LSTM policy
that remembers earlier glimpses; ``pip install sb3-contrib``). Every ``--eval-every`` steps the policy plays
``--eval-episodes`` test-split episodes with deterministic actions: ``eval/accuracy`` (classification:
fraction of episodes whose final decision is right; chance is 1/10) or ``eval/success`` (Catch).

    python scripts/sb3_ppo.py                                    # MNIST 28x28, a few CPU minutes
    python scripts/sb3_ppo.py --env cluttered-60 --num-glimpses 6 --total-timesteps 2000000
    python scripts/sb3_ppo.py --env catch --algo recurrent-ppo
    python scripts/sb3_ppo.py --env catch --algo recurrent-ppo --glimpse-size 24 --scales 1 --grid 1  # whole screen
    tensorboard --logdir runs

Defaults that differ by task live in one table, ``ENV_DEFAULTS`` (Catch: the paper's 6 px x 3 retina,
per-scale pixel sums, 256 games per rollout and PPO's updates as gentle as our own Catch recipe's); a flag given on the command line wins, and ``--env catch --help`` shows the
values in effect. ``--n-steps`` defaults to whole episodes: the envs play fixed-length episodes in lockstep,
and a rollout that cuts them (16 steps of Catch's 23) holds updates without any reward whose normalised
advantages are value noise (docs/results.md, Catch with Stable-Baselines3).

While it trains, a progress bar counts env steps (stderr) with the latest evaluation in its postfix, and
each evaluation prints one line (the test score, and ``train``: the success rate of the last 100 training
episodes, the env's ``is_success``, in every ``--reward-mode``). Everything of a run lands in
``RUN_DIR/ENV__ALGO__SEED__TIME/``: SB3's TensorBoard scalars (``train/``, ``rollout/``, ``time/``), ours
(``eval/``, ``charts/``), the hyperparameters as a text table, and the final model (``model.zip``, reload with
``PPO.load``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
import tyro
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat, configure
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from agents.progress import Progress
from agents.scripting import in_flag_words
from agents.training import ConfigError, announcing_data, capped_to_test_split, cli, run_script
from envs import TASKS, task_of  # importing envs registers glimpse/...
from envs.glimpse_env import REWARD_MODES
from envs.sb3 import GlimpseExtractor, to_sb3
from envs.zoo import SB3_DEFAULTS, SB3_RECIPES, rollout_steps
from agents.ranges import MAX_SEED, Range

EVAL_SEED = 0  # the same test episodes (canvases and first glimpses) at every evaluation of every run


@dataclass
class Config:
    env: Literal[tuple(TASKS)] = "mnist"  # type: ignore[valid-type]  # the choices are envs.TASKS' names
    """the task, a name in envs.TASKS (folder also needs --data-dir)"""
    algo: Literal["ppo", "recurrent-ppo"] = "ppo"
    """SB3's PPO (memoryless: sees the current glimpse only) or sb3-contrib's RecurrentPPO (LSTM)"""
    seed: Annotated[int, Range(0, MAX_SEED)] = 1
    """seed of the policy, of PPO's sampling and of the training episodes"""
    total_timesteps: Annotated[int, Range(1)] = SB3_DEFAULTS["total_timesteps"]
    """env steps to train for (summed over the parallel envs)"""
    num_envs: Annotated[int, Range(1)] = SB3_DEFAULTS["num_envs"]
    """parallel episodes in the one batched env"""
    glimpse_size: Annotated[int, Range(1)] = SB3_DEFAULTS["glimpse_size"]
    """retina side in pixels; 8 px at 3 scales sees 8, 16 and 32 px windows, all of a 28x28 digit"""
    scales: Annotated[int, Range(1)] = SB3_DEFAULTS["scales"]
    """retina scales; scale k covers glimpse_size * 2**k canvas pixels, averaged down to glimpse_size"""
    num_glimpses: Annotated[int, Range(1)] = SB3_DEFAULTS["num_glimpses"]
    """glimpses per classification episode, the decision made at the last (moving-mnist and catch take
    one per frame and ignore this); 2 = look once where the episode starts, once where the policy chose"""
    action_mode: Literal["continuous", "discrete"] = SB3_DEFAULTS["action_mode"]
    """discrete: glimpse cell on a grid + a categorical decision; continuous: (x, y) + Gaussian decision scores"""
    grid: Annotated[int | None, Range(1)] = None
    """discrete mode: cells per axis of the glimpse grid (none = the env's, ceil(canvas / glimpse_size): 4 for
    Catch's 6 px); 1 = always the centre, no attention (with --glimpse-size 24 --scales 1: Catch's whole screen)"""
    start: Literal["random", "center"] = "random"
    """where each episode's first glimpse is taken"""
    reward_mode: Literal[REWARD_MODES] = "final"  # type: ignore[valid-type]  # the env's modes
    """training reward (the env's reward_mode): final = 1 for a right last decision; log_prob(_gain) = also the
    decision scores' prediction at every step, scored by log p(label) (or its gain); evaluation reads final"""
    scale_gain: Annotated[float, Range(0, open_low=True)] = SB3_DEFAULTS["scale_gain"]
    """GlimpseExtractor multiplies retina scale k by scale_gain**k; 4 (= the retina's factor 2, squared) turns
    each scale's area means into sums, so a 1-px object reads 1 at every scale instead of 1/16 at the third"""
    log_std_init: float = 0.0
    """continuous mode: initial log std of the Gaussian actions (SB3's default 0 is std 1: glimpses spread over
    the whole canvas and clipped to its border; RAM's fixed location std is 0.17, log -1.77)"""
    learning_rate: Annotated[float, Range(0, open_low=True)] = SB3_DEFAULTS["learning_rate"]
    """Adam's step size"""
    n_steps: Annotated[int | None, Range(1)] = None
    """steps per env per rollout; none = whole episodes: the smallest multiple of the episode length >= 16
    (computed at run time: 16 for MNIST's 2 glimpses, 23 for Catch), since the envs play in lockstep"""
    batch_size: Annotated[int, Range(1)] = SB3_DEFAULTS["batch_size"]
    """minibatch size of PPO's update"""
    n_epochs: Annotated[int, Range(1)] = SB3_DEFAULTS["n_epochs"]
    """passes over each rollout (8 learnt faster per CPU second than 4 on MNIST)"""
    gamma: Annotated[float, Range(0, 1)] = SB3_DEFAULTS["gamma"]
    """discount; with --reward-mode final the only reward comes at an episode's last step, so keep it near 1"""
    ent_coef: Annotated[float, Range(0)] = SB3_DEFAULTS["ent_coef"]
    """entropy bonus; keeps the class decision from collapsing before it is learned"""
    features_dim: Annotated[int, Range(1)] = SB3_DEFAULTS["features_dim"]
    """width of GlimpseExtractor's output, read by the policy and value heads"""
    lstm_hidden: Annotated[int, Range(1)] = SB3_DEFAULTS["lstm_hidden"]
    """recurrent-ppo: width of the actor's and the critic's LSTMs"""
    eval_every: Annotated[int, Range(1)] = 20_000
    """evaluate on the test split every this many env steps (and once at the end)"""
    eval_episodes: Annotated[int, Range(1)] = 1000
    """test episodes per evaluation, played at once (the offline MNIST subset has 1,000 test digits)"""
    device: str = "cpu"
    """torch device of the env and the policy (cpu, cuda, cuda:N)"""
    run_dir: str = "runs"
    """folder that gets one sub-folder per run (TensorBoard logs and model.zip)"""
    dataset: Literal["mnist", "fashion-mnist"] = "mnist"
    """digits (or Fashion-MNIST items) drawn on the canvases"""
    data_dir: str | None = None
    """folder with IDX files (none: $GLIMPSE_DATA_DIR, then the offline default); for --env folder, the
    root of the class folders of pictures"""
    torch_threads: Annotated[int | None, Range(1)] = 1
    """torch intra-op threads; 1 is fastest for these tiny nets on a shared CPU; none = torch's default"""
    run_name: tyro.conf.Suppress[str] = field(init=False, default="")
    """computed at run time: ENV__ALGO__SEED__UNIXTIME"""


# Defaults that differ by task, in one place: parse_config puts them under the command line's flags. The
# recipes live in envs.zoo (Catch: RAM's retina, gentle updates; why, there), which rl-zoo3's hyperparameter
# files read too, so this script and the zoo train alike.
ENV_DEFAULTS: dict[str, dict] = {
    "catch": dict(SB3_RECIPES["catch"], eval_every=100_000),
}


def parse_config(argv: list[str] | None = None) -> Config:
    """The run's config: the command line's flags over ``ENV_DEFAULTS[--env]`` over ``Config``'s defaults."""
    argv = sys.argv[1:] if argv is None else list(argv)
    peek = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    peek.add_argument("--env", default=Config.env)
    env = peek.parse_known_args(argv)[0].env
    defaults = replace(Config(), env=env, **ENV_DEFAULTS.get(env, {}))  # an unknown --env: tyro names the choices
    return cli(Config, argv, description=__doc__.split("\n\n")[0], default=defaults)


def make_env(cfg: Config, num_envs: int, split: str, device: torch.device) -> VecEnv:
    """The batched glimpse env for ``cfg.env`` as an SB3 VecEnv, with episode statistics (``rollout/``)."""
    task = task_of(cfg.env)
    if cfg.grid is not None and cfg.action_mode != "discrete":
        raise ConfigError(f"--grid {cfg.grid} needs --action-mode discrete (continuous actions choose any location)")
    flags = dict(glimpse_size=cfg.glimpse_size, scales=cfg.scales, action_mode=cfg.action_mode, grid=cfg.grid,
                 start=cfg.start, dataset=cfg.dataset, data_dir=cfg.data_dir)
    if task.is_still:
        flags["num_glimpses"] = cfg.num_glimpses
    if split == "train":  # the test env keeps the final 0/1 reward (its episodes are scored by is_success)
        flags["reward_mode"] = cfg.reward_mode
    kwargs = dict(flags, split=split, device=device)
    try:  # to_sb3 makes the env with the same-step autoreset SB3 needs
        venv = to_sb3(task.env_id, num_envs=num_envs, **kwargs)
    except (ValueError, FileNotFoundError) as error:  # the task's own options and data refuse, and say why
        # The env's keywords are the flags' names: its refusal names the flag.
        raise ConfigError(f"--env {cfg.env}: "
                          f"{in_flag_words(error, {k: '--' + k.replace('_', '-') for k in flags})}") from error
    return VecMonitor(venv)


def success_rate(model, venv: VecEnv) -> float:
    """Fraction of ``venv.num_envs`` test episodes (one per env, deterministic actions) that succeed: the env's
    ``info["is_success"]`` when the episode ends (a right decision, a catch)."""
    n = venv.num_envs
    venv.seed(EVAL_SEED)
    obs = venv.reset()
    state, episode_start = None, np.ones(n, dtype=bool)  # the LSTM's memory (RecurrentPPO; PPO ignores it)
    succeeded, finished = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    while not finished.all():
        actions, state = model.predict(obs, state=state, episode_start=episode_start, deterministic=True)
        obs, _, dones, infos = venv.step(actions)
        for i in np.flatnonzero(dones & ~finished):
            succeeded[i] = bool(infos[i]["is_success"])
        finished |= dones
        episode_start = dones
    return float(np.mean(succeeded))


class TestSetEval(BaseCallback):
    """Evaluate on the test split after the rollout that crosses each ``every`` steps, and at the end; show
    progress: on a terminal a bar over the env steps (stderr) with the latest evaluation in its postfix; a
    line per evaluation on stdout, also when it is a file or a pipe."""

    def __init__(self, venv: VecEnv, every: int, tag: str):
        super().__init__()
        self.venv, self.every, self.tag = venv, every, tag
        self.next_eval = every
        self.start = time.perf_counter()
        self.bar: Progress | None = None

    def _on_training_start(self) -> None:
        self.total_timesteps = self.locals["total_timesteps"]
        rollout = self.model.n_steps * self.training_env.num_envs  # SB3 stops after the rollout that reaches it
        self.bar = Progress(math.ceil(self.total_timesteps / rollout) * rollout, unit="step", desc=self.tag,
                            lines=False)  # the lines are _evaluate's, on stdout

    def _on_step(self) -> bool:
        self.bar.update(self.num_timesteps - self.bar.done)
        return True

    def _on_rollout_end(self) -> None:  # SB3 writes what is recorded here at this rollout's dump
        elapsed = time.perf_counter() - self.start
        self.logger.record("charts/SPS", int(self.num_timesteps / elapsed))
        if self.next_eval <= self.num_timesteps < self.total_timesteps:  # the last rollout: see _on_training_end
            self.next_eval = (self.num_timesteps // self.every + 1) * self.every
            self._evaluate()

    def _on_training_end(self) -> None:
        self._evaluate()
        self.logger.dump(self.num_timesteps)
        self.bar.close()

    def _evaluate(self) -> None:
        start = time.perf_counter()
        score = success_rate(self.model, self.venv)
        self.logger.record(self.tag, score)
        self.logger.record("charts/eval_seconds", time.perf_counter() - start)
        train = self.model.ep_success_buffer  # info["is_success"] of the last 100 training episodes, any reward mode
        train_score = float(np.mean(train)) if train else float("nan")
        self.bar.report({self.tag: f"{score:.3f}", "train": f"{train_score:.2f}"})
        line = (f"step {self.num_timesteps:>9,} | {self.tag} {score:.3f} | train {train_score:.3f} "
                f"| {time.perf_counter() - self.start:6.0f} s")
        if self.bar.live and sys.stdout.isatty():  # the bar's terminal: above the bar
            self.bar.write(line)
        else:
            print(line, flush=True)  # one line per evaluation also when stdout is a file or a pipe


def new_run_folder(run_dir: Path, name: str) -> Path:
    """A folder ``run_dir/name`` made by this process alone: ``name-2``, ``name-3``, ... if it exists.

    Runs started in the same second with the same env, algo and seed would otherwise share one folder
    (their events mixed, one model.zip over the other); ``mkdir`` without ``exist_ok`` is atomic.
    """
    path, k = run_dir / name, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            k += 1
            path = run_dir / f"{name}-{k}"
        except OSError as error:  # a file where a folder goes, a read-only place
            raise ConfigError(f"--run-dir {run_dir}: cannot make the run's folder there ({error.strerror})") from None


def hparams_table(cfg: Config) -> str:
    rows = "\n".join(f"|{key}|{value}|" for key, value in asdict(cfg).items())
    return f"|param|value|\n|-|-|\n{rows}"


def main() -> None:
    cfg = parse_config()
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)
    device = torch.device(cfg.device)
    if cfg.algo == "recurrent-ppo":
        try:
            from sb3_contrib import RecurrentPPO as Algo
        except ImportError as error:
            raise ConfigError("--algo recurrent-ppo needs sb3-contrib: pip install sb3-contrib "
                              "(or pip install -e '.[recurrent]')") from error
        policy = "MultiInputLstmPolicy"
    else:
        Algo, policy = PPO, "MultiInputPolicy"

    with announcing_data():  # the offline subset, a capped --eval-episodes: one "data: ..." line each
        train_env = make_env(cfg, cfg.num_envs, "train", device)
        # One test episode per env: more envs than test examples would count some of them twice.
        eval_env, cfg.eval_episodes = capped_to_test_split(
            cfg.eval_episodes, "--eval-episodes", lambda count: make_env(cfg, count, "test", device))
    episode_steps = train_env.get_attr("episode_steps")[0]
    cfg.n_steps = rollout_steps(cfg.n_steps, episode_steps)
    if cfg.n_steps % episode_steps:
        print(f"note: --n-steps {cfg.n_steps} cuts the {episode_steps}-step episodes, which the envs play in "
              f"lockstep: some rollouts hold no episode end (no reward). A multiple of {episode_steps} avoids it.")
    policy_kwargs = dict(features_extractor_class=GlimpseExtractor,
                         features_extractor_kwargs=dict(features_dim=cfg.features_dim, scale_gain=cfg.scale_gain))
    if cfg.action_mode == "continuous":
        policy_kwargs["log_std_init"] = cfg.log_std_init
    if cfg.algo == "recurrent-ppo":
        policy_kwargs["lstm_hidden_size"] = cfg.lstm_hidden
    model = Algo(
        policy,
        train_env,
        learning_rate=cfg.learning_rate,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        gamma=cfg.gamma,
        ent_coef=cfg.ent_coef,
        policy_kwargs=policy_kwargs,
        seed=cfg.seed,
        device=device,
    )

    # The folder last, once the flags, data and model are known good: a refused run leaves nothing behind.
    run_path = new_run_folder(Path(cfg.run_dir), f"{cfg.env}__{cfg.algo}__{cfg.seed}__{int(time.time())}")
    cfg.run_name = run_path.name
    # One logger for SB3's scalars and ours: TensorBoard events straight in run_path (no PPO_1 sub-folder).
    model.set_logger(configure(str(run_path), ["tensorboard"]))
    writer = next(f.writer for f in model.logger.output_formats if isinstance(f, TensorBoardOutputFormat))
    writer.add_text("hyperparameters", hparams_table(cfg))
    print(f"run {cfg.run_name}: {Algo.__name__} on {task_of(cfg.env).env_id}, {device}, "
          f"{cfg.num_envs} envs x {cfg.n_steps} steps per rollout ({episode_steps}-step episodes), "
          f"{cfg.glimpse_size} px x {cfg.scales} retina, {cfg.total_timesteps:,} steps", flush=True)
    print(f"TensorBoard logs: {run_path}  (tensorboard --logdir {cfg.run_dir})", flush=True)

    tag = "eval/success" if task_of(cfg.env).decision == "paddle" else "eval/accuracy"
    model.learn(cfg.total_timesteps, callback=TestSetEval(eval_env, cfg.eval_every, tag))
    model.save(run_path / "model")
    print(f"model saved to {run_path / 'model.zip'}")
    train_env.close()
    eval_env.close()


if __name__ == "__main__":
    run_script(main)
