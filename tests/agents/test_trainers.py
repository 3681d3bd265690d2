"""agents/trainers.py (``--algo reinforce|a2c|ppo``): exact re-scoring of a stored look, replay against
collection, the A2C gradient against a hand-built actor-critic loss, PPO's minibatches, non-finite values,
bad flags, the recipes (RAM's for Catch), and a short PPO run of scripts/train.py that logs its diagnostics and resumes exactly.

Small envs (6 px glimpses, 2 scales, 8 rows, Catch on an 8 px screen) and small agents keep each test
well under a second; the scripts/train.py runs are played in this process (tests/script_runs.py: the script's own
code, without a second interpreter's start, which is most of a short run's time on a loaded machine).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from gymnasium.vector import AutoresetMode
from torch.distributions import Normal

import envs
from agents import AGENTS, build, distributed, training
from agents.training import ConfigError
from agents.itemwise import HardItemAttention
from agents.ram import RAM
from agents.recurrent import rollout
from agents.recipes import RECIPES
from agents.trainers import AlgorithmOptions, PPOOptions, PPOTrainer, ReinforceTrainer, trainer_for
from envs import GlimpseVectorEnv
from glimpse.policies import GaussianLocationPolicy
from script_runs import in_process, killed_after_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

RETINA = dict(glimpse_size=6, scales=2, autoreset_mode=AutoresetMode.SAME_STEP)
SMALL = dict(hidden=16, glimpse_hidden=8)

# name: (env keywords, agent class, agent keywords)
SETUPS = {
    "ram-mnist": (dict(task="mnist", num_glimpses=4), RAM, {}),
    "ram-mnist-center": (dict(task="mnist", num_glimpses=4, start="center"), RAM, dict(location="center")),
    "ram-catch": (dict(task="catch", canvas=8), RAM, {}),
    "ram-catch-center": (dict(task="catch", canvas=8, start="center"), RAM, dict(location="center")),
    "item-hard": (dict(task="cluttered", canvas=36, distractors=2, num_glimpses=3, action_mode="discrete"),
                  HardItemAttention, {}),
}


def before_each_step(optimizer: torch.optim.Optimizer, record: Callable[[], Any]) -> list:
    """Make ``optimizer`` call ``record()`` just before each of its steps; returns the list of what it returned."""
    seen: list = []
    step = optimizer.step

    def recorded_step(*args, **kwargs):
        seen.append(record())
        return step(*args, **kwargs)

    optimizer.step = recorded_step
    return seen


def setup(name: str, seed: int = 0, num_envs: int = 8):
    """``(env, agent, first observation)``: the same for the same ``name`` and ``seed``."""
    env_kwargs, cls, agent_kwargs = SETUPS[name]
    torch.manual_seed(seed)
    env = GlimpseVectorEnv(num_envs, **RETINA, **env_kwargs)
    model = cls.from_env(env, **SMALL, **agent_kwargs)
    obs, _ = env.reset(seed=seed)
    return env, model, obs


# ------------------------------------------------------------------------------------------------
# 1. The pre-squash draw: the same sample, re-scored exactly even where tanh saturates
# ------------------------------------------------------------------------------------------------


def closed_form_log_prob(policy: GaussianLocationPolicy, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``log N(u; mu, std^2) - sum log(1 - tanh(u)^2)`` in float64, with ``1 - tanh^2 = 1 / cosh^2``."""
    mu, std, u = policy.mean(h).double(), policy.std.double(), u.double()
    return (Normal(mu, std).log_prob(u) + 2 * torch.log(torch.cosh(u))).sum(-1)


def test_sample_pre_squash_draws_and_scores_as_sample_bit_for_bit():
    torch.manual_seed(0)
    policy = GaussianLocationPolicy(hidden_size=5, std=0.3, learn_std=True)
    with torch.no_grad():
        policy.mean_head.weight.normal_()  # means spread over the square, some near its edges
    h = torch.randn(64, 5)
    torch.manual_seed(7)
    loc, log_prob = policy.sample(h)
    torch.manual_seed(7)
    loc2, u, log_prob2 = policy.sample_pre_squash(h)
    assert torch.equal(loc, loc2) and torch.equal(log_prob, log_prob2)
    assert torch.equal(torch.tanh(u), loc2) and not u.requires_grad and not loc2.requires_grad
    rescored = policy.log_prob_pre_squash(h, u)
    assert torch.equal(rescored, log_prob2)
    torch.testing.assert_close(rescored.double(), closed_form_log_prob(policy, h, u), atol=1e-5, rtol=1e-5)
    rescored.sum().backward()  # differentiable in the mean head and the learned std
    assert policy.mean_head.weight.grad.abs().sum() > 0 and policy.log_std.grad.abs().sum() > 0


def test_log_prob_pre_squash_is_finite_where_the_location_rounds_to_the_edge():
    policy = GaussianLocationPolicy(hidden_size=3)
    with torch.no_grad():
        policy.mean_head.weight.zero_()
        policy.mean_head.bias.copy_(torch.tensor([20.0, -20.0]))  # a saturated mean
    h = torch.randn(16, 3)
    torch.manual_seed(1)
    loc, u, log_prob = policy.sample_pre_squash(h)
    assert torch.equal(loc, torch.tensor([1.0, -1.0]).expand(16, 2))  # tanh(u) rounded to +-1 in float32
    rescored = policy.log_prob_pre_squash(h, u)
    assert torch.isfinite(rescored).all() and torch.equal(rescored, log_prob)
    torch.testing.assert_close(rescored.double(), closed_form_log_prob(policy, h, u), atol=1e-4, rtol=1e-6)
    # The stored location alone cannot be scored: atanh(+-1) is infinite.
    assert torch.isinf(torch.atanh(loc)).all()
    assert not torch.isfinite(policy(h).log_prob(loc.clone())).any()


