"""Stable-Baselines3 bridge: a batched glimpse ``VectorEnv`` as an SB3 ``VecEnv``, and a features extractor.

Two pieces, each one narrow contract:

- :func:`to_sb3` makes a glimpse task's batched env from its id (``to_sb3("glimpse/MNIST-v0", num_envs=16,
  **env_kwargs)``), or takes a gymnasium ``VectorEnv`` that steps all N episodes at once (torch tensors on CPU
  or CUDA, or numpy), and wraps it in :class:`SB3VecEnv`, so SB3 algorithms (PPO, A2C, sb3-contrib's
  RecurrentPPO) and SB3's ``VecEnvWrapper`` stack (``VecMonitor``, ``VecNormalize``, ...) run on it unchanged.
- :class:`GlimpseExtractor` is a features extractor for the ``{"glimpse", "location", ...}`` Dict observation.
  SB3's ``NatureCNN`` needs images of at least 36x36; glimpses are a few pixels across.

Autoreset:
    The vector env must declare ``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``: when env ``i`` ends
    at a step, row ``i`` of the returned observation is already the first observation of its next episode,
    and the last observation of the finished episode is in ``infos["final_obs"]``. That is exactly SB3's own
    ``VecEnv`` contract. ``NEXT_STEP`` mode (gymnasium's default) returns the final observation in the
    observation itself and spends the following step on the reset, so SB3 would store that reset step as a
    real transition; ``DISABLED`` never resets. Both are rejected.

Info conventions (gymnasium 1.x vector infos -> SB3's list of N dicts):
    Gymnasium batches infos as ``{key: values (N, ...), "_key": mask (N,) bool}``, recursively for dict
    values. In SAME_STEP mode an ending step adds ``"final_obs"``/``"_final_obs"`` (the final observation,
    either an object array of N per-env observations, as ``SyncVectorEnv`` writes it, or a batch laid out
    like the observation, as natively batched envs write it) and ``"final_info"``/``"_final_info"`` (the
    info of the finishing step, batched as above); the top-level keys of an ended env then describe the
    reset (plus whatever vector wrappers such as ``RecordEpisodeStatistics`` add there).

    ``SB3VecEnv.step_wait`` returns ``infos[i]`` as:

    - every env: the top-level entries present for ``i`` (masked out ones omitted), unbatched;
      ``"TimeLimit.truncated" = truncated[i] and not terminated[i]`` (as SB3's ``DummyVecEnv``);
    - an env that ended: also the entries of ``final_info`` for ``i`` (they win over top-level keys of the
      same name, since they describe the finishing step), and ``"terminal_observation"``, the final
      observation for ``i`` as numpy copies in the single observation space's dtype. The top-level
      entries of that env also go to ``reset_infos[i]``, where SB3 keeps reset infos.

    Unbatched values: 0-d entries become Python scalars (``.item()``); other rows become numpy copies;
    object-array entries are returned as stored. A key without a ``_key`` mask counts as present for every
    env: indexed by row if it is an array or tensor with leading size N, else repeated as is.

Attribute access:
    The N slots share one batched env, so :meth:`SB3VecEnv.get_attr` reports that env's attribute once
    per requested slot (looking through gymnasium ``VectorWrapper`` layers), :meth:`~SB3VecEnv.set_attr`
    and :meth:`~SB3VecEnv.env_method` act on the batched env once and accept only ``indices`` that cover
    every env (a subset raises ``NotImplementedError``), and :meth:`~SB3VecEnv.env_is_wrapped` reports
    whether the vector env's wrapper chain holds the class.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn
from torch import Tensor, nn

from envs.specs import task_of
from glimpse import scale_gains
from glimpse.checks import check_positive_int

__all__ = ["to_sb3", "SB3VecEnv", "GlimpseExtractor"]

_FINAL_KEYS = frozenset({"final_obs", "_final_obs", "final_info", "_final_info"})


# ----------------------------------------------------------------------------------------------------------
# Conversions: torch / numpy batches -> fresh numpy arrays, gymnasium vector infos -> SB3 per-env dicts
# ----------------------------------------------------------------------------------------------------------


def _to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """A fresh numpy array holding ``x`` (a tensor on any device, an array or a scalar); never a view."""
    if isinstance(x, Tensor):
        x = x.detach()
        x = x.numpy() if x.device.type == "cpu" else x.cpu().numpy()
    return np.array(x, dtype=dtype, copy=True)


def _obs_to_numpy(obs: Any, space: spaces.Space) -> VecEnvObs:
    """Batched observation ``(N, ...)`` (a dict of them for a Dict space) -> fresh numpy arrays in the space's dtype."""
    if isinstance(space, spaces.Dict):
        return {key: _to_numpy(obs[key], sub.dtype) for key, sub in space.spaces.items()}
    return _to_numpy(obs, space.dtype)


