"""Denser credit for the hard recurrent agents (agents/recurrent.py): a prediction at every glimpse (per-step
cross-entropy), each look rewarded by its gain in the log-probability of the true class, and a scheduled or
learned location std -- each against an independent expectation, the gradients each reaches, and PPO's replay.

Small envs (6 px glimpses, 2 scales, 4 glimpses, 8 rows) and small agents keep each test well under a second.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from gymnasium.vector import AutoresetMode

from agents import build
from agents.config import Config
from agents.itemwise import HardItemAttention
from agents.ram import RAM, ram_losses, rollout
from agents.recurrent import classifier_loss, gain_rewards
from agents.scripting import ConfigError
from agents.trainers import AlgorithmOptions, PPOTrainer, ReinforceTrainer
from envs import GlimpseVectorEnv

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

SMALL = dict(hidden=16, glimpse_hidden=8)
ENVS = {
    "ram": (dict(task="mnist", num_glimpses=4), RAM),
    "item-hard": (dict(task="cluttered", canvas=36, distractors=2, num_glimpses=3, action_mode="discrete"),
                  HardItemAttention),
}


def setup(name: str = "ram", seed: int = 0, **agent_kwargs):
    env_kwargs, cls = ENVS[name]
    torch.manual_seed(seed)
    env = GlimpseVectorEnv(8, glimpse_size=6, scales=2, autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs)
    model = cls.from_env(env, **SMALL, **agent_kwargs)
    obs, _ = env.reset(seed=seed)
    return env, model, obs


def floats(losses, model, update):
    return {name: float(value.detach()) for name, value in losses.items()}


def touched(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters())


# ------------------------------------------------------------------------------------------------ the definitions


def test_gain_rewards_are_the_differences_of_the_true_class_log_probability_from_uniform():
    logits = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0]],
                           [[1.0, 1.0, 5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 9.0]]])  # (N=2, T=3, D=3)
    labels = torch.tensor([0, 2])
    by_hand = []
    for row, y in zip(logits.tolist(), labels.tolist()):
        log_p = [math.log(math.exp(z[y]) / sum(math.exp(v) for v in z)) for z in row]
        previous = [math.log(1 / 3)] + log_p[:-1]
        by_hand.append([a - b for a, b in zip(log_p, previous)])
    gains = gain_rewards(logits, labels)
    torch.testing.assert_close(gains, torch.tensor(by_hand))
    # The sum telescopes to log p_T(y) + log D: only the last prediction counts in total.
    torch.testing.assert_close(gains.sum(1), torch.tensor([by_hand[0][0] + by_hand[0][1] + by_hand[0][2],
                                                           math.log(math.exp(9) / (2 + math.exp(9))) + math.log(3)]))


def test_per_step_cross_entropy_is_the_weighted_mean_of_each_steps_plus_the_last():
    torch.manual_seed(0)
    step_logits, labels = torch.randn(5, 4, 10), torch.randint(0, 10, (5,))
    per_step = [F.cross_entropy(step_logits[:, t], labels) for t in range(4)]
    expected = F.cross_entropy(step_logits[:, -1], labels) + 0.3 * sum(per_step) / 4
    torch.testing.assert_close(classifier_loss(step_logits[:, -1], labels, step_logits, 0.3), expected)
    assert torch.equal(classifier_loss(step_logits[:, -1], labels, step_logits, 0.0),
                       F.cross_entropy(step_logits[:, -1], labels))


# ------------------------------------------------------------------------------------------------ the rollout


@pytest.mark.parametrize("final_reward", [True, False])
@pytest.mark.parametrize("name", ["ram", "item-hard"])
def test_gain_credit_rewards_each_step_by_the_classifier_on_the_state_it_produced(name, final_reward):
    env, model, obs = setup(name, credit="gain", final_reward=final_reward)
    episode, _ = rollout(model, env, obs)
    n, steps = episode.rewards.shape
    logits = model.decider(episode.states).detach()  # (N, T, D): the classifier on every h_t, recomputed
    torch.testing.assert_close(episode.step_logits.detach(), logits)
    log_p = logits.log_softmax(-1)[torch.arange(n)[:, None], torch.arange(steps), episode.labels[:, None]]
    gains = log_p - torch.cat([torch.full((n, 1), -math.log(10)), log_p[:, :-1]], dim=1)
    correct = (episode.logits.argmax(1) == episode.labels).float()
    expected = gains.clone()
    if final_reward:
        expected[:, -1] += correct  # the env's 0/1 at the last step
    torch.testing.assert_close(episode.rewards, expected)
    # The look l_t is credited with G_{t+1} = log p_T(y) - log p_t(y) (+ the final reward).
    torch.testing.assert_close(episode.returns[:, 1:], log_p[:, -1:] - log_p[:, :-1] + (correct[:, None] if final_reward else 0))
    assert not episode.rewards.requires_grad


def test_default_credit_keeps_the_envs_reward_and_predicts_only_at_the_last_step():
    env, model, obs = setup()
    episode, _ = rollout(model, env, obs)
    assert episode.step_logits is None
    correct = (episode.logits.argmax(1) == episode.labels).float()
    assert torch.equal(episode.rewards[:, -1], correct) and bool((episode.rewards[:, :-1] == 0).all())


def test_hybrid_loss_adds_the_per_step_cross_entropy_of_every_state():
    env, model, obs = setup(step_ce=0.5)
    episode, _ = rollout(model, env, obs)
    steps = episode.rewards.shape[1]
    per_step = sum(F.cross_entropy(model.decider(episode.states[:, t]), episode.labels) for t in range(steps)) / steps
    expected = F.cross_entropy(episode.logits, episode.labels) + 0.5 * per_step
    torch.testing.assert_close(ram_losses(episode, step_ce=0.5)["loss_classifier"], expected)
    assert torch.equal(episode.rewards[:, :-1], torch.zeros_like(episode.rewards[:, :-1]))  # credit stays "final"


def test_gain_rewards_reach_only_the_location_policy_and_per_step_cross_entropy_not_the_policy():
    env, model, obs = setup(credit="gain", step_ce=1.0)
    losses = ram_losses(rollout(model, env, obs)[0], step_ce=1.0)
    losses["loss_policy"].backward()  # the rewards are data: REINFORCE reaches the where head alone
    assert touched(model.locator)
    assert not any(touched(m) for m in (model.decider, model.core, model.glimpse_net, model.baseline))
    model.zero_grad(set_to_none=True)
    losses["loss_classifier"].backward()  # every step's cross-entropy trains classifier, core and glimpse network
    assert all(touched(m) for m in (model.decider, model.core, model.glimpse_net))
    assert not touched(model.locator) and not touched(model.baseline)


# ------------------------------------------------------------------------------------------------ PPO's replay


@pytest.mark.parametrize("name", ["ram", "item-hard"])
def test_ppo_replay_reproduces_the_collected_episode_with_dense_credit(name):
    options = dict(credit="gain", step_ce=0.5, **(dict(std_final=0.05) if name == "ram" else {}))
    env, model, obs = setup(name, **options)
    model.set_progress(0.4)
    episodes, _ = model.collect(env, obs)
    # The same episode played step by step with gradient (same env seed, same torch RNG state).
    env2, twin, obs2 = setup(name, **options)
    twin.set_progress(0.4)
    played, _ = rollout(twin, env2, obs2)
    torch.testing.assert_close(episodes.rewards, played.rewards)  # the gains as collected
    replayed = model.replay(episodes)
    mask = episodes.mask
    torch.testing.assert_close(replayed.log_probs.detach()[mask], episodes.log_probs[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(replayed.values.detach(), episodes.values, atol=1e-5, rtol=0)
    torch.testing.assert_close(replayed.loss_supervised.detach(), ram_losses(played, step_ce=0.5)["loss_classifier"].detach())


# ------------------------------------------------------------------------------------------------ the location std


def test_scheduled_std_follows_the_line_set_by_the_trainers_progress():
    env, model, obs = setup(std=0.3, std_final=0.1)
    assert float(model.locator.std[0]) == pytest.approx(0.3)
    trainer = ReinforceTrainer(model, torch.optim.SGD(model.parameters(), lr=0.0), floats)
    for progress, std in ((0.0, 0.3), (0.25, 0.25), (0.5, 0.2), (1.0, 0.1), (3.0, 0.1)):
        logged, obs = trainer.update(env, obs, 1, progress=progress)
        assert model.locator.std.tolist() == pytest.approx([std, std])
    ppo = PPOTrainer(model, torch.optim.SGD(model.parameters(), lr=0.0), floats, AlgorithmOptions(algo="ppo"))
    ppo.update(env, obs, 1, progress=0.75)
    assert model.locator.std.tolist() == pytest.approx([0.15, 0.15])
    assert "log_std" not in dict(model.named_parameters()) and "locator.log_std" in model.state_dict()


def test_learned_std_is_a_parameter_the_policy_gradient_and_entropy_bonus_train():
    env, model, obs = setup(learn_std=True, entropy_coef=0.1)
    assert model.locator.log_std.requires_grad
    losses = ram_losses(rollout(model, env, obs)[0], entropy_coef=0.1)
    (losses["loss_policy"] + losses["loss_entropy"]).backward()
    assert model.locator.log_std.grad is not None and bool(model.locator.log_std.grad.abs().sum() > 0)


def test_fixed_std_ignores_progress():
    env, model, obs = setup(std=0.2)
    model.set_progress(0.9)
    assert model.locator.std.tolist() == pytest.approx([0.2, 0.2])


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("kwargs, match", [
    (dict(final_reward=False), "final_reward=False leaves the looks without any reward"),
    (dict(credit="dense"), r"credit must be one of \('final', 'gain'\); got 'dense'"),
    (dict(step_ce=-0.1), "step_ce must be a finite number >= 0; got -0.1"),
    (dict(step_ce=math.nan), "step_ce must be a finite number >= 0; got nan"),
    (dict(learn_std=True, std_final=0.1), "either learned .* or scheduled"),
    (dict(std_final=0.0), "std_final must be a finite number > 0; got 0.0"),
])
def test_bad_credit_and_std_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        setup(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(credit="gain"), dict(step_ce=1.0)])
def test_catch_has_no_classifier_to_predict_at_every_step(kwargs):
    env = GlimpseVectorEnv(2, task="catch", canvas=8, glimpse_size=6, scales=2, autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match="decision='catch' has no classifier"):
        RAM.from_env(env, **kwargs)


def test_make_agent_turns_a_refused_combination_into_one_config_error_naming_the_agent():
    cfg = Config(agent="ram", env="mnist", glimpse_size=6, scales=2, glimpses=2, batch_size=4)
    cfg.options.final_reward = False
    env = build.make_env(cfg, "train", 2)
    with pytest.raises(ConfigError, match="^--agent ram --env mnist: final_reward=False"):
        build.make_agent(cfg, env)