# ------------------------------------------------------------------------------------------------
# 2. REINFORCE: the trainer is the hand-written loop
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ram-mnist", "ram-catch"])
def test_reinforce_trainer_is_the_hand_written_loop_bit_for_bit(name):
    def train(use_trainer: bool) -> dict[str, torch.Tensor]:
        env, model, obs = setup(name, seed=1)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        trainer = trainer_for(AlgorithmOptions(algo="reinforce"), model, optimizer, training.check_update)
        assert isinstance(trainer, ReinforceTrainer)
        for update in range(1, 4):
            if use_trainer:
                logged, obs = trainer.update(env, obs, update)
                assert {"loss_policy", "loss_baseline", "accuracy", "reward"} <= set(logged)
            else:
                losses, obs = model.train_losses(env, obs)
                optimizer.zero_grad()
                losses["loss"].backward()
                optimizer.step()
        return {k: v.clone() for k, v in model.state_dict().items()}

    initial = {k: v.clone() for k, v in setup(name, seed=1)[1].state_dict().items()}
    by_trainer, by_hand = train(True), train(False)
    assert by_trainer.keys() == by_hand.keys()
    for key in by_hand:
        assert torch.equal(by_trainer[key], by_hand[key]), key
    assert not torch.equal(by_hand["baseline.weight"], initial["baseline.weight"])  # it did train


# ------------------------------------------------------------------------------------------------
# 3. Replay reproduces collection
# ------------------------------------------------------------------------------------------------


def test_racnn_hard_replays_its_sampled_zooms_and_is_rewarded_by_the_probability_gain():
    cfg = training.Config(agent="racnn-hard", env="small-100", batch_size=6,
                          algorithm=AlgorithmOptions(algo="ppo"))
    cfg.options.racnn_input_size = 20
    env = training.make_env(cfg, "train", cfg.batch_size)
    torch.manual_seed(0)
    model = training.make_agent(cfg, env)
    obs, _ = env.reset(seed=0)
    labels = env.scene()[1].clone()
    images = model.scene_inputs(env)
    episodes, _ = model.collect(env, obs)
    assert int(model.updates) == 1  # one update of the schedule
    assert episodes.rewards.shape == (6, model.scales - 1) and bool(episodes.mask.all())
    # The rewards are the gains in true-class probability of the scales the sampled boxes produced.
    with torch.no_grad():
        probs = [y.softmax(dim=1)[torch.arange(6), labels] for y in
                 (model.cnns[s](episodes.inputs["scales"][:, s])[3] for s in range(model.scales))]
    torch.testing.assert_close(episodes.rewards, torch.stack(probs, 1)[:, 1:] - torch.stack(probs, 1)[:, :-1])
    assert torch.equal(episodes.inputs["labels"], labels)
    assert torch.equal(episodes.inputs["scales"][:, 0], model.run(images).inputs[0])  # scale 1: the whole canvas
    replayed = model.replay(episodes)
    torch.testing.assert_close(replayed.log_probs.detach(), episodes.log_probs, atol=1e-5, rtol=0)
    torch.testing.assert_close(replayed.values.detach(), episodes.values, atol=1e-6, rtol=0)
    assert float(replayed.loss_supervised) > 0 and set(replayed.entropies) == {"box"}