def _row(batch: Any, i: int) -> Any:
    """Row ``i`` of an already-numpy batch as an SB3 info value: Python scalar, numpy copy or stored object."""
    value = batch[i]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


def _unbatch_info(infos: dict[str, Any], n: int, skip: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Gymnasium vector info ``{key: (N, ...), "_key": (N,)}`` (recursive) -> a list of N per-env dicts."""
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in infos.items():
        if key in skip or (key.startswith("_") and key[1:] in infos):
            continue  # a mask, read with its key
        mask = infos.get(f"_{key}")
        present = np.ones(n, dtype=bool) if mask is None else _to_numpy(mask, bool).reshape(n)
        if isinstance(value, dict):
            rows = _unbatch_info(value, n)
            for i in np.flatnonzero(present):
                if mask is not None or rows[i]:
                    out[i][key] = rows[i]
            continue
        if isinstance(value, Tensor):
            value = _to_numpy(value)
        if isinstance(value, np.ndarray) and value.ndim > 0 and len(value) == n:
            for i in np.flatnonzero(present):
                out[i][key] = _row(value, i)
        else:  # an un-batched value: the same for every env
            value = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
            for i in np.flatnonzero(present):
                out[i][key] = deepcopy(value)
    return out


def _final_obs_rows(final_obs: Any, space: spaces.Space, rows: np.ndarray) -> dict[int, VecEnvObs]:
    """The final observation of each env in ``rows``, as numpy copies of one single observation.

    ``final_obs`` is either an object array (or sequence) of N per-env observations, as gymnasium's
    ``SyncVectorEnv`` writes it, or one batch laid out like the observation (a dict of ``(N, ...)`` tensors or
    arrays for a Dict space), as natively batched envs write it.
    """
    per_env = (isinstance(final_obs, np.ndarray) and final_obs.dtype == object) or isinstance(final_obs, (list, tuple))
    if per_env:
        if isinstance(space, spaces.Dict):
            return {i: {k: _to_numpy(final_obs[i][k], s.dtype) for k, s in space.spaces.items()} for i in rows}
        return {i: _to_numpy(final_obs[i], space.dtype) for i in rows}
    batch = _obs_to_numpy(final_obs, space)
    if isinstance(space, spaces.Dict):
        return {i: {k: v[i].copy() for k, v in batch.items()} for i in rows}
    return {i: batch[i].copy() for i in rows}


def _wrapper_chain(env: VectorEnv) -> Iterator[VectorEnv]:
    """The vector env, then each env it wraps, outermost first."""
    yield env
    while isinstance(env, VectorWrapper):
        env = env.env
        yield env


# ----------------------------------------------------------------------------------------------------------
# The VecEnv adapter
# ----------------------------------------------------------------------------------------------------------


class SB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` over one batched gymnasium ``VectorEnv`` in SAME_STEP autoreset mode.

    Build it with :func:`to_sb3`. The module docstring states the info conventions and how
    ``get_attr``/``set_attr``/``env_method``/``env_is_wrapped`` treat the single batched env.

    Observation Space:
        ``vector_env.single_observation_space`` (SB3 spaces describe one env). ``reset`` and ``step_wait``
        return fresh numpy arrays ``(N, *shape)`` in its dtype (a dict of them for a Dict space), never
        views of tensors the env will overwrite.

    Action Space:
        ``vector_env.single_action_space``. SB3's actions ``(N, *shape)`` are passed to ``vector_env.step``
        as a contiguous numpy array in that space's dtype (the contract lets batched envs take numpy).

    Seeding and options:
        ``seed(s)`` (SB3's) makes the next ``reset`` call ``vector_env.reset(seed=s)``, which by gymnasium's
        convention seeds env ``i`` with ``s + i``. ``set_options(d)`` passes ``options=d`` to the next reset;
        per-env options that differ raise ``NotImplementedError``, since one batched reset takes one dict.

    Arguments:
        vector_env: the batched env; its ``metadata["autoreset_mode"]`` must be ``AutoresetMode.SAME_STEP``.
    """

    def __init__(self, vector_env: VectorEnv):
        _check_vector_env(vector_env)
        self.vector_env = vector_env  # before super().__init__, which reads render_mode through get_attr
        super().__init__(
            int(vector_env.num_envs), vector_env.single_observation_space, vector_env.single_action_space
        )
        self.metadata = {**vector_env.metadata, **self.metadata}
        self._actions: np.ndarray | None = None

    # -- stepping ------------------------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        seed = _batched_seed(self._seeds)
        options = _batched_options(self._options)
        obs, infos = self.vector_env.reset(seed=seed, options=options)
        self.reset_infos = _unbatch_info(infos, self.num_envs, skip=_FINAL_KEYS)
        self._reset_seeds()  # seeds and options apply to one reset, as in SB3's DummyVecEnv
        self._reset_options()
        return _obs_to_numpy(obs, self.observation_space)

    def step_async(self, actions: np.ndarray) -> None:
        space = self.action_space
        self._actions = np.ascontiguousarray(
            np.asarray(actions, dtype=space.dtype).reshape(self.num_envs, *space.shape)
        )

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_wait() called without step_async(actions); call step(actions)."
        obs, rewards, terminated, truncated, infos = self.vector_env.step(self._actions)
        self._actions = None
        n = self.num_envs
        rewards = _to_numpy(rewards, np.float32).reshape(n)
        terminated = _to_numpy(terminated, bool).reshape(n)
        truncated = _to_numpy(truncated, bool).reshape(n)
        dones = terminated | truncated

        out = _unbatch_info(infos, n, skip=_FINAL_KEYS)
        ended = np.flatnonzero(dones)
        if len(ended):
            final_infos = _final_infos(infos, n)
            final_obs = self._final_obs(infos, ended)
            for i in ended:
                self.reset_infos[i] = dict(out[i])
                out[i].update(final_infos[i])
                out[i]["terminal_observation"] = final_obs[i]
        for i in range(n):
            out[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return _obs_to_numpy(obs, self.observation_space), rewards, dones, out

    def _final_obs(self, infos: dict[str, Any], ended: np.ndarray) -> dict[int, VecEnvObs]:
        mask = infos.get("_final_obs")
        missing = [] if "final_obs" in infos else list(ended)
        if mask is not None and not missing:
            mask = _to_numpy(mask, bool).reshape(self.num_envs)
            missing = [i for i in ended if not mask[i]]
        if missing:
            raise RuntimeError(
                f"envs {[int(i) for i in missing]} ended this step but infos has no 'final_obs' for them "
                f"(info keys: {sorted(infos)}). A SAME_STEP VectorEnv must put the last observation of each "
                "finished episode in infos['final_obs'] with infos['_final_obs'][i] = True; SB3 needs it "
                "to bootstrap truncated episodes."
            )
        return _final_obs_rows(infos["final_obs"], self.observation_space, ended)

    def close(self) -> None:
        self.vector_env.close()

    # -- rendering -----------------------------------------------------------------------------------------

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"The render mode is {self.render_mode}, but get_images() needs 'rgb_array'; "
                "create the vector env with render_mode='rgb_array'."
            )
            return [None] * self.num_envs
        frames = self.vector_env.render()
        if frames is None:
            return [None] * self.num_envs
        return [_to_numpy(frame) for frame in frames]

    # -- attributes and methods of the (single) batched env ------------------------------------------------

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The batched env's ``attr_name`` (looked up through its wrappers), once per requested slot."""
        for env in _wrapper_chain(self.vector_env):
            if hasattr(env, attr_name):
                return [getattr(env, attr_name)] * len(list(self._get_indices(indices)))
        raise AttributeError(f"{type(self.vector_env).__name__} (or the envs it wraps) has no attribute {attr_name!r}")

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set ``attr_name`` once on the batched env (on the innermost layer that has it, else the outermost)."""
        self._check_all_envs(indices, "set_attr")
        target = self.vector_env
        for env in _wrapper_chain(self.vector_env):
            if hasattr(env, attr_name):
                target = env
        setattr(target, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call ``method_name`` once on the batched env; its result is repeated once per env."""
        self._check_all_envs(indices, "env_method")
        (method,) = self.get_attr(method_name, indices=0)
        return [method(*method_args, **method_kwargs)] * self.num_envs

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Whether ``wrapper_class`` is in the batched env's wrapper chain, once per requested slot."""
        wrapped = any(isinstance(env, wrapper_class) for env in _wrapper_chain(self.vector_env))
        return [wrapped] * len(list(self._get_indices(indices)))

    def _check_all_envs(self, indices: VecEnvIndices, what: str) -> None:
        if indices is None or sorted(set(self._get_indices(indices))) == list(range(self.num_envs)):
            return
        raise NotImplementedError(
            f"{what}(indices={indices!r}): the {self.num_envs} envs are one batched {type(self.vector_env).__name__}, "
            "which has no per-env attributes or methods. Pass indices=None to act on the whole batch, or give the "
            "batched env a method that takes the env indices."
        )

    def __repr__(self) -> str:
        return f"SB3VecEnv({self.vector_env!r})"


def _check_vector_env(vector_env: Any) -> None:
    if isinstance(vector_env, gym.Env):
        raise TypeError(
            f"to_sb3 wraps a batched gymnasium VectorEnv; got the single env {vector_env!r}. "
            "Wrap single envs with stable_baselines3.common.vec_env.DummyVecEnv instead."
        )
    if not isinstance(vector_env, VectorEnv):
        raise TypeError(f"to_sb3 needs a gymnasium.vector.VectorEnv; got {type(vector_env).__name__}")
    mode = vector_env.metadata.get("autoreset_mode")
    if not _is_same_step(mode):
        raise ValueError(
            f"to_sb3 needs a VectorEnv with metadata['autoreset_mode'] == AutoresetMode.SAME_STEP; "
            f"{vector_env!r} has {mode!r}. In NEXT_STEP mode the step after an episode ends only resets, and "
            "SB3 would learn from that reset transition; DISABLED never resets. Create the env with "
            "SAME_STEP autoreset (the glimpse envs: to_sb3('glimpse/...', num_envs=N, **env_kwargs) makes it so, "
            "as does gymnasium.make_vec('glimpse/...', num_envs=N, autoreset_mode=AutoresetMode.SAME_STEP); "
            "gymnasium's own: gymnasium.make_vec(..., vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP}) "
            "or SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)), or wrap single envs in SB3's DummyVecEnv."
        )
    obs_space = vector_env.single_observation_space
    if isinstance(obs_space, spaces.Dict):
        nested = [k for k, s in obs_space.spaces.items() if isinstance(s, (spaces.Dict, spaces.Tuple))]
        if nested:
            raise ValueError(f"SB3 does not support nested observation spaces; keys {nested} are Dict/Tuple spaces.")
    elif isinstance(obs_space, spaces.Tuple):
        raise ValueError("SB3 does not support Tuple observation spaces; use a Dict space.")


def _batched_seed(seeds: list[int | None]) -> int | list[int | None] | None:
    """SB3's per-env seeds -> one ``reset(seed=...)`` argument: None, ``s`` for ``[s, s+1, ...]``, else the list."""
    if all(s is None for s in seeds):
        return None
    if all(s is not None for s in seeds) and list(seeds) == [seeds[0] + i for i in range(len(seeds))]:
        return int(seeds[0])
    return list(seeds)


def _batched_options(options: list[dict[str, Any]]) -> dict[str, Any] | None:
    """SB3's per-env reset options -> one ``reset(options=...)`` dict (they must all be equal)."""
    if all(not o for o in options):
        return None
    if any(o != options[0] for o in options[1:]):
        raise NotImplementedError(
            "set_options() gave the envs different reset options, but a batched env resets with one options "
            "dict. Call set_options(one_dict), or put per-env values inside that dict as a batch."
        )
    return options[0]


def _final_infos(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """``infos["final_info"]`` unbatched (a batched dict, or a sequence of N per-env dicts) -> N dicts."""
    final = infos.get("final_info")
    if final is None:
        return [{} for _ in range(n)]
    rows = _unbatch_info(final, n) if isinstance(final, dict) else [dict(f or {}) for f in final]
    mask = infos.get("_final_info")
    if mask is not None:
        mask = _to_numpy(mask, bool).reshape(n)
        rows = [row if mask[i] else {} for i, row in enumerate(rows)]
    return rows


def to_sb3(env: VectorEnv | str, num_envs: int | None = None, **env_kwargs: Any) -> SB3VecEnv:
    """A Stable-Baselines3 ``VecEnv`` of a glimpse task's id, or of a batched gymnasium ``VectorEnv`` (SAME_STEP).

    Given an id (or a task name of :data:`envs.TASKS`), it makes the batched env itself with the autoreset
    SB3 needs: ``gym.make_vec(id, num_envs=num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs)``.
    Given a ``VectorEnv``, it wraps it as it is (it must already be in SAME_STEP mode)::

        venv = to_sb3("glimpse/MNIST-v0", num_envs=16, glimpse_size=8, scales=3)
        model = PPO("MultiInputPolicy", venv,
                    policy_kwargs=dict(features_extractor_class=GlimpseExtractor,
                                       features_extractor_kwargs=dict(features_dim=256)))

        # the same env, made by hand (any SAME_STEP VectorEnv, torch or numpy batches, is accepted)
        venv = to_sb3(gym.make_vec("glimpse/MNIST-v0", num_envs=16, glimpse_size=8, scales=3,
                                   autoreset_mode=AutoresetMode.SAME_STEP))

    Arguments:
        env: a registered glimpse id (``"glimpse/MNIST-v0"``) or task name (``"mnist"``); or a gymnasium
            ``VectorEnv`` whose ``metadata["autoreset_mode"]`` is ``AutoresetMode.SAME_STEP``.
        num_envs: with an id, the number of parallel episodes (required); not accepted with a ``VectorEnv``.
        **env_kwargs: with an id, the env's options (retina, action mode, task options, ``device``, ...);
            ``autoreset_mode`` may only be SAME_STEP.

    Returns:
        A :class:`SB3VecEnv`; SB3 wrappers such as ``VecMonitor`` and ``VecNormalize`` stack on it.
    """
    if not isinstance(env, str):
        if num_envs is not None or env_kwargs:
            given = ["num_envs"] * (num_envs is not None) + sorted(env_kwargs)
            raise TypeError(f"to_sb3 takes num_envs and env kwargs only with an id, to make the env; got a "
                            f"{type(env).__name__} and {given}")
        return SB3VecEnv(env)
    try:
        env_id = task_of(env).env_id
    except ValueError as error:
        raise ValueError(f"to_sb3 makes glimpse envs by id or task name ({error}); for another env, pass "
                         "its SAME_STEP VectorEnv") from None
    if num_envs is None:
        raise ValueError(f"to_sb3({env!r}) needs num_envs=N, the number of parallel episodes")
    num_envs = check_positive_int(num_envs, "num_envs")
    mode = env_kwargs.pop("autoreset_mode", AutoresetMode.SAME_STEP)
    if not _is_same_step(mode):
        raise ValueError(f"to_sb3 makes the env with autoreset_mode=AutoresetMode.SAME_STEP, the only mode SB3 "
                         f"learns from; got autoreset_mode={mode!r}")
    return SB3VecEnv(gym.make_vec(env_id, num_envs=num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs))


def _is_same_step(mode: Any) -> bool:
    """Whether ``mode`` is ``AutoresetMode.SAME_STEP`` or its value ``"SameStep"``."""
    try:
        return AutoresetMode(mode) == AutoresetMode.SAME_STEP
    except ValueError:
        return False


# ----------------------------------------------------------------------------------------------------------
# Features extractor
# ----------------------------------------------------------------------------------------------------------


class GlimpseExtractor(BaseFeaturesExtractor):
    """Features of a glimpse observation: a small CNN on the glimpse, an MLP on the location, concatenated.

    Convention:
        ``obs["glimpse"]``: ``(B, S, C, h, w)`` float in [0, 1], S retina scales, any ``h, w >= 1`` (the convs
        use padding 1). Its S*C planes are stacked as channels. ``obs["location"]``: ``(B, 2)`` in [-1, 1],
        ``(x, y)``. Any other key is flattened as SB3 preprocesses it (Box as float, Discrete one-hot) and
        concatenated as is. Output: ``(B, features_dim)``, after a ReLU.

    Scale gain:
        The retina area-averages: scale ``k`` shows ``factor**k x factor**k`` canvas pixels per glimpse
        pixel, so an isolated 1-px object reads ``1 / factor**(2k)`` there (Catch's ball and paddle: 1/16 at
        the coarsest of 3 scales, beside ReLU units initialised for inputs near 1). ``scale_gain = g``
        multiplies scale ``k`` by ``g**k`` before the convolutions; ``g = factor**2`` (4 for the retina's
        default factor 2) makes every scale's pixels sums over their canvas area, so that object reads 1 at
        every scale. The default 1 leaves the glimpse as it is.

    Layers::

        glimpse  -> x scale_gain**k (scale k)
                 -> Conv3x3(S*C -> channels) ReLU -> Conv3x3 stride 2 (channels -> channels) ReLU
                 -> Flatten -> Linear(-> hidden) ReLU                                     # (B, hidden)
        location -> Linear(2 -> hidden) ReLU                                              # (B, hidden)
        [glimpse, location, other keys flattened] -> Linear(-> features_dim) ReLU         # (B, features_dim)

    Sizes after the convolutions and of the concatenation are found with one dummy forward pass.

    Arguments:
        observation_space: the single-env Dict space with Box ``"glimpse"`` ``(S, C, h, w)`` and Box
            ``"location"`` ``(2,)`` (what :func:`to_sb3` exposes as ``observation_space``).
        features_dim: output width, read by SB3's policy and value heads.
        hidden: width of each of the glimpse and location branches.
        channels: conv channels; 32 suffices for glimpses of at most ~12x12 pixels.
        scale_gain: scale ``k`` of the glimpse is multiplied by ``scale_gain**k`` (see Scale gain).

    Use::

        policy_kwargs=dict(features_extractor_class=GlimpseExtractor,
                           features_extractor_kwargs=dict(features_dim=256))
    """

    def __init__(self, observation_space: spaces.Dict, features_dim: int = 256, hidden: int = 128, channels: int = 32,
                 scale_gain: float = 1.0):
        _check_glimpse_space(observation_space)
        check_positive_int(features_dim, "features_dim")
        check_positive_int(hidden, "hidden")
        check_positive_int(channels, "channels")
        super().__init__(observation_space, features_dim)
        scales, colors, _, _ = observation_space["glimpse"].shape
        self.extra_keys = [k for k in observation_space.spaces if k not in ("glimpse", "location")]
        # (S, 1, 1, 1), glimpse.retina.scale_gains (it refuses a bad gain)
        self.register_buffer("scale_gains", scale_gains(scales, scale_gain), persistent=False)

        self.glimpse_cnn = nn.Sequential(
            nn.Flatten(1, 2),  # (B, S*C, h, w)
            nn.Conv2d(scales * colors, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1),  # (B, channels, ceil(h/2), ceil(w/2))
            nn.ReLU(),
            nn.Flatten(),
        )
        # One dummy forward pass finds the conv output and the width of every other key.
        with torch.no_grad():  # zeros, not space.sample(): sampling would advance the space's RNG
            dummy = {k: torch.as_tensor(np.zeros((1, *s.shape), s.dtype)) for k, s in observation_space.spaces.items()}
            dummy = preprocess_obs(dummy, observation_space, normalize_images=False)
            n_glimpse = self.glimpse_cnn(dummy["glimpse"]).shape[1]
            n_location = dummy["location"].flatten(1).shape[1]
            n_extra = sum(dummy[k].flatten(1).shape[1] for k in self.extra_keys)
        self.glimpse_fc = nn.Sequential(nn.Linear(n_glimpse, hidden), nn.ReLU())
        self.location_fc = nn.Sequential(nn.Linear(n_location, hidden), nn.ReLU())
        self.project = nn.Sequential(nn.Linear(2 * hidden + n_extra, features_dim), nn.ReLU())

    def forward(self, observations: dict[str, Tensor]) -> Tensor:
        glimpse = observations["glimpse"] * self.scale_gains  # (B, S, C, h, w)
        g = self.glimpse_fc(self.glimpse_cnn(glimpse))  # (B, hidden)
        loc = self.location_fc(observations["location"].flatten(1))  # (B, hidden)
        extras = [observations[k].flatten(1).float() for k in self.extra_keys]  # (B, d_k) each
        return self.project(torch.cat([g, loc, *extras], dim=1))  # (B, features_dim)


def _check_glimpse_space(space: Any) -> None:
    hint = "GlimpseExtractor reads the single-env Dict space {'glimpse': Box (S, C, h, w), 'location': Box (2,), ...}"
    if not isinstance(space, spaces.Dict):
        raise ValueError(
            f"{hint}; got {space}. Use policy 'MultiInputPolicy' on a glimpse env, or SB3's default extractor "
            "for other observations."
        )
    for key in ("glimpse", "location"):
        if key not in space.spaces or not isinstance(space[key], spaces.Box):
            raise ValueError(f"{hint}; key {key!r} is missing or not a Box in {space}.")
    batched = " Is this the batched space? Pass single_observation_space (to_sb3 does)."
    glimpse, location = space["glimpse"].shape, space["location"].shape
    if len(glimpse) != 4:
        raise ValueError(f"{hint}; got glimpse shape {glimpse}.{batched if len(glimpse) == 5 else ''}")
    if len(location) != 1:
        raise ValueError(f"{hint}; got location shape {location}.{batched if len(location) == 2 else ''}")
