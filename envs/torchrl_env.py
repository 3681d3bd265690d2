"""TorchRL bridge: the batched glimpse env as a native TorchRL ``EnvBase``, tensors on the env's device.

:class:`GlimpseTorchRLEnv` steps one :class:`envs.GlimpseVectorEnv` (``N`` episodes as torch tensors, CPU or
CUDA) behind TorchRL's ``EnvBase`` contract, so TorchRL's collectors, transforms, losses and checkers run on
it with no numpy round trip and no subprocesses. It needs the optional ``torchrl`` extra
(``pip install -e '.[torchrl]'``); ``import envs`` does not import this module.

    from envs.torchrl_env import GlimpseTorchRLEnv
    from torchrl.envs.utils import check_env_specs

    env = GlimpseTorchRLEnv("glimpse/MNIST-v0", num_envs=16, device="cpu", glimpse_size=8, scales=3)
    check_env_specs(env)
    env.set_seed(0)                       # env i plays the episodes of a single env seeded 0 + i
    rollout = env.rollout(12, break_when_any_done=False)   # (16, 12) TensorDict

Specs (``batch_size = [N]``, all on the env's device):
    - observation: ``"glimpse"`` ``(N, S, C, g, g)`` and ``"location"`` ``(N, 2)``, ``Bounded`` as the
      gymnasium ``Box``es they come from; classification tasks add ``"label"`` ``(N,)`` int64: the
      episode's label at the step that ends it, ``-1`` at every other step and after a reset (with a
      per-step ``reward_mode``, the label at every step).
    - action: ``action_mode="continuous"``: ``Bounded`` ``(N, 2 + D)`` in ``[-1, 1]`` float32;
      ``action_mode="discrete"``: ``MultiCategorical`` ``(N, 3)`` over ``[grid, grid, D]`` int64.
    - reward: ``(N, 1)`` float32; done, terminated, truncated: ``(N, 1)`` bool (``done = terminated |
      truncated``).

Resets and seeding:
    The vector env runs in Gymnasium's ``DISABLED`` autoreset mode: an episode ends at its last step and
    TorchRL resets it. A reset whose tensordict holds TorchRL's ``"_reset"`` mask ``(N, 1)`` restarts only
    those envs (``reset(options={"reset_mask": mask})`` of the vector env); the others play on.
    ``set_seed(s)`` restarts every env, env ``i`` from seed ``s + i`` exactly as ``vec.reset(seed=s)``,
    and the next ``reset()`` returns those first observations (so ``set_seed(s)`` then ``reset()`` or a
    rollout or collector plays the episodes of the Gymnasium env reset with ``seed=s``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import Tensor

import envs  # noqa: F401  (registers glimpse/...)
from envs.glimpse_env import GlimpseVectorEnv
from envs.specs import task_of
from glimpse.checks import check_device, check_int

try:
    from tensordict import TensorDict, TensorDictBase
    from torchrl.data import Bounded, Categorical, Composite, MultiCategorical, TensorSpec, Unbounded
    from torchrl.envs import EnvBase
except ImportError as error:  # the optional extra is missing: say how to get it
    raise ImportError(f"envs.torchrl_env needs TorchRL: pip install -e '.[torchrl]' (or pip install torchrl); "
                      f"{error}") from error

__all__ = ["GlimpseTorchRLEnv"]


class GlimpseTorchRLEnv(EnvBase):
    """``N`` glimpse episodes as one TorchRL env with ``batch_size=[N]``; see the module docstring.

    Args:
        env: a registered id or task name (``"glimpse/MNIST-v0"``, ``"cluttered-60"``, see
            :data:`envs.TASKS`), made with ``gym.make_vec(id, num_envs, device=device,
            autoreset_mode=DISABLED, **env_kwargs)``; or an existing glimpse vector env (possibly wrapped)
            made with ``autoreset_mode=AutoresetMode.DISABLED`` and ``arrays="torch"``, whose device the
            TorchRL env takes.
        num_envs: ``N``, for an id (default 1; an existing vector env has its own).
        device: torch device of the episodes, for an id (default ``"cpu"``); it must exist on this machine.
        **env_kwargs: the vector env's arguments for an id (retina, ``action_mode``, task options, ...).

    Raises:
        ValueError: an unknown id, an autoreset mode other than ``DISABLED``, ``arrays="numpy"``, a device
            this machine lacks, or ``num_envs``, ``device`` or env arguments given with an existing env.
        TypeError: ``env`` neither an id nor a glimpse vector env.
    """

    def __init__(self, env: str | VectorEnv, num_envs: int | None = None, *,
                 device: str | torch.device | None = None, **env_kwargs: Any) -> None:
        if isinstance(env, str):
            spec = task_of(env)  # an unknown id or name: a ValueError listing the valid ones
            num_envs = 1 if num_envs is None else check_int(num_envs, "num_envs")
            _check_disabled(env_kwargs.pop("autoreset_mode", AutoresetMode.DISABLED))
            vec = gym.make_vec(spec.env_id, num_envs=num_envs, device=check_device("cpu" if device is None else device),
                               autoreset_mode=AutoresetMode.DISABLED, **env_kwargs)
        elif isinstance(env, VectorEnv):
            given = {"num_envs": num_envs, "device": device, **env_kwargs}
            given = sorted(name for name, value in given.items() if value is not None)
            if given:
                raise ValueError(f"arguments {given} apply only when env is an id; an existing "
                                 f"{type(env).__name__} has its own")
            vec = env
        else:
            raise TypeError(f"env must be a registered id, a task name or a gymnasium VectorEnv; got {type(env).__name__}")
        base = vec.unwrapped
        if not isinstance(base, GlimpseVectorEnv):
            raise TypeError(f"env must be a glimpse vector env (envs.GlimpseVectorEnv); got {type(base).__name__}")
        _check_disabled(vec.metadata.get("autoreset_mode"))
        if base.arrays != "torch":
            raise ValueError(f"env must return torch tensors (arrays='torch'); got arrays={base.arrays!r}")

        super().__init__(device=base.device, batch_size=torch.Size([vec.num_envs]))
        self._vec = vec
        self._started = False  # the first reset resets every env, whatever the mask
        self._seeded: dict[str, Tensor] | None = None  # first observations of set_seed's episodes, until reset
        self._labelled = base.decision == "classify"  # classification tasks put the label in the last info

        n, dev = vec.num_envs, self.device
        observation = {key: _spec_of(sub, n, dev) for key, sub in vec.single_observation_space.spaces.items()}
        if self._labelled:
            observation["label"] = Unbounded(shape=(n,), dtype=torch.int64, device=dev)
        self.observation_spec = Composite(observation, shape=(n,), device=dev)
        self.action_spec = _spec_of(vec.single_action_space, n, dev)
        self.reward_spec = Unbounded(shape=(n, 1), dtype=torch.float32, device=dev)
        flag = Categorical(2, shape=(n, 1), dtype=torch.bool, device=dev)
        self.done_spec = Composite(done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=(n,), device=dev)

    @property
    def vector_env(self) -> VectorEnv:
        """The Gymnasium vector env this TorchRL env steps (read its task, retina, ``item_glimpses()``, ...)."""
        return self._vec

    # ------------------------------------------------------------------ EnvBase
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        if self._seeded is not None:  # set_seed already started every env's episode
            obs, self._seeded = self._seeded, None
        else:
            mask = None if tensordict is None else tensordict.get("_reset", None)
            if mask is None or not self._started:
                obs, _ = self._vec.reset()
            else:  # TorchRL's partial reset: restart only the envs of the mask
                obs, _ = self._vec.reset(options={"reset_mask": mask.reshape(self.batch_size)})
        self._started = True
        not_done = torch.zeros(*self.batch_size, 1, dtype=torch.bool, device=self.device)
        out = {**obs, "done": not_done, "terminated": not_done.clone(), "truncated": not_done.clone()}
        if self._labelled:
            out["label"] = torch.full(self.batch_size, -1, dtype=torch.int64, device=self.device)
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        self._seeded = None
        obs, reward, terminated, truncated, info = self._vec.step(tensordict.get("action"))
        out = {**obs, "reward": reward.to(torch.float32).unsqueeze(-1), "done": (terminated | truncated).unsqueeze(-1),
               "terminated": terminated.unsqueeze(-1), "truncated": truncated.unsqueeze(-1)}
        if self._labelled:
            if "label" in info:  # only at steps where an episode ended; -1 in the envs that play on
                out["label"] = torch.where(info["_label"], info["label"], -1)
            else:
                out["label"] = torch.full(self.batch_size, -1, dtype=torch.int64, device=self.device)
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:  # keep the current keys (a fresh env draws its own at its first reset)
            return
        self._seeded, _ = self._vec.reset(seed=check_int(seed, "seed", minimum=-(2**63)))
        self._started = True

    def close(self, *, raise_if_closed: bool = True) -> None:
        self._vec.close()
        super().close(raise_if_closed=raise_if_closed)


def _check_disabled(mode: Any) -> None:
    """A ``ValueError`` unless ``mode`` is Gymnasium's ``AutoresetMode.DISABLED`` (or its value)."""
    if mode not in (AutoresetMode.DISABLED, AutoresetMode.DISABLED.value):
        raise ValueError(f"GlimpseTorchRLEnv needs autoreset_mode=AutoresetMode.DISABLED (TorchRL resets ended "
                         f"episodes itself through '_reset'); got {mode!r}")


def _spec_of(space: spaces.Space, n: int, device: torch.device) -> TensorSpec:
    """The TorchRL spec of ``n`` stacked samples of a gymnasium ``Box`` or ``MultiDiscrete`` space."""
    if isinstance(space, spaces.Box):
        shape = (n, *space.shape)
        low, high = (torch.from_numpy(bound).expand(shape) for bound in (space.low, space.high))
        return Bounded(low=low, high=high, shape=shape, dtype=low.dtype, device=device)
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1 and not space.start.any():
        return MultiCategorical(nvec=space.nvec.tolist(), shape=(n, len(space.nvec)), dtype=torch.int64, device=device)
    raise TypeError(f"no TorchRL spec for a {space}: glimpse envs use Box and MultiDiscrete spaces")