@pytest.mark.parametrize("name, expected_mask", [
    ("ram-mnist", "looks"),  # a look at steps 1..T-1, the class at T
    ("ram-catch", "all"),  # a look and a paddle move at every step (the paddle's at T)
    ("ram-catch-center", "all"),  # the paddle alone
    ("ram-mnist-center", "none"),  # nothing chosen: the classifier and the critic learn
    ("item-hard", "looks"),
])
def test_replay_before_any_update_gives_the_collected_log_probs_and_values(name, expected_mask):
    env, model, obs = setup(name)
    episodes, next_obs = model.collect(env, obs)
    n, steps = episodes.rewards.shape
    assert (n, steps) == (8, {"ram-mnist": 4, "ram-mnist-center": 4, "item-hard": 3}.get(name, 7))
    mask = {"looks": torch.arange(steps) < steps - 1, "all": torch.ones(steps, dtype=torch.bool),
            "none": torch.zeros(steps, dtype=torch.bool)}[expected_mask].expand(n, steps)
    assert episodes.mask.dtype == torch.bool and torch.equal(episodes.mask, mask)
    assert not episodes.values.requires_grad and not episodes.log_probs.requires_grad
    assert bool((episodes.log_probs[~mask] == 0).all())
    if mask.any():
        assert bool((episodes.log_probs[mask] != 0).all())
    if name == "item-hard":
        assert bool((episodes.log_probs[mask] < 0).all())  # log-probabilities of items
    assert next_obs["glimpse"].shape == obs["glimpse"].shape  # the next episodes' first glimpses

    replayed = model.replay(episodes)
    assert replayed.values.requires_grad
    torch.testing.assert_close(replayed.values.detach(), episodes.values, atol=1e-5, rtol=0)
    torch.testing.assert_close(replayed.log_probs.detach()[mask], episodes.log_probs[mask], atol=1e-5, rtol=0)
    assert bool((replayed.log_probs[~mask] == 0).all())
    if SETUPS[name][0]["task"] != "catch":  # the classifier's cross-entropy on the stored labels
        assert float(replayed.loss_supervised.detach()) > 0
    else:
        assert float(replayed.loss_supervised.detach()) == 0.0
    # A minibatch of rows replays as those rows of the whole batch.
    rows = torch.tensor([5, 1])
    part = model.replay(episodes.rows(rows))
    torch.testing.assert_close(part.values, replayed.values[rows], atol=1e-6, rtol=0)
    torch.testing.assert_close(part.log_probs, replayed.log_probs[rows], atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------
# 4. A2C's gradient is the actor-critic gradient
# ------------------------------------------------------------------------------------------------

GAMMA, LAMBDA, VALUE_COEF = 0.9, 0.7, 0.8


def gae_by_hand(rewards: list[list[float]], values: list[list[float]]) -> list[list[float]]:
    """GAE of whole episodes (nothing after the last step), one row and one step at a time."""
    advantages = []
    for r, v in zip(rewards, values):
        row, running = [0.0] * len(r), 0.0
        for t in reversed(range(len(r))):
            next_value = v[t + 1] if t + 1 < len(r) else 0.0
            running = r[t] + GAMMA * next_value - v[t] + GAMMA * LAMBDA * running
            row[t] = running
        advantages.append(row)
    return advantages


def per_step_of_the_joint_choice(agent, ro, looks: torch.Tensor, decisions: torch.Tensor | None):
    """By hand, a rollout's quantity (log-probability, entropy) of each step's joint choice ``(N, T)``: the looks
    ``l_1..l_{T-1}`` (``looks`` ``(N, T - 1)``, none at the last step) plus a per-step decision policy's
    (``decisions`` ``(N, T)``, Catch's paddle), and which steps make a choice at all."""
    n, steps = ro.rewards.shape
    joint, valid = torch.zeros(n, steps), torch.zeros(n, steps, dtype=torch.bool)
    if looks.shape[1] > 0 and agent.locator.policy is not None:
        joint = joint + F.pad(looks, (0, 1))
        valid[:, :-1] = True
    if decisions is not None:
        joint = joint + decisions
        valid[:] = True
    return joint, valid


@pytest.mark.parametrize("name, normalize", [("ram-mnist", False), ("ram-catch", False), ("item-hard", False),
                                             ("ram-mnist", True), ("ram-catch", True)])
def test_a2c_gradient_is_the_actor_critic_gradient_computed_by_hand(name, normalize):
    env, model, obs = setup(name, seed=2)
    twin_env, _, twin_obs = setup(name, seed=2)
    hand = copy.deepcopy(model)
    if name == "ram-catch":  # rewards at the last step only: make the critic's GAE non-trivial everywhere
        with torch.no_grad():
            for m in (model, hand):
                m.baseline.bias.fill_(0.3)
    options = AlgorithmOptions(algo="a2c", gamma=GAMMA, gae_lambda=LAMBDA, value_coef=VALUE_COEF, max_grad_norm=None,
                               normalize_advantages=normalize, entropy_coef=0.0, ppo_epochs=3, minibatches=4)
    captured: dict[str, torch.Tensor] = {}

    def check(losses, m, update):  # after backward(), before the step
        assert not captured, "a2c steps once per batch"
        captured.update({k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None})
        return training.check_update(losses, m, update)

    trainer = PPOTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), check, options.a2c())  # A2C: the preset of PPO
    torch.manual_seed(11)
    logged, _ = trainer.update(env, obs, 1)

    torch.manual_seed(11)
    ro, _ = rollout(hand, twin_env, twin_obs)  # the same episodes, with gradient
    values = ro.baselines  # (N, T), V(s_t) with its graph
    advantages = torch.tensor(gae_by_hand(ro.rewards.tolist(), values.detach().tolist()))
    returns = advantages + values.detach()
    joint, valid = per_step_of_the_joint_choice(hand, ro, ro.log_probs, ro.decision_log_probs)
    weights = advantages[valid]
    if normalize:  # standardised over the valid steps, with the population std
        weights = (weights - weights.mean()) / (weights.std(unbiased=False) + 1e-8)
    policy_loss = -(joint[valid] * weights).mean()
    critic_loss = 0.5 * ((values - returns) ** 2).mean()
    supervised = F.cross_entropy(ro.logits, ro.labels) if ro.logits is not None else torch.zeros(())
    (policy_loss + VALUE_COEF * critic_loss + supervised).backward()

    compared = 0
    for key, p in hand.named_parameters():
        want = p.grad if p.grad is not None else torch.zeros_like(p)
        got = captured.get(key, torch.zeros_like(p))
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5, msg=lambda m, k=key: f"{k}: {m}")
        compared += int(want.abs().sum() > 0)
    for module in (hand.locator, hand.baseline):  # the actor and the critic both got gradient
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert compared >= 6
    # The surrogate's value at ratio 1 is -mean(A) (its gradient, checked above, is -mean(A grad log pi)).
    assert logged["policy_loss"] == pytest.approx(-float(weights.mean()), abs=1e-5)
    assert logged["value_loss"] == pytest.approx(float(critic_loss.detach()), abs=1e-5)
    assert logged["advantage_std"] == pytest.approx(float(advantages.std()), abs=1e-5)
    assert logged["approx_kl"] == pytest.approx(0.0, abs=1e-6) and logged["clip_fraction"] == 0.0  # ratio 1


# ------------------------------------------------------------------------------------------------
# 5. PPO: E epochs of M minibatches of whole episodes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_envs, epochs, minibatches", [(8, 2, 4), (9, 3, 4), (6, 2, 4), (5, 1, 5)])
def test_ppo_steps_epochs_times_minibatches_on_disjoint_whole_episodes(num_envs, epochs, minibatches):
    env, model, obs = setup("ram-catch", num_envs=num_envs)
    collected, replays = [], []
    collect, replay = model.collect, model.replay

    def collect_with_ids(env, obs):
        episodes, obs = collect(env, obs)
        episodes.inputs["row"] = torch.arange(episodes.rewards.shape[0])  # replay ignores it; rows() keeps it
        collected.append(episodes)
        return episodes, obs

    def replay_and_record(batch):
        replays.append(batch)
        return replay(batch)

    model.collect, model.replay = collect_with_ids, replay_and_record
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = before_each_step(optimizer, lambda: 1)  # one entry per optimizer step
    options = PPOOptions(ppo_epochs=epochs, minibatches=minibatches)
    trainer = PPOTrainer(model, optimizer, training.check_update, options)
    for update in (1, 2):
        for seen in (collected, replays, steps):
            seen.clear()
        logged, obs = trainer.update(env, obs, update, progress=0.5)
        assert len(steps) == len(replays) == epochs * minibatches
        whole = collected[0]
        for epoch in range(epochs):
            batches = replays[epoch * minibatches:(epoch + 1) * minibatches]
            ids = [b.inputs["row"] for b in batches]
            assert all(len(i) > 0 for i in ids)
            assert sorted(torch.cat(ids).tolist()) == list(range(num_envs))  # disjoint, and covering the batch
            for b, i in zip(batches, ids):  # whole episodes: every step of those rows
                assert torch.equal(b.rewards, whole.rewards[i]) and torch.equal(b.mask, whole.mask[i])
                assert torch.equal(b.inputs["glimpses"], whole.inputs["glimpses"][i])
                assert torch.equal(b.log_probs, whole.log_probs[i]) and torch.equal(b.values, whole.values[i])
        for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
                     "advantage_std", "paddle_entropy", "location_entropy", "accuracy", "reward", "entropy_coef"):
            assert name in logged, name
        assert 0.0 <= logged["clip_fraction"] <= 1.0 and logged["approx_kl"] >= 0.0
    # a2c: one step per batch, whatever --ppo-epochs and --minibatches say
    steps.clear()
    a2c = trainer_for(AlgorithmOptions(algo="a2c", ppo_epochs=epochs, minibatches=minibatches), model, optimizer,
                       training.check_update)
    a2c.update(env, obs, 3)
    assert len(steps) == 1


