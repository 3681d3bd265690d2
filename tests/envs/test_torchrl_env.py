"""envs.torchrl_env: the batched glimpse env as a native TorchRL env, checked by TorchRL's own tools.

TorchRL's ``check_env_specs`` in both action modes; a ``Collector`` with ``RewardSum``; TorchRL's PPO loss
training a small actor-critic for a few hundred env steps; the same episodes as the Gymnasium vector env
from the same seed (including partial resets); and one-line errors for bad input.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from torch import nn

pytest.importorskip("torchrl")

from tensordict.nn import NormalParamExtractor, TensorDictModule  # noqa: E402
from torchrl.collectors import Collector  # noqa: E402
from torchrl.envs import RewardSum, TransformedEnv  # noqa: E402
from torchrl.envs.utils import check_env_specs, step_mdp  # noqa: E402
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator  # noqa: E402
from torchrl.objectives import ClipPPOLoss  # noqa: E402
from torchrl.objectives.value import GAE  # noqa: E402

from envs.torchrl_env import GlimpseTorchRLEnv  # noqa: E402

ID = "glimpse/MNIST-v0"
SMALL = dict(glimpse_size=8, scales=2, num_glimpses=3)  # 3 steps an episode, 2 scales of 8x8
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the offline-data notice
        yield


@pytest.mark.parametrize("action_mode", ["continuous", "discrete"])
def test_specs_pass_torchrl_check_and_mirror_the_gymnasium_spaces(action_mode):
    env = GlimpseTorchRLEnv(ID, num_envs=4, action_mode=action_mode, **SMALL)
    check_env_specs(env, seed=0)
    space = env.vector_env.single_action_space
    assert env.batch_size == torch.Size([4])
    assert env.full_action_spec["action"].shape == (4, *space.shape)
    assert env.full_reward_spec["reward"].shape == (4, 1)
    for key in ("done", "terminated", "truncated"):
        assert env.full_done_spec[key].shape == (4, 1) and env.full_done_spec[key].dtype == torch.bool
    if action_mode == "discrete":
        assert env.action_spec.nvec[0].tolist() == space.nvec.tolist()
    else:
        assert env.action_spec.space.low.min() == -1 and env.action_spec.space.high.max() == 1
    glimpse = env.vector_env.single_observation_space["glimpse"]
    assert env.observation_spec["glimpse"].shape == (4, *glimpse.shape)


def test_catch_by_task_name_passes_the_check_without_a_label():
    env = GlimpseTorchRLEnv("catch", num_envs=3, glimpse_size=4, action_mode="discrete")  # a game: no label
    check_env_specs(env, seed=1)
    assert set(env.observation_spec.keys()) == {"glimpse", "location"}


def test_user_videos_with_uint8_labels_pass_the_check_with_per_step_rewards():
    """The label spec is int64: so are the labels of a user's videos, whatever their dtype."""
    frames = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 1], dtype=torch.uint8)
    env = GlimpseTorchRLEnv("video", num_envs=2, video=(frames, labels), glimpse_size=4, reward_mode="log_prob")
    check_env_specs(env, seed=0)
    assert env.rollout(3)["next", "label"].dtype == torch.int64


@pytest.mark.parametrize("device", DEVICES)
def test_collector_and_reward_sum_score_each_episode(device):
    env = TransformedEnv(GlimpseTorchRLEnv(ID, num_envs=4, device=device, **SMALL), RewardSum())
    env.set_seed(0)
    collector = Collector(env, None, frames_per_batch=4 * 6, total_frames=4 * 12)  # 2 batches of 2 episodes each
    episodes = 0
    for batch in collector:
        assert batch.batch_size == (4, 6)
        assert all(t.device == torch.device(device) for t in batch.values(True, True))
        nxt = batch["next"]
        done, reward = nxt["done"].squeeze(-1), nxt["reward"].squeeze(-1)
        assert done.sum(1).tolist() == [2, 2, 2, 2]  # every 3rd step ends an episode
        # The env's rule, applied independently: 1 at an episode's end iff the decision scores' argmax is the label.
        decision = batch["action"][..., 2:].argmax(-1)
        assert torch.equal(reward, (done & (decision == nxt["label"])).float())
        assert (nxt["label"][~done] == -1).all() and ((nxt["label"][done] >= 0) & (nxt["label"][done] < 10)).all()
        # RewardSum's running return, at each episode end, is the sum of that episode's rewards.
        for row in range(4):
            start = 0
            for t in done[row].nonzero().flatten().tolist():
                assert nxt["episode_reward"][row, t, 0] == reward[row, start:t + 1].sum()
                start = t + 1
        episodes += int(done.sum())
    assert episodes == 16


