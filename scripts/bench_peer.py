"""Benchmark the batched glimpse env against Active Perception Gym's image-classification vector env.

Active Perception Gym (``pip install ap-gym``; not a dependency of this project, so install it in a
separate venv: ``docs/peers.md``) downloads its MNIST from the Hugging Face hub when an env is built.
Here, as a user without internet would, its own registration function
(``ap_gym.envs.registration.register_image_classification_env``) registers its
``ImageClassificationVectorEnv`` on our digits: a subclass of its ``ImageClassificationDataset`` over
``envs.data.load_digits("mnist", "train")`` (the offline 4,000 training digits unless full MNIST is
installed; both envs read the same source, printed at the start).

Each setting ``N:g:T`` runs both envs at matched settings: ``N`` envs, one ``g x g`` glimpse (one scale),
``T`` steps per episode, Gymnasium's ``NEXT_STEP`` autoreset (ap-gym's only mode and our default: an
episode is ``T`` steps plus the reset step), a random start, random actions drawn before timing:

- ``ours``: ``gym.make_vec("glimpse/MNIST-v0", num_envs=N, glimpse_size=g, scales=1, num_glimpses=T)``,
  torch tensors in and out (``arrays="torch"``, the default);
- ``ours-numpy``: the same with ``arrays="numpy"`` and numpy actions, numpy in and out like ap-gym;
- ``ap-gym``: ``ap_gym.make_vec(id, num_envs=N)`` of an id registered with ``sensor_size=(g, g)`` and
  ``step_limit=T`` (its other defaults: the data-prefetch thread and its log wrapper, as a user gets it).

Timed blocks of two episodes (``2 (T + 1)`` steps) alternate between the three and the medians are
compared; the machine is noisy, so read the ratios, which come from one run.

    OMP_NUM_THREADS=1 python scripts/bench_peer.py                          # 64:5:16 and 256:8:6
    OMP_NUM_THREADS=1 python scripts/bench_peer.py --settings 64:5:16 --budget 20 --json
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import gymnasium as gym
import numpy as np
import torch

import envs  # importing envs registers glimpse/...
from agents.benchmarking import interleaved_medians
from agents.training import ConfigError, cli, run_script
from envs.data import load_digits
from agents.ranges import MAX_SEED, Range

ENV_ID = "glimpse/MNIST-v0"
NUM_CLASSES = 10


@dataclass
class Config:
    settings: tuple[str, ...] = ("64:5:16", "256:8:6")
    """settings to measure, each N:g:T (envs, glimpse side in pixels, steps per episode); the defaults are
    ap-gym's MNIST (5x5 glimpse, 16 steps) and RAM's 28x28 MNIST (8x8, 6 glimpses)"""
    budget: Annotated[float, Range(0, open_low=True)] = 10.0
    """seconds of timing per setting, shared by the three envs (at least 5 blocks each)"""
    seed: Annotated[int, Range(0, MAX_SEED)] = 0
    """seed of the episodes and of the pre-generated actions"""
    threads: Annotated[int, Range(1)] = 1
    """torch intra-op threads (1: ap-gym steps on one core; set OMP_NUM_THREADS=1 for numpy too)"""
    json: bool = False
    """print one JSON object instead of the table"""


@dataclass(frozen=True)
class Setting:
    num_envs: int
    glimpse: int
    steps: int  # per episode, before the reset step


@dataclass
class Row:
    num_envs: int
    glimpse: int
    steps: int
    ours_steps_per_s: float
    ours_numpy_steps_per_s: float
    ap_gym_steps_per_s: float
    ratio: float
    ratio_numpy: float
    blocks: int


def parse_setting(text: str) -> Setting:
    """``"N:g:T"`` -> :class:`Setting`; a :class:`ConfigError` naming the flag and the text otherwise."""
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise ConfigError(f"--settings takes N:g:T with three positive integers (e.g. 64:5:16); got {text!r}")
    setting = Setting(*map(int, parts))
    if setting.glimpse > 28:
        raise ConfigError(f"--settings: the glimpse must fit the 28x28 digit (g <= 28); got {text!r}")
    return setting


def import_ap_gym() -> Any:
    """The ``ap_gym`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ap_gym
    except ImportError as error:
        raise ConfigError(
            f"ap_gym cannot be imported ({error}); it is not a dependency of this project: "
            "pip install ap-gym==0.7.1 aiohttp in a separate venv (docs/peers.md)"
        ) from None
    return ap_gym


def register_ap_gym_digits(ap_gym: Any, setting: Setting) -> str:
    """Register ap-gym's image-classification env on our training digits with a ``g x g`` sensor and a
    ``T``-step limit, through ap-gym's own registration function; returns the id."""
    from ap_gym.envs.image import ImageClassificationDataset
    from ap_gym.envs.registration import register_image_classification_env

    class OfflineDigits(ImageClassificationDataset):
        """Our digits as ap-gym's dataset: ``(n, 28, 28)`` uint8 images (ap-gym scales them to [0, 1])."""

        def load(self) -> None:  # ap-gym calls it when an env is built
            digits = load_digits("mnist", "train")
            self.images, self.labels = digits.images.numpy(), digits.labels.numpy()

        def _get_num_classes(self) -> int:
            return NUM_CLASSES

        def _get_num_channels(self) -> int:
            return 1

        def _get_length(self) -> int:
            return len(self.labels)

        def _get_data_point_batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return self.images[idx], self.labels[idx]

    env_id = f"OfflineMNIST-g{setting.glimpse}-t{setting.steps}-v0"
    if env_id not in gym.registry:
        register_image_classification_env(name=env_id, dataset=OfflineDigits(), step_limit=setting.steps,
                                          kwargs=dict(sensor_size=(setting.glimpse, setting.glimpse)))
    return env_id


def block_runner(env: gym.vector.VectorEnv, actions: Sequence[Any]) -> Callable[[], float]:
    """A function that steps ``env`` through every action of the block and returns the seconds it took."""

    def run() -> float:
        start = time.perf_counter()
        for action in actions:
            env.step(action)
        return time.perf_counter() - start

    return run


def measure(cfg: Config, setting: Setting, ap_gym: Any) -> Row:
    n, g, steps = setting.num_envs, setting.glimpse, setting.steps
    block = 2 * (steps + 1)  # two whole episodes with their reset steps, so every block does the same work
    rng = np.random.default_rng(cfg.seed)
    moves = rng.uniform(-1, 1, (block, n, 2)).astype(np.float32)  # (block, N, 2) glimpse moves/centres
    scores = rng.normal(size=(block, n, NUM_CLASSES)).astype(np.float32)  # (block, N, 10) decision scores

    kwargs = dict(num_envs=n, glimpse_size=g, scales=1, num_glimpses=steps)
    ours = gym.make_vec(ENV_ID, **kwargs)
    ours_numpy = gym.make_vec(ENV_ID, arrays="numpy", **kwargs)
    peer = ap_gym.make_vec(register_ap_gym_digits(ap_gym, setting), num_envs=n)
    for env in (ours, ours_numpy, peer):
        env.reset(seed=cfg.seed)
    ours_actions = np.concatenate([moves, scores], axis=-1)  # (block, N, 12)
    runners = {
        "ours": block_runner(ours, torch.from_numpy(ours_actions)),
        "ours-numpy": block_runner(ours_numpy, ours_actions),
        "ap-gym": block_runner(peer, [{"action": m, "prediction": s} for m, s in zip(moves, scores)]),
    }

    seconds, blocks = interleaved_medians(runners, cfg.budget, min_blocks=5)
    rate = {name: n * block / s for name, s in seconds.items()}
    for env in (ours, ours_numpy, peer):
        env.close()
    return Row(n, g, steps, rate["ours"], rate["ours-numpy"], rate["ap-gym"],
               rate["ours"] / rate["ap-gym"], rate["ours-numpy"] / rate["ap-gym"], blocks)


def main() -> None:
    cfg = cli(Config, description=__doc__.split("\n\n")[0])
    settings = [parse_setting(text) for text in cfg.settings]
    ap_gym = import_ap_gym()
    torch.set_num_threads(cfg.threads)
    digits = load_digits("mnist", "train")
    rows = [measure(cfg, setting, ap_gym) for setting in settings]

    header = {"threads": torch.get_num_threads(), "torch": torch.__version__, "numpy": np.__version__,
              "gymnasium": gym.__version__, "ap_gym": ap_gym.__version__}
    data = f"{len(digits)} training digits from {digits.source}"
    if cfg.json:
        print(json.dumps({**header, "data": data, "config": asdict(cfg), "rows": [asdict(r) for r in rows]},
                         indent=1))
        return
    print(" ".join(f"{k}={v}" for k, v in header.items()))
    print(f"data: {data}; NEXT_STEP autoreset, random actions, blocks of 2 episodes (T + 1 steps each)")
    print(f"{'N':>5} {'g':>3} {'T':>3} {'ours':>10} {'ours-numpy':>11} {'ap-gym':>9} {'ratio':>7} "
          f"{'numpy':>7} {'blocks':>6}")
    for r in rows:
        print(f"{r.num_envs:>5} {r.glimpse:>3} {r.steps:>3} {r.ours_steps_per_s:>10.4g} "
              f"{r.ours_numpy_steps_per_s:>11.4g} {r.ap_gym_steps_per_s:>9.4g} {r.ratio:>6.1f}x "
              f"{r.ratio_numpy:>6.1f}x {r.blocks:>6}")
    print("steps/s: env steps (N per step call); ratio: ours / ap-gym, numpy: ours-numpy / ap-gym")


if __name__ == "__main__":
    run_script(main)