def test_minibatches_are_checked_against_each_processes_share_of_the_batch(monkeypatch):
    """Under torchrun every process splits its own rows: 8 minibatches of a global 8 on 2 processes would
    silently make 4 steps each."""
    args = ["--agent", "ram", "--env", "catch", "--batch-size", "8", "--minibatches", "8"]
    assert training.parse_train_config(args).algorithm.minibatches == 8  # one process: 8 rows, 8 minibatches
    monkeypatch.setattr(distributed, "current", lambda: distributed.Context(0, 2, 0, 2))
    with pytest.raises(ConfigError, match=r"--minibatches 8 is more than the --batch-size 8 episodes it splits "
                                          r"\(4 per process of 2\)"):
        training.parse_train_config(args)


@pytest.mark.parametrize("args, words", [
    (["--algo", "reinforce", "--target-kl", "0.02"], "--target-kl is an option of --algo ppo; --algo reinforce"),
    (["--algo", "a2c", "--minibatches", "2"], "--minibatches is an option of --algo ppo; --algo a2c does not use it"),
    (["--algo", "reinforce", "--no-normalize-advantages"], "--normalize-advantages is an option of --algo a2c/ppo"),
])
def test_a_trainer_option_the_algo_does_not_use_is_refused_when_given(args, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        training.parse_train_config(["--agent", "ram", "--env", "mnist", *args])
    # A recipe's value for it stays (the cluttered-60 recipe's --target-kl under --algo reinforce): not given; but
    # it is not shown as the recipe's in use, which it is not.
    reinforce = training.parse_train_config(["--agent", "ram", "--env", "cluttered-60", "--algo", "reinforce"])
    assert reinforce.algorithm.target_kl == 0.05 and "target_kl" not in training.recipe_in_use(reinforce)
    assert "credit" in training.recipe_in_use(reinforce)


def test_one_glimpse_logs_no_look_entropy_rather_than_nan():
    env = GlimpseVectorEnv(4, **RETINA, task="mnist", num_glimpses=1)
    model = RAM.from_env(env, **SMALL)
    losses, _ = model.train_losses(env, env.reset(seed=0)[0])
    assert "policy_entropy" not in losses and all(torch.isfinite(v).all() for v in losses.values())
    several = setup("ram-mnist")
    assert torch.isfinite(several[1].train_losses(several[0], several[2])[0]["policy_entropy"])


def test_the_entropy_bonus_anneals_linearly_with_progress():
    env, model, obs = setup("ram-catch")
    options = PPOOptions(entropy_coef=0.02, entropy_coef_final=0.0)
    assert [options.entropy_coef_at(p) for p in (0.0, 0.25, 1.0, 2.0)] == pytest.approx([0.02, 0.015, 0.0, 0.0])
    trainer = PPOTrainer(model, torch.optim.Adam(model.parameters()), training.check_update, options)
    assert trainer.update(env, obs, 1, progress=0.25)[0]["entropy_coef"] == pytest.approx(0.015)  # what the loss used
    assert PPOOptions(entropy_coef=0.01).entropy_coef_at(0.7) == 0.01


# ------------------------------------------------------------------------------------------------
# 5b. PPO's update: the entropy bonus, the KL stop, gradient clipping and the clipped value loss
# ------------------------------------------------------------------------------------------------


def grads_of(m) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["ram-catch", "item-hard"])
def test_the_entropy_bonus_adds_minus_coef_times_the_gradient_of_the_mean_entropy(name):
    """A2C (one minibatch: the whole batch, ratio 1) with ``entropy_coef`` c and with 0 on the same episodes: the
    gradients differ by the gradient of ``-c * mean_valid(H)``, H the entropy of every policy that chose at a step,
    computed by hand from a rollout with gradient of the same episodes (not from replay)."""
    coef = 0.05

    def gradient(entropy_coef: float) -> dict[str, torch.Tensor]:
        env, model, obs = setup(name, seed=3)
        captured: dict[str, torch.Tensor] = {}

        def check(losses, m, update):  # after backward(), before clipping and the step
            assert not captured, "a2c steps once per batch"
            captured.update(grads_of(m))
            return training.check_update(losses, m, update)

        options = PPOOptions(entropy_coef=entropy_coef, max_grad_norm=None).a2c()
        trainer = PPOTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), check, options)
        torch.manual_seed(11)
        logged, _ = trainer.update(env, obs, 1)
        assert logged["entropy_coef"] == entropy_coef and logged["optimizer_steps"] == 1.0
        return captured

    with_bonus, without = gradient(coef), gradient(0.0)

    env, hand, obs = setup(name, seed=3)
    torch.manual_seed(11)
    ro, _ = rollout(hand, env, obs)  # the same episodes, with gradient
    entropy, valid = per_step_of_the_joint_choice(hand, ro, ro.entropies, ro.decision_entropies)
    (-coef * entropy[valid].sum() / valid.sum()).backward()

    reached = 0
    for key, p in hand.named_parameters():
        want = p.grad if p.grad is not None else torch.zeros_like(p)
        got = with_bonus.get(key, torch.zeros_like(p)) - without.get(key, torch.zeros_like(p))
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-4, msg=lambda m, k=key: f"{k}: {m}")
        reached += int(want.abs().max() > 1e-5)
    assert reached >= 2  # the bonus does move the policy's parameters (a test that can fail)


def kl_by_hand(replayed_log_probs: torch.Tensor, old_log_probs: torch.Tensor, mask: torch.Tensor) -> float:
    """Schulman's k3 estimate of KL(old || new), ``mean_valid((r - 1) - log r)``, in float64."""
    log_ratio = (replayed_log_probs.detach().double() - old_log_probs.double())[mask]
    return float(((log_ratio.exp() - 1.0) - log_ratio).mean())