class _Head(nn.Module):
    """An MLP over the flattened glimpse ``(..., S, C, g, g)`` and the location ``(..., 2)``."""

    def __init__(self, inputs: int, outputs: int, *tail: nn.Module) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inputs, 32), nn.Tanh(), nn.Linear(32, outputs), *tail)

    def forward(self, glimpse: torch.Tensor, location: torch.Tensor):
        return self.net(torch.cat([glimpse.flatten(-4), location], dim=-1))


def test_ppo_loss_trains_for_a_few_hundred_steps():
    torch.manual_seed(0)
    env = GlimpseTorchRLEnv(ID, num_envs=16, **SMALL)
    env.set_seed(0)
    inputs = 2 * 1 * 8 * 8 + 2
    actions = env.action_spec.shape[-1]
    actor = ProbabilisticActor(
        TensorDictModule(_Head(inputs, 2 * actions, NormalParamExtractor()), in_keys=["glimpse", "location"],
                         out_keys=["loc", "scale"]),
        spec=env.action_spec, in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": -1.0, "high": 1.0}, return_log_prob=True)
    critic = ValueOperator(_Head(inputs, 1), in_keys=["glimpse", "location"])
    loss_module = ClipPPOLoss(actor, critic, entropy_coeff=0.01)
    advantage = GAE(gamma=0.99, lmbda=0.95, value_network=critic)
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=3e-3)
    before = [p.detach().clone() for p in loss_module.parameters()]

    collector = Collector(env, actor, frames_per_batch=16 * 6, total_frames=16 * 6 * 4)  # 384 env steps
    updates = 0
    for batch in collector:
        with torch.no_grad():
            advantage(batch)
        data = batch.reshape(-1)
        for minibatch in data.split(32):
            losses = loss_module(minibatch)
            loss = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
            assert torch.isfinite(loss), {k: v.item() for k, v in losses.items() if v.numel() == 1}
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
    assert updates == 4 * 3
    assert all(not torch.equal(b, p) for b, p in zip(before, loss_module.parameters()))


def _numpy_obs(source, keys=("glimpse", "location")) -> dict[str, np.ndarray]:
    return {key: source[key].cpu().numpy() for key in keys}


@pytest.mark.parametrize("made", ["from id", "wrapping a vector env"])
@pytest.mark.parametrize("limits", [dict(num_glimpses=3), dict(num_glimpses=4, max_episode_steps=3)],
                         ids=["terminated", "truncated"])
