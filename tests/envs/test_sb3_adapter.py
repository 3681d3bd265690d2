"""envs/sb3.py: the SB3 VecEnv adapter (to_sb3) and GlimpseExtractor.

The real glimpse envs live elsewhere; here a tiny toy env, single and natively batched, follows the same
contract: Dict obs {"glimpse": (1, 1, 4, 4) in [0, 1], "location": (2,) in [-1, 1]}, Box or MultiDiscrete
actions, SAME_STEP autoreset with final_obs / final_info, episodes of 1..4 steps that end by termination,
truncation or both.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecMonitor, VecNormalize
from stable_baselines3.common.vec_env.util import obs_space_info

from envs.sb3 import GlimpseExtractor, SB3VecEnv, to_sb3

N_ENVS = 4
MAX_LEN = 4
ENDINGS = ("terminate", "truncate", "both")



def _spaces(discrete: bool) -> tuple[spaces.Dict, spaces.Space]:
    obs = spaces.Dict(
        {
            "glimpse": spaces.Box(0.0, 1.0, (1, 1, 4, 4), np.float32),
            "location": spaces.Box(-1.0, 1.0, (2,), np.float32),
        }
    )
    act = spaces.MultiDiscrete([3, 3]) if discrete else spaces.Box(-1.0, 1.0, (2,), np.float32)
    return obs, act


def _location(location: np.ndarray, action: np.ndarray, discrete: bool) -> np.ndarray:
    """Next location: a move by half the action (MultiDiscrete {0, 1, 2} read as {-1, 0, 1}), kept in [-1, 1]."""
    move = np.asarray(action).astype(np.float32) - 1.0 if discrete else np.clip(action, -1.0, 1.0)
    return np.clip(location + np.float32(0.5) * move.astype(np.float32), -1.0, 1.0).astype(np.float32)


class ToyGlimpseEnv(gym.Env):
    """One episode: a random label, length (1..MAX_LEN) and ending; each step moves the location by half the
    action and draws a new random glimpse.

    Reset draws, in order, label, length, ending, glimpse; step draws a glimpse. Reward =
    location[0] + label / 10. Reset info {"label"}; step info {"label", "t"}.
    """

    metadata = {"render_modes": []}

    def __init__(self, discrete: bool = False):
        self.discrete = discrete
        self.observation_space, self.action_space = _spaces(discrete)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        rng = self.np_random
        self.label = int(rng.integers(10))
        self.length = int(rng.integers(1, MAX_LEN + 1))
        self.ending = ENDINGS[int(rng.integers(3))]
        self.t = 0
        self.location = np.zeros(2, np.float32)
        self.glimpse = rng.random((1, 1, 4, 4)).astype(np.float32)
        return self._obs(), {"label": self.label}

    def step(self, action):
        self.location = _location(self.location, action, self.discrete)
        self.t += 1
        self.glimpse = self.np_random.random((1, 1, 4, 4)).astype(np.float32)
        reward = float(np.float32(self.location[0]) + np.float32(self.label / 10))
        over = self.t >= self.length
        terminated = over and self.ending in ("terminate", "both")
        truncated = over and self.ending in ("truncate", "both")
        return self._obs(), reward, terminated, truncated, {"label": self.label, "t": self.t}

    def _obs(self):
        return {"glimpse": self.glimpse.copy(), "location": self.location.copy()}


class ToyGlimpseVectorEnv(gym.vector.VectorEnv):
    """N ToyGlimpseEnv episodes as torch tensors, SAME_STEP autoreset; env i draws from its own generator
    seeded ``seed + i``, so it matches N single envs seeded alike.

    Observations are the env's own buffers, overwritten in place by the next step (as a fast env would);
    ``final_obs`` is a batch laid out like the observation (rows valid where ``_final_obs``).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs=N_ENVS, discrete=False, autoreset_mode=AutoresetMode.SAME_STEP, device="cpu"):
        self.metadata = {"autoreset_mode": autoreset_mode}
        self.num_envs = num_envs
        self.discrete = discrete
        self.single_observation_space, self.single_action_space = _spaces(discrete)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.glimpse = torch.zeros(num_envs, 1, 1, 4, 4, device=device)
        self.location = torch.zeros(num_envs, 2, device=device)
        self.label = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.length = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.ending = torch.zeros(num_envs, dtype=torch.int64, device=device)  # index into ENDINGS
        self.t = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.rngs = [seeding.np_random()[0] for _ in range(num_envs)]

    def _reset_one(self, i: int) -> None:
        rng = self.rngs[i]
        self.label[i] = int(rng.integers(10))
        self.length[i] = int(rng.integers(1, MAX_LEN + 1))
        self.ending[i] = int(rng.integers(3))
        self.t[i] = 0
        self.location[i] = 0.0
        self.glimpse[i] = torch.from_numpy(rng.random((1, 1, 4, 4)).astype(np.float32))

    def _obs(self):
        return {"glimpse": self.glimpse, "location": self.location}

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rngs = [seeding.np_random(seed + i)[0] for i in range(self.num_envs)]
        for i in range(self.num_envs):
            self._reset_one(i)
        everyone = torch.ones(self.num_envs, dtype=torch.bool, device=self.t.device)
        return self._obs(), {"label": self.label.clone(), "_label": everyone}

    def step(self, actions):
        actions = actions.cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        self.location[:] = torch.from_numpy(_location(self.location.cpu().numpy(), actions, self.discrete))
        self.t += 1
        for i in range(self.num_envs):
            self.glimpse[i] = torch.from_numpy(self.rngs[i].random((1, 1, 4, 4)).astype(np.float32))
        # label / 10 in float64, then rounded: CUDA divides by a scalar through its reciprocal, which in
        # float32 can land one ulp away from the CPU's quotient; the adapter, not the toy's arithmetic, is tested.
        rewards = self.location[:, 0] + (self.label.double() / 10).float()
        over = self.t >= self.length
        terminated = over & (self.ending != ENDINGS.index("truncate"))
        truncated = over & (self.ending != ENDINGS.index("terminate"))
        done = terminated | truncated
        infos = {"label": self.label.clone(), "_label": torch.ones_like(done), "t": self.t.clone(), "_t": ~done}
        if done.any():
            infos["final_obs"] = {k: v.clone() for k, v in self._obs().items()}
            infos["_final_obs"] = done.clone()
            infos["final_info"] = {"label": self.label.clone(), "_label": done.clone(), "t": self.t.clone()}
            infos["final_info"]["_t"] = done.clone()
            infos["_final_info"] = done.clone()
            for i in torch.nonzero(done).flatten().tolist():
                self._reset_one(i)
            infos["label"] = self.label.clone()  # an ended env's top-level info is its reset info
        return self._obs(), rewards, terminated, truncated, infos