@pytest.mark.parametrize("lr, target_kl, stops_after_an_epoch", [(0.05, 1e-4, False), (3e-3, 3e-3, True),
                                                                  (0.05, None, False)])
def test_the_kl_target_stops_the_update_at_the_first_minibatch_past_one_and_a_half_times_it(lr, target_kl,
                                                                                            stops_after_an_epoch):
    """The KL of every minibatch looked at is computed by hand from its replay; the update must make exactly the
    steps before the first minibatch (after the first step) whose KL exceeds ``1.5 * target_kl`` -- in a later
    epoch too -- and every ``E x M`` step without a target."""
    env, model, obs = setup("ram-catch", seed=4)
    looked: list[float] = []  # the KL of every minibatch replayed, by hand
    replay = model.replay

    def replay_and_measure(batch):
        replayed = replay(batch)
        looked.append(kl_by_hand(replayed.log_probs, batch.log_probs, batch.mask))
        return replayed

    model.replay = replay_and_measure
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = before_each_step(optimizer, lambda: 1)  # one entry per optimizer step
    epochs, minibatches = 4, 4
    options = PPOOptions(ppo_epochs=epochs, minibatches=minibatches, target_kl=target_kl)
    trainer = PPOTrainer(model, optimizer, training.check_update, options)
    torch.manual_seed(5)
    logged, _ = trainer.update(env, obs, 1)
    assert logged["optimizer_steps"] == float(len(steps))
    assert looked[0] == pytest.approx(0.0, abs=1e-9)  # the first minibatch is the policy that played: ratio 1
    if target_kl is None:
        assert len(steps) == len(looked) == epochs * minibatches
        assert max(looked) > 1.5 * 1e-4  # the same run goes past the KL target above: it is not what stops it
        return
    threshold = 1.5 * target_kl
    # The stop: the first minibatch after the first step whose KL exceeds 1.5 x target_kl, before its step.
    first = next(i for i, kl in enumerate(looked) if i >= 1 and kl > threshold)
    assert 1 <= len(steps) == first < epochs * minibatches
    assert len(looked) == first + 1  # nothing is replayed after the stop
    assert all(kl <= threshold for kl in looked[1:first])
    assert logged["approx_kl"] == pytest.approx(looked[first], rel=1e-4, abs=1e-7)
    assert logged["approx_kl"] > threshold
    if stops_after_an_epoch:  # the stop leaves the epochs' loop as well as the minibatches'
        assert minibatches < first


@pytest.mark.parametrize("max_grad_norm", [1e-3, None])
def test_gradients_are_clipped_to_max_grad_norm_before_the_step(max_grad_norm):
    env, model, obs = setup("ram-catch", seed=6)
    before_clip: list[dict[str, torch.Tensor]] = []

    def check(losses, m, update):  # after backward(), before the clipping
        before_clip.append(grads_of(m))
        return training.check_update(losses, m, update)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    at_step = before_each_step(optimizer, lambda: grads_of(model))  # the gradients each step applies
    options = PPOOptions(ppo_epochs=2, minibatches=2, max_grad_norm=max_grad_norm)
    trainer = PPOTrainer(model, optimizer, check, options)
    torch.manual_seed(7)
    trainer.update(env, obs, 1)
    assert len(before_clip) == len(at_step) == 4

    def norm(grads: dict[str, torch.Tensor]) -> float:
        return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))

    for raw, stepped in zip(before_clip, at_step):
        assert raw.keys() == stepped.keys()
        assert norm(raw) > 1e-2  # well above 1e-3: the clip has work to do
        # clip_grad_norm_: every gradient scaled by max_norm / (total norm + 1e-6) when that is below 1.
        scale = 1.0 if max_grad_norm is None else min(1.0, max_grad_norm / (norm(raw) + 1e-6))
        for key in raw:
            torch.testing.assert_close(stepped[key], raw[key] * scale, atol=1e-9, rtol=1e-5)
        if max_grad_norm is not None:
            assert norm(stepped) <= max_grad_norm + 1e-6
            assert norm(stepped) == pytest.approx(max_grad_norm, rel=1e-3)
        else:
            assert norm(stepped) > 1e-3


@pytest.mark.parametrize("value_clip", [0.01, None])
def test_the_value_loss_is_clipped_around_the_collected_values_by_value_clip(value_clip):
    """Three epochs of the whole batch: after the first step the critic has moved more than ``value_clip`` on some
    steps. At each step, the logged value loss and the critic head's gradient (it reaches nothing else: RAM's
    baseline reads a detached state) are PPO2's pessimistic clipped regression, computed by hand:
    ``0.5 * mean(max((V - R)^2, (V_old + clamp(V - V_old, -eps, eps) - R)^2))`` with ``R`` GAE's returns."""
    env, model, obs = setup("ram-catch", seed=2)
    with torch.no_grad():
        model.baseline.bias.fill_(0.3)  # a critic whose GAE is non-trivial at every step
    batches = []
    replay = model.replay

    def replay_and_record(batch):
        batches.append(batch)
        return replay(batch)

    model.replay = replay_and_record
    compared = {"clipped_differs": 0}

    def check(losses, m, update):  # after backward(), before the step: the parameters the replay used
        batch = batches[-1]
        twin = copy.deepcopy(m)
        twin.zero_grad(set_to_none=True)
        values = type(m).replay(twin, batch).values  # the current critic, with its graph
        old = batch.values
        returns = torch.tensor(gae_by_hand(batch.rewards.tolist(), old.tolist())) + old
        plain = (values - returns) ** 2
        squared = plain
        if value_clip is not None:
            clipped = old + (values - old).clamp(-value_clip, value_clip)
            squared = torch.maximum(plain, (clipped - returns) ** 2)
            if float((squared.mean() - plain.mean()).detach().abs()) > 2e-4:
                compared["clipped_differs"] += 1
        want = 0.5 * squared.mean()
        assert float(losses["value_loss"].detach()) == pytest.approx(float(want.detach()), rel=1e-5, abs=1e-7)
        (VALUE_COEF * want).backward()
        for key in ("baseline.weight", "baseline.bias"):
            got = dict(m.named_parameters())[key].grad
            torch.testing.assert_close(got, dict(twin.named_parameters())[key].grad, atol=1e-6, rtol=1e-4)
        return training.check_update(losses, m, update)

    options = PPOOptions(ppo_epochs=3, minibatches=1, value_clip=value_clip, gamma=GAMMA, gae_lambda=LAMBDA,
                         value_coef=VALUE_COEF, max_grad_norm=None, entropy_coef=0.0)
    trainer = PPOTrainer(model, torch.optim.Adam(model.parameters(), lr=0.05), check, options)
    torch.manual_seed(9)
    logged, _ = trainer.update(env, obs, 1)
    assert logged["optimizer_steps"] == 3.0 and len(batches) == 3
    if value_clip is not None:
        assert compared["clipped_differs"] >= 1  # the clip was active: a plain loss would fail above