def test_same_episodes_as_the_gymnasium_vector_env(made, limits):
    """Step for step against ``gym.make_vec(..., DISABLED)`` driven by hand, from the same seed and actions:
    a partial reset in the middle of the episodes (envs 0 and 2), then TorchRL's rollout, whose automatic
    partial resets (only the envs that ended) must match the Gymnasium env's ``reset_mask`` resets."""
    n, steps = 4, 10
    kwargs = dict(glimpse_size=8, scales=2, **limits)
    gym_vec = gym.make_vec(ID, num_envs=n, autoreset_mode=AutoresetMode.DISABLED, **kwargs)
    if made == "from id":
        env = GlimpseTorchRLEnv(ID, num_envs=n, **kwargs)
    else:
        env = GlimpseTorchRLEnv(gym.make_vec(ID, num_envs=n, autoreset_mode=AutoresetMode.DISABLED, **kwargs))
    gym_vec.action_space.seed(1)
    actions = [torch.as_tensor(gym_vec.action_space.sample()) for _ in range(steps + 1)]

    def assert_same(obs, td):
        for key, value in _numpy_obs(obs).items():
            np.testing.assert_array_equal(td[key].numpy(), value, err_msg=key)

    obs, _ = gym_vec.reset(seed=7)
    env.set_seed(7)
    td = env.reset()
    assert_same(obs, td)
    obs, reward, terminated, truncated, _ = gym_vec.step(actions[0])
    td = env.step(td.set("action", actions[0]))
    assert_same(obs, td["next"])
    mask = torch.tensor([True, False, True, False])
    obs, _ = gym_vec.reset(options={"reset_mask": mask})
    td = env.reset(step_mdp(td).set("_reset", mask.unsqueeze(-1)))
    assert_same(obs, td)

    feed = iter(actions[1:])
    rollout = env.rollout(steps, policy=lambda td: td.set("action", next(feed)), auto_reset=False, tensordict=td,
                          break_when_any_done=False)
    partial = 0
    for t in range(steps):
        obs, reward, terminated, truncated, info = gym_vec.step(actions[1 + t])
        step = rollout[:, t]
        assert_same(obs, step["next"])
        np.testing.assert_array_equal(step["next", "reward"].squeeze(-1).numpy(), reward.numpy())
        np.testing.assert_array_equal(step["next", "terminated"].squeeze(-1).numpy(), terminated.numpy())
        np.testing.assert_array_equal(step["next", "truncated"].squeeze(-1).numpy(), truncated.numpy())
        done = terminated | truncated
        np.testing.assert_array_equal(step["next", "done"].squeeze(-1).numpy(), done.numpy())
        label = np.where(done.numpy(), info["label"].numpy(), -1) if "label" in info else np.full(n, -1)
        np.testing.assert_array_equal(step["next", "label"].numpy(), label)
        if done.any():
            partial += int(not done.all())
            obs, _ = gym_vec.reset(options={"reset_mask": done})
            if t + 1 < steps:
                assert_same(obs, rollout[:, t + 1])
    assert partial >= 2  # the envs ended at different steps, so TorchRL's resets were partial
    assert bool(rollout["next", "truncated"].any()) == ("max_episode_steps" in limits)


def test_bad_input_fails_in_one_line():
    vec_same_step = gym.make_vec(ID, num_envs=2, autoreset_mode=AutoresetMode.SAME_STEP, **SMALL)
    vec_disabled = gym.make_vec(ID, num_envs=2, autoreset_mode=AutoresetMode.DISABLED, **SMALL)
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last CUDA device, on any machine
    cases = [
        (lambda: GlimpseTorchRLEnv("glimpse/NoSuchTask-v0", num_envs=2), "task must be one of"),
        (lambda: GlimpseTorchRLEnv(vec_same_step), "needs autoreset_mode=AutoresetMode.DISABLED"),
        (lambda: GlimpseTorchRLEnv(ID, num_envs=2, autoreset_mode=AutoresetMode.NEXT_STEP), "got <AutoresetMode.NEXT_STEP"),
        (lambda: GlimpseTorchRLEnv(ID, num_envs=2, device=missing), f"device '{missing}'"),
        (lambda: GlimpseTorchRLEnv(ID, num_envs=2, arrays="numpy", **SMALL), "arrays='numpy'"),
        (lambda: GlimpseTorchRLEnv(vec_disabled, glimpse_size=4), r"arguments \['glimpse_size'\] apply only when env is an id"),
        (lambda: GlimpseTorchRLEnv(vec_disabled, device="cpu"), r"arguments \['device'\] apply only"),
        (lambda: GlimpseTorchRLEnv(vec_disabled, num_envs=2), r"arguments \['num_envs'\] apply only"),
        (lambda: GlimpseTorchRLEnv(ID, num_envs=0), "num_envs must be an integer >= 1"),
    ]
    if not torch.cuda.is_available():
        cases.append((lambda: GlimpseTorchRLEnv(ID, num_envs=2, device="cuda"), "this torch has no CUDA device"))
    for make, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            make()
        assert "\n" not in str(error.value)
    with pytest.raises(TypeError, match="glimpse vector env"):
        GlimpseTorchRLEnv(gym.make_vec("CartPole-v1", num_envs=2))


@pytest.mark.e2e  # the script in a subprocess
def test_bench_torchrl_script_runs():
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_torchrl.py"
    args = ["--num-envs", "2", "--async-max-envs", "0", "--glimpse-size", "4", "--scales", "1", "--steps", "2",
            "--budget", "0.01", "--json"]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["rows"]
    assert row["num_envs"] == 2 and row["blocks"] >= 3
    assert set(row["steps_per_s"]) == {"native", "wrap-torch", "wrap-numpy"}
    for side in ("wrap-torch", "wrap-numpy"):
        assert row["ratio"][side] == pytest.approx(row["steps_per_s"]["native"] / row["steps_per_s"][side])
