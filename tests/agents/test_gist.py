"""The gist (DRAM's context network, Ba et al. 2015): the env's coarse view of the whole canvas, the agent's
context network and where-layer, and what each loss trains."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode

import envs  # noqa: F401  (registers the glimpse/ ids)
from agents.flops import flops_per_image
from agents.itemwise import HardItemAttention
from agents.ram import RAM, ram_losses, rollout
from envs import GlimpseVectorEnv
from glimpse import coarse_view, extract_glimpses

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")

SMALL = dict(hidden=16, glimpse_hidden=8)
ENVS = {
    "ram": (dict(task="cluttered", canvas=36, distractors=2, num_glimpses=4), RAM),
    "item-hard": (dict(task="cluttered", canvas=36, distractors=2, num_glimpses=3, action_mode="discrete"),
                  HardItemAttention),
}


def setup(name: str = "ram", seed: int = 0, gist: int = 6, **agent_kwargs):
    env_kwargs, cls = ENVS[name]
    torch.manual_seed(seed)
    env = GlimpseVectorEnv(8, glimpse_size=6, scales=2, autoreset_mode=AutoresetMode.SAME_STEP, gist=gist, **env_kwargs)
    model = cls.from_env(env, gist=gist, **SMALL, **agent_kwargs)
    obs, _ = env.reset(seed=seed)
    return env, model, obs


def touched(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters())


# ------------------------------------------------------------------------------------------------ the view


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_coarse_view_is_the_retinas_area_mean_over_the_whole_image(dtype):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (3, 2, 60, 60), dtype=torch.uint8)
    images = images if dtype == torch.uint8 else images.to(dtype) / 255
    view = coarse_view(images, 12)
    # The retina's second scale at the centre with factor 5 covers exactly the 60x60 image in 5x5 blocks.
    retina = extract_glimpses(images, torch.zeros(3, 2), size=12, scales=2, factor=5)[:, 1]
    assert view.dtype == (torch.float32 if dtype == torch.uint8 else dtype)
    torch.testing.assert_close(view, retina, atol=1e-6, rtol=0)
    by_hand = images.double().view(3, 2, 12, 5, 12, 5).mean(dim=(3, 5)) / (255 if dtype == torch.uint8 else 1)
    torch.testing.assert_close(view.double(), by_hand, atol=1e-6, rtol=0)


def test_coarse_view_of_a_rectangle_and_bad_sizes():
    images = torch.arange(2 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 6)
    torch.testing.assert_close(coarse_view(images, 2), images.view(1, 2, 2, 2, 2, 3).mean(dim=(3, 5)))
    with pytest.raises(ValueError, match="size=4 must divide the image's sides"):
        coarse_view(images, 4)
    with pytest.raises(ValueError, match="size"):
        coarse_view(images, 0)


# ------------------------------------------------------------------------------------------------ the env


def test_env_observes_the_coarse_view_of_each_episodes_canvas_at_every_step():
    env = GlimpseVectorEnv(4, task="cluttered", canvas=36, distractors=2, num_glimpses=3, glimpse_size=6,
                           autoreset_mode=AutoresetMode.SAME_STEP, gist=6)
    assert env.single_observation_space["gist"].shape == (1, 6, 6)
    obs, _ = env.reset(seed=5)
    first = coarse_view(env.scene()[0], 6)
    assert torch.equal(obs["gist"], first)
    for t in range(env.episode_steps):
        obs, *_, infos = env.step(torch.zeros(4, 12))
        if t < env.episode_steps - 1:
            assert torch.equal(obs["gist"], first)
    assert torch.equal(infos["final_obs"]["gist"], first)  # the ended episodes' view
    assert torch.equal(obs["gist"], coarse_view(env.scene()[0], 6)) and not torch.equal(obs["gist"], first)
    # Without a gist the observation is what it was.
    assert "gist" not in GlimpseVectorEnv(2, task="cluttered", canvas=36, glimpse_size=6).single_observation_space.spaces


def test_single_env_with_a_gist_passes_gymnasiums_checker():
    env = gym.make("glimpse/ClutteredMNIST60-v0", gist=12)
    gym_check_env(env.unwrapped)
    obs, _ = env.reset(seed=1)
    assert obs["gist"].shape == (1, 12, 12) and env.observation_space.contains(obs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(task="catch", gist=4), "for still-image tasks; task 'catch' is a game"),
    (dict(task="moving-mnist", gist=4), "for still-image tasks"),
    (dict(task="cluttered", canvas=36, gist=5), r"gist=5 must divide the canvas \(36x36\)"),
    (dict(task="cluttered", canvas=36, gist=-1), "gist must be an integer >= 0"),
])
def test_bad_gists_are_refused_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GlimpseVectorEnv(2, glimpse_size=6, **kwargs)


# ------------------------------------------------------------------------------------------------ the agent


@pytest.mark.parametrize("name", ["ram", "item-hard"])
def test_the_gist_sets_where_to_look_and_never_what_the_classifier_reads(name):
    env, model, obs = setup(name, step_ce=1.0)
    episodes, _ = model.collect(env, obs)
    # The same glimpses and choices replayed with another gist: the where-policy's scores and the baseline
    # change, the classifier's loss (every step's) does not.
    other = replace(episodes, inputs={**episodes.inputs, "gist": torch.rand_like(episodes.inputs["gist"])})
    same, changed = model.replay(episodes), model.replay(other)
    assert torch.equal(same.loss_supervised, changed.loss_supervised)
    mask = episodes.mask
    assert not torch.allclose(same.log_probs[mask], changed.log_probs[mask])
    assert not torch.allclose(same.values, changed.values)


def test_policy_loss_trains_the_context_network_and_the_classifier_loss_does_not():
    env, model, obs = setup(credit="gain", step_ce=1.0)
    losses = ram_losses(rollout(model, env, obs)[0], step_ce=1.0)
    losses["loss_policy"].backward(retain_graph=True)  # the where-layer's graph is the baseline's too
    assert touched(model.context) and touched(model.where_core) and touched(model.locator)
    assert not any(touched(m) for m in (model.decider, model.core, model.glimpse_net))
    model.zero_grad(set_to_none=True)
    losses["loss_classifier"].backward(retain_graph=True)
    assert all(touched(m) for m in (model.decider, model.core, model.glimpse_net))
    assert not any(touched(m) for m in (model.context, model.where_core, model.locator))
    model.zero_grad(set_to_none=True)
    losses["loss_baseline"].backward()  # the baseline reads the where-layer too
    assert touched(model.baseline) and touched(model.context)


@pytest.mark.parametrize("name", ["ram", "item-hard"])
def test_ppo_replay_reproduces_the_collected_episode_with_a_gist(name):
    env, model, obs = setup(name, credit="gain", step_ce=0.5)
    episodes, _ = model.collect(env, obs)
    assert torch.equal(episodes.inputs["gist"], obs["gist"])
    replayed = model.replay(episodes)
    mask = episodes.mask
    torch.testing.assert_close(replayed.log_probs.detach()[mask], episodes.log_probs[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(replayed.values.detach(), episodes.values, atol=1e-5, rtol=0)


def test_an_agent_and_an_env_that_disagree_on_the_gist_are_refused():
    env_kwargs, _ = ENVS["ram"]
    plain = GlimpseVectorEnv(2, glimpse_size=6, autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs)
    with pytest.raises(ValueError, match="reads a gist of 6x6; the env has none: build it with gist=6"):
        RAM.from_env(plain, gist=6, **SMALL)
    env, model, obs = setup()
    with pytest.raises(ValueError, match="build the env with gist=6"):
        rollout(model, plain, plain.reset(seed=0)[0])
    with pytest.raises(ValueError, match="use one or the other"):
        setup("item-hard", expected_context_prob=0.5)


def test_flops_count_the_context_network_and_the_where_layer():
    _, with_gist, _ = setup(gist=6)
    _, without, _ = setup(gist=0)
    hidden, steps = SMALL["hidden"], 4
    # Context: 3x3 convs 1->16 at 6x6, 16->32 at 3x3, 32->32 at 2x2, then Linear(32*2*2, hidden); the where-layer's
    # two (hidden x hidden) matmuls at each of the T - 1 looks. 2 FLOPs per multiply-accumulate.
    context = 2 * (9 * 1 * 16 * 36 + 9 * 16 * 32 * 9 + 9 * 32 * 32 * 4 + 128 * hidden)
    where = 2 * 2 * hidden * hidden * (steps - 1)
    assert flops_per_image(with_gist, steps) - flops_per_image(without, steps) == context + where


# ------------------------------------------------------------------------------------------------ conv glimpse network


def test_conv_glimpse_encoder_reads_the_scales_as_channels():
    from agents.recurrent import GlimpseNetwork  # noqa: PLC0415

    torch.manual_seed(0)
    net = GlimpseNetwork(2 * 1 * 6 * 6, 8, 8, 16, scales=2, encoder="conv", glimpse_shape=(2, 1, 6, 6))
    glimpse, location = torch.rand(5, 2, 1, 6, 6), torch.rand(5, 2) * 2 - 1
    c1, c2 = net.what.features[0], net.what.features[2]
    x = torch.relu(torch.nn.functional.conv2d(glimpse.view(5, 2, 6, 6), c1.weight, c1.bias, padding=1))
    x = torch.relu(torch.nn.functional.conv2d(x, c2.weight, c2.bias, stride=2, padding=1))  # (5, 64, 3, 3)
    h_g = torch.relu(x.flatten(1) @ net.what.out.weight.T + net.what.out.bias)
    h_l = torch.relu(location @ net.where.weight.T + net.where.bias)
    expected = torch.relu(h_g @ net.what_out.weight.T + net.what_out.bias + h_l @ net.where_out.weight.T)
    torch.testing.assert_close(net(glimpse, location), expected)
    with pytest.raises(ValueError, match="encoder must be one of"):
        GlimpseNetwork(72, encoder="fourier")


def test_flops_of_the_conv_glimpse_encoder():
    env_kwargs, _ = ENVS["ram"]
    env = GlimpseVectorEnv(2, glimpse_size=6, scales=2, autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs)
    torch.manual_seed(0)
    linear, conv = (RAM.from_env(env, glimpse_encoder=e, **SMALL) for e in ("linear", "conv"))
    glimpse_hidden, steps = SMALL["glimpse_hidden"], 4
    per_glimpse = 2 * (9 * 2 * 32 * 36 + 9 * 32 * 64 * 9 + 64 * 9 * glimpse_hidden) - 2 * 72 * glimpse_hidden
    assert flops_per_image(conv, steps) - flops_per_image(linear, steps) == steps * per_glimpse