# ------------------------------------------------------------------------------------------------
# 6. Non-finite values stop training
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_a_critic_outputting_nan_makes_the_update_raise_naming_the_values(algo):
    env, model, obs = setup("ram-catch")
    with torch.no_grad():
        model.baseline.weight.fill_(float("nan"))
    before = copy.deepcopy(model.state_dict())
    trainer = PPOTrainer(model, torch.optim.Adam(model.parameters()), training.check_update, (PPOOptions().a2c() if algo == "a2c" else PPOOptions()))
    with pytest.raises(ValueError, match=r"^values must be finite"):
        trainer.update(env, obs, 1)
    for key, value in model.state_dict().items():  # nothing was stepped
        assert torch.equal(value, before[key]) or key == "baseline.weight", key


def train(run_dir: Path, *args: str) -> tuple[int, str]:
    """``scripts/train.py --run-dir run_dir --torch-threads 1 *args`` run in this process (its code, its
    ``run_script``): ``(exit status, -SIGKILL if killed; stderr)``."""
    done = in_process("train.py", "--run-dir", str(run_dir), "--torch-threads", "1", *args)
    return done.returncode, done.stderr


def one_line(stderr: str, prefix: str, *words: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


CATCH_RUN = ["--agent", "ram", "--env", "catch", "--hidden", "16", "--train-images", "512", "--batch-size", "128",
             "--eval-images", "64", "--mc-samples", "1", "--checkpoint-every", "128"]


def test_train_stops_with_one_line_when_the_critic_turns_nan_after_the_first_update(tmp_path, monkeypatch):
    """The critic's weights are set to NaN between updates 1 and 2 (the first update of a fresh run is where
    train.py reports a failing forward pass as a bug, not a divergence)."""
    make = build.make_trainer

    def poisoned(cfg, model, optimizer, *args, **kwargs):
        trainer = make(cfg, model, optimizer, *args, **kwargs)
        update = trainer.update

        def update_then_poison(env, obs, n, progress=0.0):
            if n == 2:
                with torch.no_grad():
                    model.baseline.weight.fill_(float("nan"))
            return update(env, obs, n, progress)

        trainer.update = update_then_poison
        return trainer

    monkeypatch.setattr(build, "make_trainer", poisoned)  # where scripts/train.py imports it from
    run = tmp_path / "run"
    status, stderr = train(run, "--agent", "ram", "--env", "catch", "--hidden", "16", "--train-images", "96",
                           "--batch-size", "32", "--checkpoint-every", "32", "--eval-images", "32")
    assert status == 1, stderr
    one_line(stderr, "stopped:", "update 2", "values must be finite", "checkpoint.pt (32 images)", "no results.json")
    assert not (run / "results.json").exists()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["images_seen"] == 32 and all(torch.isfinite(t).all() for t in state["model"].values())


# ------------------------------------------------------------------------------------------------
# 7. Bad flags: one line, exit status 2, naming the flag
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--algo", "ppo", "--ppo-epochs", "0"], ["--ppo-epochs must be >= 1; got 0"]),
    (["--algo", "ppo", "--clip-coef", "0"], ["--clip-coef must be > 0; got 0"]),
    (["--algo", "a2c", "--gamma", "1.5"], ["--gamma must be >= 0 and <= 1; got 1.5"]),
    (["--algo", "ppo", "--gae-lambda", "-0.1"], ["--gae-lambda must be >= 0 and <= 1; got -0.1"]),
    (["--algo", "ppo", "--batch-size", "8", "--minibatches", "9"], ["--minibatches 9", "--batch-size 8"]),
    (["--algo", "ppo", "--agent", "stn"], ["--algo ppo", "--agent stn", "--algo reinforce"]),
    (["--algo", "a2c", "--agent", "conv"], ["--algo a2c", "--agent conv"]),
    (["--agent", "racnn-hard", "--entropy-coef", "0.01"], ["--entropy-coef 0.01", "--agent racnn-hard", "leave it at 0"]),
    (["--algo", "ppo", "--agent", "item-hard", "--expected-context-prob", "0.5"], ["--expected-context-prob",
                                                                                    "--algo ppo"]),
])
def test_bad_trainer_flags_are_one_line_and_exit_status_2(tmp_path, args, words):
    run = tmp_path / "run"
    status, stderr = train(run, "--train-images", "32", *args)
    assert status == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    one_line(stderr, "error:", *words)
    assert not (run / "config.json").exists() and not (run / "checkpoint.pt").exists()


@pytest.mark.parametrize("args, words", [
    (["--no-final-reward"], ["--agent ram", "final_reward=False", "credit='gain'"]),
    (["--learn-std", "--std-final", "0.1"], ["--agent ram", "learned", "scheduled"]),
])
def test_agent_options_refused_together_are_one_error_line_and_exit_status_2(tmp_path, args, words):
    run = tmp_path / "run"
    status, stderr = train(run, "--agent", "ram", "--env", "mnist", "--train-images", "32", *args)
    assert status == 2, stderr
    one_line(stderr, "error:", *words)  # after the data's announcements: the agent is built on the loaded env
    assert not (run / "checkpoint.pt").exists()


# ------------------------------------------------------------------------------------------------
# 8. Recipes: RAM's for Catch
# ------------------------------------------------------------------------------------------------