def _make_vector(kind: str, discrete: bool = False, num_envs: int = N_ENVS):
    if kind == "torch":
        return ToyGlimpseVectorEnv(num_envs, discrete)
    fns = [lambda: ToyGlimpseEnv(discrete) for _ in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def _assert_same(a, b, where: str) -> None:
    """Exact equality of (nested) obs / info values."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), f"{where}: {type(b).__name__} is not a numpy array"
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# ----------------------------------------------------------------------------------------------------------
# (a) the adapter steps exactly like SB3's DummyVecEnv over N single envs seeded alike
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("discrete", [False, True], ids=["box", "multidiscrete"])
@pytest.mark.parametrize("kind", ["torch", "gymnasium-sync"])
def test_matches_dummy_vec_env(kind, discrete):
    ours = to_sb3(_make_vector(kind, discrete))
    ref = DummyVecEnv([lambda: ToyGlimpseEnv(discrete) for _ in range(N_ENVS)])
    assert ours.num_envs == ref.num_envs
    assert ours.observation_space == ref.observation_space and ours.action_space == ref.action_space
    ours.seed(7)
    ref.seed(7)
    _assert_same(ours.reset(), ref.reset(), "reset obs")
    _assert_same(ours.reset_infos, ref.reset_infos, "reset_infos")

    ref.action_space.seed(0)
    seen = {"terminated": 0, "truncated": 0}
    for step in range(40):
        actions = np.stack([ref.action_space.sample() for _ in range(N_ENVS)])
        obs, rewards, dones, infos = ours.step(actions)
        ref_obs, ref_rewards, ref_dones, ref_infos = ref.step(actions)
        _assert_same(obs, ref_obs, f"step {step} obs")
        _assert_same(rewards, ref_rewards, f"step {step} rewards")
        _assert_same(dones, ref_dones, f"step {step} dones")
        _assert_same(infos, ref_infos, f"step {step} infos")
        _assert_same(ours.reset_infos, ref.reset_infos, f"step {step} reset_infos")
        for info, done in zip(infos, dones):
            if done:
                seen["truncated" if info["TimeLimit.truncated"] else "terminated"] += 1
    # The run covers episodes ended by termination and by truncation.
    assert seen["terminated"] > 0 and seen["truncated"] > 0, seen


def test_terminated_and_truncated_together_is_not_a_time_limit():
    venv = to_sb3(ToyGlimpseVectorEnv(N_ENVS))
    venv.seed(3)
    venv.reset()
    inner = venv.vector_env
    inner.length[:] = 1
    inner.ending[:] = torch.tensor([0, 1, 2, 2])  # terminate, truncate, both, both
    _, _, dones, infos = venv.step(np.zeros((N_ENVS, 2), np.float32))
    assert dones.tolist() == [True] * N_ENVS
    assert [info["TimeLimit.truncated"] for info in infos] == [False, True, False, False]
    assert all("terminal_observation" in info for info in infos)


# ----------------------------------------------------------------------------------------------------------
# (b) numpy copies, never views of the env's tensors
# ----------------------------------------------------------------------------------------------------------


def test_returns_numpy_copies():
    venv = to_sb3(ToyGlimpseVectorEnv(N_ENVS))
    venv.seed(1)
    obs = venv.reset()
    env = venv.vector_env
    assert all(isinstance(v, np.ndarray) for v in obs.values())
    assert not np.shares_memory(obs["glimpse"], env.glimpse.numpy())
    assert not np.shares_memory(obs["location"], env.location.numpy())
    kept = copy.deepcopy(obs)

    terminal = None
    for _ in range(3 * MAX_LEN):
        new_obs, rewards, dones, infos = venv.step(np.full((N_ENVS, 2), 0.5, np.float32))
        assert rewards.dtype == np.float32 and dones.dtype == bool
        if terminal is None and dones.any():
            i = int(np.flatnonzero(dones)[0])
            terminal = infos[i]["terminal_observation"]
            kept_terminal = copy.deepcopy(terminal)
    _assert_same(obs, kept, "the reset obs after later steps (the env overwrote its buffers in place)")
    assert terminal is not None, "no episode ended; the toy env's episodes last at most MAX_LEN steps"
    _assert_same(terminal, kept_terminal, "terminal_observation after later steps")


def test_mutating_returned_arrays_changes_nothing():
    def run(mutate: bool):
        venv = to_sb3(ToyGlimpseVectorEnv(N_ENVS))
        venv.seed(5)
        out = [venv.reset()]
        for _ in range(12):
            obs, rewards, dones, infos = venv.step(np.full((N_ENVS, 2), -0.25, np.float32))
            out.append(copy.deepcopy((obs, rewards, dones, infos)))
            if mutate:
                for array in (*obs.values(), rewards):
                    array[...] = 99
                for info in infos:
                    for array in info.get("terminal_observation", {}).values():
                        array[...] = 99
        return out

    mutated, untouched = run(mutate=True), run(mutate=False)
    _assert_same(mutated[0], untouched[0], "reset obs")
    for step, (a, b) in enumerate(zip(mutated[1:], untouched[1:])):
        _assert_same(a, b, f"step {step} (obs, rewards, dones, infos)")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_env_gives_the_same_numpy_results():
    def run(device):
        venv = to_sb3(ToyGlimpseVectorEnv(N_ENVS, device=device))
        venv.seed(2)
        out = [venv.reset()]
        for _ in range(3 * MAX_LEN):
            out.append(venv.step(np.full((N_ENVS, 2), 0.5, np.float32)))
        return out

    _assert_same(run("cuda"), run("cpu"), "cuda vs cpu run")


# ----------------------------------------------------------------------------------------------------------
# (c) SB3's VecEnv contracts and wrappers
# ----------------------------------------------------------------------------------------------------------


def test_sb3_vec_env_contracts_and_wrappers():
    venv = to_sb3(ToyGlimpseVectorEnv(N_ENVS))
    keys, shapes, dtypes = obs_space_info(venv.observation_space)
    obs = venv.reset()
    for key in keys:
        assert obs[key].shape == (N_ENVS, *shapes[key]) and obs[key].dtype == dtypes[key], key

    wrapped = VecNormalize(VecMonitor(VecCheckNan(venv, raise_exception=True)), gamma=0.9)
    wrapped.seed(0)
    obs = wrapped.reset()
    episodes = 0
    for _ in range(20):
        actions = np.stack([venv.action_space.sample() for _ in range(N_ENVS)])
        obs, rewards, dones, infos = wrapped.step(actions)
        assert set(obs) == {"glimpse", "location"} and rewards.shape == dones.shape == (N_ENVS,)
        for info, done in zip(infos, dones):
            assert ("episode" in info) == done  # VecMonitor's episode stats, from the adapter's dones
            if done:
                episodes += 1
                assert set(info["terminal_observation"]) == {"glimpse", "location"}
    assert episodes > 0

    assert venv.get_attr("num_envs") == [N_ENVS] * N_ENVS
    assert venv.get_attr("num_envs", indices=[1, 2]) == [N_ENVS, N_ENVS]
    assert venv.has_attr("single_action_space") and not venv.has_attr("no_such_attribute")
    venv.set_attr("discrete", False)
    with pytest.raises(NotImplementedError, match="indices=None"):
        venv.set_attr("discrete", False, indices=[0])
    with pytest.raises(NotImplementedError, match="indices=None"):
        venv.env_method("reset", indices=0)
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * N_ENVS
    wrapped.close()


def test_wrapper_chain_and_episode_stats_of_gymnasium_wrappers():
    inner = _make_vector("gymnasium-sync")
    stats = gym.wrappers.vector.RecordEpisodeStatistics(inner)
    venv = to_sb3(stats)
    assert venv.env_is_wrapped(gym.wrappers.vector.RecordEpisodeStatistics) == [True] * N_ENVS
    assert venv.get_attr("autoreset_mode") == [AutoresetMode.SAME_STEP] * N_ENVS  # found on the inner env
    venv.seed(0)
    venv.reset()
    for _ in range(3 * MAX_LEN):
        _, _, dones, infos = venv.step(np.zeros((N_ENVS, 2), np.float32))
        for info, done in zip(infos, dones):
            # Stats that a vector wrapper adds on the ending step reach SB3's info for that env.
            assert ("episode" in info) == done
            if done:
                assert isinstance(info["episode"]["l"], int) and info["episode"]["l"] == info["t"]


def test_render_tiles_the_batched_frames():
    class Rendering(ToyGlimpseVectorEnv):
        render_mode = "rgb_array"

        def render(self):
            return tuple(np.full((4, 4, 3), i, np.uint8) for i in range(self.num_envs))

    venv = to_sb3(Rendering(N_ENVS))
    assert venv.render_mode == "rgb_array"
    image = venv.render("rgb_array")
    assert image.shape == (8, 8, 3) and image[4:, 4:].max() == N_ENVS - 1


def test_seed_and_options_reach_the_batched_reset():
    calls = []

    class Recording(ToyGlimpseVectorEnv):
        def reset(self, *, seed=None, options=None):
            calls.append((seed, options))
            return super().reset(seed=seed, options=options)

    venv = to_sb3(Recording(N_ENVS))
    venv.seed(11)
    venv.set_options({"difficulty": 2})
    venv.reset()
    venv.reset()
    assert calls == [(11, {"difficulty": 2}), (None, None)]
    venv.set_options([{"a": 1}, {"a": 2}, {"a": 1}, {"a": 1}])
    with pytest.raises(NotImplementedError, match="one options"):
        venv.reset()


# ----------------------------------------------------------------------------------------------------------
# (d, e) SB3 algorithms train on it with GlimpseExtractor (how well they learn: docs/results.md)
# ----------------------------------------------------------------------------------------------------------

POLICY_KWARGS = dict(
    features_extractor_class=GlimpseExtractor, features_extractor_kwargs=dict(features_dim=32, hidden=16)
)


def learn_and_check_it_trained(model, steps: int) -> None:
    """``model.learn(steps)``: every step taken, and the updates reached every network, GlimpseExtractor's
    included, leaving them finite. (Trains, not learns: the toy's glimpses are noise, there is nothing to
    learn; how well SB3 learns on the real tasks: docs/results.md.)"""
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(steps)
    assert model.num_timesteps == steps
    after = model.policy.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"features_extractor", "action_net", "value_net"} <= changed, sorted(changed)


@pytest.mark.parametrize("discrete", [False, True], ids=["box", "multidiscrete"])
def test_ppo_trains_and_acts(discrete):
    venv = VecMonitor(to_sb3(ToyGlimpseVectorEnv(N_ENVS, discrete)))
    model = PPO("MultiInputPolicy", venv, policy_kwargs=POLICY_KWARGS, n_steps=16, batch_size=32, n_epochs=2, seed=0)
    assert isinstance(model.policy.features_extractor, GlimpseExtractor)
    learn_and_check_it_trained(model, 64)
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (N_ENVS, 2)


def test_a2c_trains_and_acts():
    venv = to_sb3(ToyGlimpseVectorEnv(N_ENVS))
    model = A2C("MultiInputPolicy", venv, policy_kwargs=POLICY_KWARGS, n_steps=4, seed=0)
    learn_and_check_it_trained(model, 32)
    assert isinstance(model.policy.features_extractor, GlimpseExtractor)
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (N_ENVS, 2) and venv.action_space.contains(action[0])


@pytest.mark.parametrize("discrete", [False, True], ids=["box", "multidiscrete"])
def test_recurrent_ppo_trains(discrete):
    sb3_contrib = pytest.importorskip("sb3_contrib")
    venv = to_sb3(ToyGlimpseVectorEnv(N_ENVS, discrete))
    model = sb3_contrib.RecurrentPPO(
        "MultiInputLstmPolicy",
        venv,
        policy_kwargs=dict(**POLICY_KWARGS, lstm_hidden_size=16),
        n_steps=16,
        batch_size=32,
        n_epochs=2,
        seed=0,
    )
    learn_and_check_it_trained(model, 64)


# ----------------------------------------------------------------------------------------------------------
# (f) autoreset modes other than SAME_STEP, and other misuse, are refused with a fix
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED, "NextStep", None])
def test_rejects_other_autoreset_modes(mode):
    env = ToyGlimpseVectorEnv(N_ENVS, autoreset_mode=mode)
    if mode is None:
        env.metadata = {}
    with pytest.raises(ValueError, match="SAME_STEP") as error:
        to_sb3(env)
    assert "autoreset_mode" in str(error.value) and "reset transition" in str(error.value)


def test_rejects_gymnasium_default_next_step_and_single_envs():
    with pytest.raises(ValueError, match="SAME_STEP"):
        to_sb3(SyncVectorEnv([lambda: ToyGlimpseEnv() for _ in range(2)]))  # gymnasium's default is NEXT_STEP
    with pytest.raises(TypeError, match="DummyVecEnv"):
        to_sb3(ToyGlimpseEnv())


def test_string_same_step_mode_is_accepted():
    assert isinstance(to_sb3(ToyGlimpseVectorEnv(N_ENVS, autoreset_mode="SameStep")), SB3VecEnv)


def test_missing_final_obs_is_reported():
    class Forgetful(ToyGlimpseVectorEnv):
        def step(self, actions):
            obs, rewards, terminated, truncated, infos = super().step(actions)
            infos.pop("final_obs", None)
            infos.pop("_final_obs", None)
            return obs, rewards, terminated, truncated, infos

    venv = to_sb3(Forgetful(N_ENVS))
    venv.seed(0)
    venv.reset()
    with pytest.raises(RuntimeError, match="final_obs"):
        for _ in range(MAX_LEN):
            venv.step(np.zeros((N_ENVS, 2), np.float32))


# ----------------------------------------------------------------------------------------------------------
# (g) GlimpseExtractor shapes
# ----------------------------------------------------------------------------------------------------------


def _glimpse_space(scales: int, colors: int, size: int, extra: bool = False) -> spaces.Dict:
    keys = {
        "glimpse": spaces.Box(0.0, 1.0, (scales, colors, size, size), np.float32),
        "location": spaces.Box(-1.0, 1.0, (2,), np.float32),
    }
    if extra:
        keys["step"] = spaces.Box(0.0, 1.0, (3, 2), np.float32)
    return spaces.Dict(keys)


@pytest.mark.parametrize("size", [1, 2, 5, 8, 12])
@pytest.mark.parametrize("scales", [1, 2, 3])
@pytest.mark.parametrize("colors", [1, 3])
def test_extractor_output_shape(size, scales, colors):
    space = _glimpse_space(scales, colors, size)
    extractor = GlimpseExtractor(space, features_dim=24)
    batch = {k: torch.rand(5, *s.shape) for k, s in space.spaces.items()}
    out = extractor(batch)
    assert out.shape == (5, 24) and extractor.features_dim == 24


def test_extractor_concatenates_other_keys():
    space = _glimpse_space(2, 1, 6, extra=True)
    extractor = GlimpseExtractor(space, features_dim=8, hidden=4)
    assert extractor.project[0].in_features == 4 + 4 + 6
    batch = {k: torch.rand(3, *s.shape) for k, s in space.spaces.items()}
    assert extractor(batch).shape == (3, 8)
    # By hand: the projection of [glimpse branch, location branch, the extra key flattened], in that order.
    g = extractor.glimpse_fc(extractor.glimpse_cnn(batch["glimpse"] * extractor.scale_gains))
    loc = extractor.location_fc(batch["location"])
    expected = extractor.project(torch.cat([g, loc, batch["step"].reshape(3, 6)], dim=1))
    torch.testing.assert_close(extractor(batch), expected)
    with torch.no_grad():
        extractor.project[0].bias.fill_(5.0)  # ReLU open everywhere: every input reaches the output
    other = {**batch, "step": batch["step"] + 1.0}
    assert not torch.allclose(extractor(other), extractor(batch))  # the extra key is read, not dropped


def test_extractor_rejects_wrong_spaces_with_a_fix():
    with pytest.raises(ValueError, match="MultiInputPolicy"):
        GlimpseExtractor(spaces.Box(0.0, 1.0, (3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="'location'"):
        GlimpseExtractor(spaces.Dict({"glimpse": spaces.Box(0.0, 1.0, (1, 1, 4, 4), np.float32)}))
    batched = batch_space(_glimpse_space(1, 1, 4), 3)
    with pytest.raises(ValueError, match="single_observation_space"):
        GlimpseExtractor(batched)
    with pytest.raises(ValueError, match="features_dim"):
        GlimpseExtractor(_glimpse_space(1, 1, 4), features_dim=0)


def test_scale_gain_multiplies_scale_k_by_gain_to_the_k():
    space = _glimpse_space(3, 1, 6)
    plain = GlimpseExtractor(space, features_dim=8, hidden=4)
    gained = GlimpseExtractor(space, features_dim=8, hidden=4, scale_gain=4.0)
    gained.load_state_dict(plain.state_dict())  # the same weights; the gains are not parameters
    batch = {k: torch.rand(5, *s.shape) for k, s in space.spaces.items()}
    by_hand = dict(batch, glimpse=batch["glimpse"] * torch.tensor([1.0, 4.0, 16.0]).view(1, 3, 1, 1, 1))
    torch.testing.assert_close(gained(batch), plain(by_hand))
    assert gained.state_dict().keys() == plain.state_dict().keys()  # models saved before scale_gain still load
    for bad in (0, -4.0, float("inf"), float("nan"), True, "4"):
        with pytest.raises(ValueError, match="scale_gain"):
            GlimpseExtractor(space, scale_gain=bad)


def test_scale_gain_four_reads_a_one_pixel_ball_as_one_at_every_scale():
    """Catch's 1-px ball through the paper's retina (6 px x 3, factor 2): area means 1, 1/4, 1/16; x 4**k: 1."""
    from glimpse import extract_glimpses

    screen = torch.zeros(1, 1, 24, 24, dtype=torch.uint8)
    screen[0, 0, 12, 12] = 255  # inside the 6, 12 and 24 px windows centred on the screen
    glimpse = extract_glimpses(screen, torch.zeros(1, 2), size=6, scales=3, factor=2)  # (1, 3, 1, 6, 6)
    peaks = glimpse.flatten(2).amax(dim=2)[0]
    torch.testing.assert_close(peaks, torch.tensor([1.0, 1 / 4, 1 / 16]))
    extractor = GlimpseExtractor(_glimpse_space(3, 1, 6), scale_gain=4.0)
    torch.testing.assert_close((glimpse * extractor.scale_gains).flatten(2).amax(dim=2)[0], torch.ones(3))


# ----------------------------------------------------------------------------------------------------------
# (h) the real Catch env through the adapter, as RecurrentPPO reads it
# ----------------------------------------------------------------------------------------------------------


def _catch_whole_screen(num_envs: int) -> SB3VecEnv:
    """Catch whose every glimpse is the whole 24x24 screen: a 24 px retina fixed at the centre (grid 1)."""
    import envs  # noqa: F401  (registers glimpse/...)

    vector_env = gym.make_vec("glimpse/Catch-v0", num_envs=num_envs, autoreset_mode=AutoresetMode.SAME_STEP,
                              glimpse_size=24, scales=1, action_mode="discrete", grid=1, start="center")
    return to_sb3(vector_env)


def test_catch_rewards_dones_and_terminal_observations():
    """Each 23-step game ends in one step for every env: reward 1 exactly when the ball's pixel on the bottom row
    of the terminal screen lies on the paddle (2 lit pixels there, not 3); the returned observation is already
    the next game's first screen (ball on the top row, paddle on columns 11 and 12)."""
    n = 16
    venv = _catch_whole_screen(n)
    assert venv.action_space.nvec.tolist() == [1, 1, 3]  # grid 1: the location is no choice
    venv.seed(3)
    venv.reset()
    rng = np.random.default_rng(0)
    for t in range(23):
        actions = np.stack([np.zeros(n), np.zeros(n), rng.integers(0, 3, n)], axis=1).astype(np.int64)
        obs, rewards, dones, infos = venv.step(actions)
        if t < 22:
            assert not dones.any() and not rewards.any()
            assert all("terminal_observation" not in info for info in infos)
    assert dones.all()
    for i in range(n):
        final = infos[i]["terminal_observation"]["glimpse"][0, 0]  # (24, 24) in [0, 1]
        lit_bottom = int((final[23] > 0.5).sum())
        assert lit_bottom in (2, 3) and (final[:23] > 0.5).sum() == 0  # the ball has reached the bottom row
        assert rewards[i] == float(lit_bottom == 2) == float(infos[i]["caught"])
        assert infos[i]["TimeLimit.truncated"] is False
        first = obs["glimpse"][i, 0, 0]
        assert (first[0] > 0.5).sum() == 1 and np.flatnonzero(first[23] > 0.5).tolist() == [11, 12]
    assert 0 < rewards.sum() < n  # with random moves some balls are caught, some missed (seed 3)


def test_recurrent_ppo_sees_catch_episode_starts_where_games_begin():
    """RecurrentPPO resets its LSTM on episode_starts (the previous step's dones): in a rollout of two whole
    games they must be set at steps 0 and 23 only, for every env, and rewards can come only at steps 22 and 45."""
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from stable_baselines3.common.callbacks import BaseCallback

    class Rollouts(BaseCallback):  # the buffer as collected: (n_steps, n_envs), before training flattens it
        def __init__(self):
            super().__init__()
            self.seen = []

        def _on_step(self):
            return True

        def _on_rollout_end(self):
            buffer = self.model.rollout_buffer
            self.seen.append((buffer.episode_starts.copy(), buffer.rewards.copy()))

    venv = _catch_whole_screen(4)
    model = sb3_contrib.RecurrentPPO(
        "MultiInputLstmPolicy", venv, n_steps=46, batch_size=46, n_epochs=1, seed=0,
        policy_kwargs=dict(features_extractor_class=GlimpseExtractor, lstm_hidden_size=8,
                           features_extractor_kwargs=dict(features_dim=8, hidden=4, channels=2)),
    )
    rollouts = Rollouts()
    model.learn(2 * 46 * 4, callback=rollouts)  # two rollouts: the second starts where the first one's games ended
    assert len(rollouts.seen) == 2
    expected = np.zeros((46, 4), np.float32)
    expected[[0, 23]] = 1.0
    for starts, rewards in rollouts.seen:
        np.testing.assert_array_equal(starts, expected)
        assert set(np.flatnonzero(rewards.any(axis=1)).tolist()) <= {22, 45}


# ----------------------------------------------------------------------------------------------------------
# (i) to_sb3 makes a glimpse env from its id, with the autoreset SB3 needs
# ----------------------------------------------------------------------------------------------------------

MNIST_KWARGS = dict(glimpse_size=8, scales=3, action_mode="discrete", num_glimpses=2)


@pytest.mark.parametrize("name", ["glimpse/MNIST-v0", "mnist"])
def test_to_sb3_from_an_id_steps_as_the_hand_built_env(name):
    """An id (or task name) gives the env one would build by hand: the single env's spaces, SAME_STEP, and the
    same observations, rewards, dones and infos from the same seed; every observation row lies in the space."""
    import envs  # noqa: F401  (registers glimpse/...)

    ours = to_sb3(name, num_envs=N_ENVS, **MNIST_KWARGS)
    hand = to_sb3(gym.make_vec("glimpse/MNIST-v0", num_envs=N_ENVS, autoreset_mode=AutoresetMode.SAME_STEP,
                               **MNIST_KWARGS))
    single = gym.make("glimpse/MNIST-v0", **MNIST_KWARGS)
    assert ours.observation_space == single.observation_space and ours.action_space == single.action_space
    assert ours.vector_env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    checked = VecCheckNan(ours, raise_exception=True)
    ours.seed(5)
    hand.seed(5)
    obs = checked.reset()
    _assert_same(obs, hand.reset(), "reset obs")
    single.action_space.seed(0)
    ended = 0
    for step in range(5):  # 2-glimpse episodes: two of them end, and the next ones begin
        for i in range(N_ENVS):
            assert single.observation_space.contains({k: v[i] for k, v in obs.items()}), f"step {step} row {i}"
        actions = np.stack([single.action_space.sample() for _ in range(N_ENVS)])
        obs, rewards, dones, infos = checked.step(actions)
        _assert_same((obs, rewards, dones, infos), hand.step(actions), f"step {step}")
        ended += int(dones.sum())
    assert ended == 2 * N_ENVS


def test_to_sb3_from_an_id_refuses_bad_input_in_one_line():
    import envs  # noqa: F401  (registers glimpse/...)

    with pytest.raises(ValueError, match=r"needs num_envs=N"):
        to_sb3("glimpse/MNIST-v0")
    with pytest.raises(ValueError, match=r"num_envs must be an integer >= 1; got 0"):
        to_sb3("glimpse/MNIST-v0", num_envs=0)
    with pytest.raises(ValueError, match=r"task must be one of .*got 'CartPole-v1'.*VectorEnv"):
        to_sb3("CartPole-v1", num_envs=2)
    for mode in (AutoresetMode.NEXT_STEP, "NextStep", AutoresetMode.DISABLED, "sometimes"):
        with pytest.raises(ValueError, match=r"only mode SB3 learns from; got autoreset_mode=") as error:
            to_sb3("glimpse/MNIST-v0", num_envs=2, autoreset_mode=mode)
        assert "\n" not in str(error.value)
    assert isinstance(to_sb3("mnist", num_envs=2, autoreset_mode="SameStep"), SB3VecEnv)
    with pytest.raises(ValueError, match=r"glimpse_size must be an integer >= 1; got 0"):  # the env's own words
        to_sb3("glimpse/MNIST-v0", num_envs=2, glimpse_size=0)
    with pytest.raises(TypeError, match=r"only with an id.*\['num_envs', 'scales'\]"):
        to_sb3(ToyGlimpseVectorEnv(N_ENVS), num_envs=N_ENVS, scales=2)


def test_a_next_step_glimpse_vector_env_keeps_its_error():
    import envs  # noqa: F401  (registers glimpse/...)

    with pytest.raises(ValueError, match=r"SAME_STEP.*to_sb3\('glimpse/\.\.\.', num_envs=N"):
        to_sb3(gym.make_vec("glimpse/MNIST-v0", num_envs=2))  # Gymnasium's default NEXT_STEP
