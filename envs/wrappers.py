"""Torch equivalents of Gymnasium's vector wrappers that only take numpy arrays.

The batched env (:class:`envs.GlimpseVectorEnv`) returns torch tensors on its device. Gymnasium's vector
wrappers that keep numpy state (``RecordEpisodeStatistics``) cannot add torch rewards to it; each class
here has the same name, arguments and info keys as Gymnasium's, and keeps its state as tensors on the
env's device, so CleanRL-style loops log episode returns on the GPU without converting anything::

    import gymnasium as gym
    from envs.wrappers import RecordEpisodeStatistics

    env = RecordEpisodeStatistics(gym.make_vec("glimpse/MNIST-v0", num_envs=256, device="cuda"))
    obs, _ = env.reset(seed=1)
    obs, rewards, terminated, truncated, infos = env.step(actions)
    if "episode" in infos:  # infos["episode"]["r"][infos["_episode"]]: the returns of the episodes that ended

For numpy-based tools use the env's ``arrays="numpy"`` and Gymnasium's own wrappers instead.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import torch
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from torch import Tensor

__all__ = ["RecordEpisodeStatistics"]


class RecordEpisodeStatistics(VectorWrapper):
    """Gymnasium's ``gymnasium.wrappers.vector.RecordEpisodeStatistics`` for a vector env of torch tensors.

    At a step where episodes end, ``infos[stats_key]`` is ``{"r": returns (N,) float32, "l": lengths (N,)
    int64, "t": seconds since each episode began (N,) float32}`` with mask ``infos[f"_{stats_key}"]`` (N,)
    bool, all on the env's device and 0 for the envs whose episode did not end: Gymnasium's keys and
    layout. The env's ``metadata["autoreset_mode"]`` decides what an episode is, as in Gymnasium: in
    ``NEXT_STEP`` mode the reset step after an episode ends belongs to no episode; in ``SAME_STEP`` mode every
    step belongs to one.

    Attributes:
        episode_count: episodes ended so far.
        return_queue, length_queue, time_queue: the returns, lengths and durations (Python numbers) of the
            last ``buffer_length`` episodes.

    Arguments:
        env: a vector env whose rewards, terminations and truncations are ``(N,)`` torch tensors.
        buffer_length: size of the three queues.
        stats_key: the info key of the statistics.
    """

    def __init__(self, env: VectorEnv, buffer_length: int = 100, stats_key: str = "episode") -> None:
        super().__init__(env)
        self._stats_key = stats_key
        mode = self.env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if not isinstance(mode, AutoresetMode):
            raise TypeError(f"Expected env.metadata['autoreset_mode'] to be an AutoresetMode, got {type(mode)}")
        self._autoreset_mode = mode
        self.device = getattr(env, "device", torch.device("cpu"))
        self.episode_count = 0
        self.time_queue: deque[float] = deque(maxlen=buffer_length)
        self.return_queue: deque[float] = deque(maxlen=buffer_length)
        self.length_queue: deque[int] = deque(maxlen=buffer_length)
        self._restart()

    def _restart(self) -> None:
        n = self.num_envs
        self.episode_start_times = torch.full((n,), time.perf_counter(), dtype=torch.float64)  # host clock
        self.episode_returns = torch.zeros(n, dtype=torch.float64, device=self.device)
        self.episode_lengths = torch.zeros(n, dtype=torch.int64, device=self.device)
        self.prev_dones = torch.zeros(n, dtype=torch.bool, device=self.device)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        """Reset the env and every env's statistics (a ``reset_mask`` option: only those envs')."""
        obs, infos = self.env.reset(seed=seed, options=options)
        mask = None if options is None else options.get("reset_mask")
        if mask is None:
            self._restart()
        else:
            mask = torch.as_tensor(mask, device=self.device)
            self.episode_start_times[mask.cpu()] = time.perf_counter()
            self.episode_returns[mask] = 0
            self.episode_lengths[mask] = 0
            self.prev_dones[mask] = False
        return obs, infos

    def step(self, actions):
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        if self._autoreset_mode == AutoresetMode.SAME_STEP:
            self.episode_returns += rewards
            self.episode_lengths += 1
        else:  # NEXT_STEP: the step after an episode ends is its env's reset, in no episode
            playing = ~self.prev_dones
            self.episode_returns = torch.where(playing, self.episode_returns + rewards, 0.0)
            self.episode_lengths = torch.where(playing, self.episode_lengths + 1, 0)
            self.episode_start_times[self.prev_dones.cpu()] = time.perf_counter()
        self.prev_dones = dones = terminated | truncated
        if bool(dones.any()):
            key = self._stats_key
            if key in infos or f"_{key}" in infos:
                raise ValueError(f"Attempted to add episode stats with key '{key}' but this key already exists "
                                 f"in info: {list(infos.keys())}")
            elapsed = (time.perf_counter() - self.episode_start_times).to(self.device)
            infos = {**infos, key: {
                "r": torch.where(dones, self.episode_returns, 0.0).to(torch.float32),
                "l": torch.where(dones, self.episode_lengths, 0),
                "t": torch.where(dones, elapsed, 0.0).to(torch.float32),
            }, f"_{key}": dones}
            ended = dones.cpu()
            self.episode_count += int(ended.sum())
            self.return_queue.extend(self.episode_returns.cpu()[ended].tolist())
            self.length_queue.extend(self.episode_lengths.cpu()[ended].tolist())
            self.time_queue.extend(elapsed.cpu()[ended].tolist())
            if self._autoreset_mode == AutoresetMode.SAME_STEP:  # the ended envs already play their next episode
                self.episode_returns = self.episode_returns.masked_fill(dones, 0.0)
                self.episode_lengths = self.episode_lengths.masked_fill(dones, 0)
                self.episode_start_times[ended] = time.perf_counter()
        return obs, rewards, terminated, truncated, infos