def test_catch_takes_its_recipe_and_an_explicit_flag_overrides_one():
    recipe = RECIPES["ram-catch"].values
    assert recipe["algo"] == "ppo" and recipe["core"] == "lstm"  # what the recipe is for (docs/results.md)
    cfg = training.parse_train_config(["--agent", "ram", "--env", "catch"])
    flat = training.flat_config(cfg)
    assert {k: flat[k] for k in recipe} == recipe and flat["recipe"] == "ram-catch"
    assert (cfg.algorithm.algo, cfg.glimpse_size, cfg.scales, cfg.options.core, cfg.options.hidden) == \
        (recipe["algo"], recipe["glimpse_size"], recipe["scales"], recipe["core"], recipe["hidden"])
    assert training.recipe_in_use(cfg) == recipe
    defaults = training.Config(agent="ram", env="catch")  # what the recipe does not set stays Config's
    assert (cfg.algorithm.gamma, cfg.algorithm.ppo_epochs, cfg.algorithm.minibatches, cfg.seed) == \
        (defaults.algorithm.gamma, defaults.algorithm.ppo_epochs, defaults.algorithm.minibatches, defaults.seed)

    mine = training.parse_train_config(["--agent", "ram", "--env", "catch", "--hidden", "32", "--algo", "a2c",
                                        "--scales", "2"])
    flat = training.flat_config(mine)
    assert (mine.options.hidden, mine.algorithm.algo, mine.scales) == (32, "a2c", 2)
    assert {k: flat[k] for k in recipe if k not in ("hidden", "algo", "scales")} == \
        {k: v for k, v in recipe.items() if k not in ("hidden", "algo", "scales")}
    assert set(training.recipe_in_use(mine)) == set(recipe) - {"hidden", "algo", "scales"}


def test_recipe_none_and_a_pair_without_a_recipe_keep_configs_defaults():
    plain = training.flat_config(training.Config(agent="ram", env="catch", recipe="none"))
    cfg = training.parse_train_config(["--agent", "ram", "--env", "catch", "--recipe", "none"])
    assert training.flat_config(cfg) == plain and training.recipe_in_use(cfg) == {}
    assert cfg.algorithm.algo == "reinforce" and cfg.options.core == "rnn" and cfg.options.hidden == 256
    named = training.parse_train_config(["--agent", "ram", "--env", "catch", "--recipe", "ram-catch"])
    assert training.flat_config(named) == training.flat_config(training.parse_train_config(["--env", "catch"]))
    # RAM's MNIST recipe is the paper's budget, which the defaults already are: the same run, named.
    cfg = training.parse_train_config(["--agent", "ram", "--env", "mnist"])
    plain = training.flat_config(training.Config(agent="ram", env="mnist", recipe="none"))
    assert {**training.flat_config(cfg), "recipe": "none"} == plain and cfg.recipe == "ram-mnist"
    assert training.recipe_in_use(cfg) == RECIPES["ram-mnist"].values == dict(glimpses=6, glimpse_size=8, scales=1)


@pytest.mark.parametrize("args, words", [
    (["--recipe", "ram-emnist"], ["--recipe must be default, none or one of", "ram-catch (--agent ram --env catch)",
                                  "ram-mnist (--agent ram --env mnist)", "got 'ram-emnist'"]),
    (["--agent", "ram", "--env", "mnist", "--recipe", "ram-catch"],
     ["--recipe ram-catch is for --agent ram --env catch, not --agent ram --env mnist", "the recipes: ram-catch"]),
])
def test_an_unknown_recipe_or_one_for_another_pair_is_one_line_naming_the_recipes(tmp_path, args, words):
    status, stderr = train(tmp_path / "run", "--train-images", "32", *args)
    assert status == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    one_line(stderr, "error:", *words)


def test_a_task_named_by_its_gym_id_gets_the_tasks_recipe():
    by_id = training.parse_train_config(["--agent", "ram", "--env", envs.task_of("cluttered-60").env_id])
    by_name = training.parse_train_config(["--agent", "ram", "--env", "cluttered-60"])
    assert by_id.recipe == "ram-cluttered-60" and training.recipe_in_use(by_id) == RECIPES["ram-cluttered-60"].values
    assert {**training.flat_config(by_id), "env": "cluttered-60"} == training.flat_config(by_name)


def test_a_recipe_is_one_entry_and_each_pair_has_at_most_one():
    from agents.recipes import Recipe, register_recipe
    with pytest.raises(ValueError, match="already has recipe 'ram-catch'"):
        register_recipe(Recipe("ram-catch-2", "ram", "catch", {"algo": "ppo"}))
    with pytest.raises(ValueError, match="'none' is taken"):
        register_recipe(Recipe("none", "ram", "mnist"))
    assert "ram-catch-2" not in RECIPES and "none" not in RECIPES  # nothing registered by the failed calls


def test_every_agent_has_a_recipe_on_every_task_it_applies_to_all_at_the_task_s_budget():
    """Like rl-zoo3's hyperparameters per env: one recipe per (agent, task) where the agent applies (a still-image
    agent not on video or games), and every recipe of a task gives the same retina and glimpses, so that agents
    compare at equal budgets."""
    tasks = ("mnist", "translated-60", "cluttered-60", "cluttered-100", "small-100", "moving-mnist", "catch")
    for task in tasks:
        spec = envs.task_of(task)
        budgets = set()
        for name, agent in AGENTS.items():
            pair = [r for r in RECIPES.values() if (r.agent, r.env) == (name, task)]
            applies = spec.is_still or not agent.still_only
            assert len(pair) == (1 if applies and not (name == "item-hard" and task == "catch") else 0), (name, task)
            for recipe in pair:
                assert recipe.how  # how it was chosen, in words
                cfg = training.parse_train_config(["--agent", name, "--env", task])
                assert cfg.recipe == recipe.name
                budgets.add((cfg.glimpses if spec.is_still else None, cfg.glimpse_size, cfg.scales))
        assert len(budgets) == 1, (task, budgets)


def test_no_recipe_leaves_ppo_without_its_guard():
    """PPO's epochs of Adam steps per batch stall RAM on cluttered-60 without a KL stop (docs/results.md): a
    recipe that trains by PPO sets --target-kl, unless it anneals the step size to 0 as Catch's does."""
    for recipe in RECIPES.values():
        if recipe.values.get("algo") == "ppo":
            assert recipe.values.get("target_kl") or recipe.values.get("anneal_lr"), recipe.name


def test_item_wise_attention_on_catch_is_one_line(tmp_path):
    status, stderr = train(tmp_path / "run", "--agent", "item-hard", "--env", "catch", "--train-images", "32")
    assert status == 2 and "Traceback" not in stderr
    one_line(stderr, "error:", "--agent item-hard --env catch: item-wise attention classifies; it does not play Catch")


@pytest.mark.parametrize("agent", ["stn", "racnn-soft"])  # soft: no policy for --algo ppo
def test_a_still_image_agent_on_catch_is_refused_for_that_not_for_its_algo(tmp_path, agent):
    cfg = training.parse_train_config(["--agent", agent, "--env", "catch"])
    assert cfg.algorithm.algo == "reinforce" and cfg.recipe == "none"  # RAM's Catch recipe is RAM's alone
    status, stderr = train(tmp_path / "run", "--agent", agent, "--env", "catch", "--train-images", "32")
    assert status == 2
    line = one_line(stderr, "error:", "still images", "--env catch")
    assert "--algo" not in line


# ------------------------------------------------------------------------------------------------
# 9. A short PPO run: its diagnostics logged, and resumed exactly
# ------------------------------------------------------------------------------------------------

PPO_TAGS = {"value_loss", "policy_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
            "advantage_std", "paddle_entropy", "location_entropy"}


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> tuple[Path, str]:
    """One uninterrupted short PPO run of RAM on Catch (the recipe's --algo ppo): ``(run folder, stderr)``."""
    run = tmp_path_factory.mktemp("ppo") / "whole"
    status, stderr = train(run, *CATCH_RUN)
    assert status == 0, stderr
    return run, stderr


def test_a_ppo_run_logs_its_diagnostics_and_marks_the_recipe(ppo_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, stderr = ppo_run
    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    tags = set(events.Tags()["scalars"])
    assert {f"train/{name}" for name in PPO_TAGS} <= tags, sorted(tags)
    for name in PPO_TAGS - {"explained_variance"}:
        logged = events.Scalars(f"train/{name}")
        assert [e.step for e in logged] == [128, 256, 384, 512], name
        assert all(math.isfinite(e.value) for e in logged), name
    assert all(0 < e.value <= math.log(3) for e in events.Scalars("train/paddle_entropy"))  # 3 moves
    assert all(0 <= e.value <= 1 for e in events.Scalars("train/clip_fraction"))

    recipe = RECIPES["ram-catch"].values
    overridden = {"hidden", "train_images", "batch_size"}  # given on the command line
    in_use = {k: v for k, v in recipe.items() if k not in overridden}
    flags = " ".join(training.command_flags(in_use))
    assert f"recipe ram-catch (--agent ram --env catch; --recipe none: without it): {flags}" in stderr.splitlines()
    text = events.Tensors("hyperparameters/text_summary")[0].tensor_proto.string_val[0].decode()
    for name, value in in_use.items():
        assert f"|{name}|{value} (recipe ram-catch)|" in text, name
    assert "|batch_size|128|" in text and "|hidden|16|" in text and "|gamma|0.99|" in text
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "ppo" and config["core"] == "lstm" and config["hidden"] == 16
    assert config["recipe"] == "ram-catch"


def test_a_ppo_run_killed_after_its_first_checkpoint_resumes_to_the_same_results(ppo_run, tmp_path):
    whole, _ = ppo_run
    run = tmp_path / "killed"
    with killed_after_checkpoint(1):
        status, _ = train(run, *CATCH_RUN)
    assert status == -signal.SIGKILL and not (run / "results.json").exists()
    assert torch.load(run / "checkpoint.pt", weights_only=True)["images_seen"] == 128

    status, stderr = train(run, *CATCH_RUN, "--resume")
    assert status == 0, stderr
    first, second = (json.loads((r / "results.json").read_text()) for r in (whole, run))
    first.pop("wall_seconds"), second.pop("wall_seconds")
    assert first == second
    a, b = (torch.load(r / "checkpoint.pt", weights_only=True) for r in (whole, run))
    assert a["images_seen"] == b["images_seen"] == 512
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert torch.equal(a["torch_rng"], b["torch_rng"])  # the same random stream consumed, minibatches included


def test_resuming_without_the_runs_recipe_names_the_recipe(ppo_run, tmp_path):
    """The flags a resume lists as different were never typed when they are a recipe's: the line says whose."""
    whole, _ = ppo_run
    run = tmp_path / "copy"
    shutil.copytree(whole, run)
    status, stderr = train(run, *CATCH_RUN, "--recipe", "none", "--resume")
    assert status == 2
    one_line(stderr, "error:", "--resume: the command's flags differ from the run's",
             "--algo (run: ppo, command: reinforce)",
             "(the run's recipe is ram-catch, this command's none: --recipe ram-catch)")


def test_resuming_after_the_recipe_changed_gives_the_runs_flags_to_pass(ppo_run, tmp_path, monkeypatch):
    """A recipe changed after its run was made (as RAM's cluttered-60 recipe took --anneal-lr): the resume names the
    run's values as the flags to pass, and that the command's came from the recipe; passing them resumes."""
    whole, _ = ppo_run
    run = tmp_path / "copy"
    shutil.copytree(whole, run)
    recipe = RECIPES["ram-catch"]
    changed = {**recipe.values, "anneal_lr": False, "entropy_coef": 0.02}
    monkeypatch.setitem(RECIPES, "ram-catch", dataclasses.replace(recipe, values=changed))
    status, stderr = train(run, *CATCH_RUN, "--resume")
    assert status == 2
    line = one_line(stderr, "error:", "--anneal-lr (run: True, command: False)",
                    "--entropy-coef (run: 0.01, command: 0.02)", "the run's were typed or its recipe has changed since")
    to_pass, given = re.fullmatch(r".*; pass the run's flags: (.*) \(recipe ram-catch gives (.*); the run's.*",
                                  line).groups()
    assert sorted(to_pass.split(" --")) == sorted("--anneal-lr --entropy-coef 0.01".split(" --"))
    assert sorted(given.split(" --")) == sorted("--no-anneal-lr --entropy-coef 0.02".split(" --"))
    status, stderr = train(run, *CATCH_RUN, "--resume", *to_pass.split())
    assert status == 0, stderr
