"""envs/zoo: rl-zoo3's own train and enjoy entry points on the shipped hyperparameter files (skipped where rl-zoo3
is not installed: ``pip install -e '.[zoo]'``), and the files' agreement with scripts/sb3_ppo.py's recipes."""

from __future__ import annotations

import runpy
import sys
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import pytest

from stable_baselines3 import PPO

import envs  # noqa: F401  (registers glimpse/...)
import envs.zoo.ppo
import envs.zoo.ppo_lstm
from envs.sb3 import GlimpseExtractor, to_sb3
from envs.specs import task_of
from envs.zoo import SB3_DEFAULTS, zoo_hyperparams

ROOT = Path(__file__).resolve().parents[2]
MNIST = "glimpse/MNIST-v0"
# A run of seconds: 4 envs x 16 steps per rollout, 2 rollouts, one epoch of small minibatches.
SHORT = ["-n", "128", "-params", "n_envs:4", "batch_size:32", "n_epochs:1"]


def zoo_args(*args: str, log_folder: Path) -> list[str]:
    """rl-zoo3's command line as README.md gives it (CPU, one thread, a fixed seed, logs in ``log_folder``)."""
    return ["--gym-packages", "envs", "-f", str(log_folder), "--seed", "1", "--num-threads", "1", "--device", "cpu",
            "--verbose", "0", *args]


def run_zoo(entry: str, argv: list[str], monkeypatch) -> None:
    """``python -m rl_zoo3.<entry> argv`` (``train`` or ``enjoy``), in this process; skipped without rl-zoo3."""
    module = pytest.importorskip(f"rl_zoo3.{entry}")
    monkeypatch.setattr(sys, "argv", [module.__name__, *argv])
    getattr(module, entry)()


def test_train_saves_a_model_that_loads_and_predicts_and_enjoy_plays_it(tmp_path, monkeypatch, capsys):
    """README's commands: train PPO on MNIST through the zoo with our file (evaluating on the eval env made with
    the file's retina, the documented workaround), then load the saved model and play it with enjoy."""
    env_kwargs = envs.zoo.ppo.hyperparams[MNIST]["env_kwargs"]
    retina = [f"{key}:{value!r}" for key, value in env_kwargs.items()]  # the zoo eval()s each value
    logs = tmp_path / "logs"
    run_zoo("train", zoo_args("--algo", "ppo", "--env", MNIST, "--conf-file", "envs.zoo.ppo", *SHORT,
                            "--eval-freq", "64", "--eval-episodes", "4", "--eval-env-kwargs", *retina,
                            "split:'test'", log_folder=logs), monkeypatch)
    run = logs / "ppo" / "glimpse-MNIST-v0_1"
    assert (run / "evaluations.npz").is_file()  # the zoo evaluated, on an env with the file's retina

    model = PPO.load(run / "glimpse-MNIST-v0.zip", device="cpu")
    assert isinstance(model.policy.features_extractor, GlimpseExtractor)
    venv = to_sb3(MNIST, num_envs=4, **env_kwargs)
    assert model.observation_space == venv.observation_space and model.action_space == venv.action_space
    venv.seed(0)
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (4, 3) and all(venv.action_space.contains(a) for a in actions)

    capsys.readouterr()
    run_zoo("enjoy", ["--algo", "ppo", "--env", MNIST, "--gym-packages", "envs", "-f", str(logs), "--exp-id", "1",
                    "-n", "20", "--no-render", "--deterministic", "--num-threads", "1", "--device", "cpu",
                    "--env-kwargs", "split:'test'"], monkeypatch)
    out = capsys.readouterr().out
    assert "10 Episodes" in out and "Mean episode length: 2.00" in out  # 20 steps of 2-glimpse episodes


def test_a_retina_the_env_refuses_fails_with_the_envs_own_message(tmp_path, monkeypatch):
    conf = tmp_path / "bad_retina.py"
    conf.write_text("from envs.zoo.ppo import hyperparams\n"
                    "hyperparams['glimpse/MNIST-v0']['env_kwargs']['glimpse_size'] = 0\n")
    with pytest.raises(ValueError, match=r"^glimpse_size must be an integer >= 1; got 0$"):
        run_zoo("train", zoo_args("--algo", "ppo", "--env", MNIST, "--conf-file", str(conf), *SHORT,
                                log_folder=tmp_path / "logs"), monkeypatch)


@pytest.mark.parametrize("module, env_id, algo", [(envs.zoo.ppo, MNIST, "ppo"),
                                                  (envs.zoo.ppo, "glimpse/ClutteredMNIST60-v0", "ppo"),
                                                  (envs.zoo.ppo_lstm, "glimpse/Catch-v0", "recurrent-ppo")])
def test_entries_are_sb3_ppo_recipes(module, env_id, algo):
    """Each entry is what scripts/sb3_ppo.py runs with no flags for that task (and algorithm): its defaults over
    Config's, rollouts of whole episodes; the env and the policy build from it."""
    script = runpy.run_path(str(ROOT / "scripts" / "sb3_ppo.py"), run_name="sb3_ppo_for_test_zoo")
    task = task_of(env_id)
    cfg = replace(script["Config"](), env=task.name, **script["ENV_DEFAULTS"].get(task.name, {}))
    entry = module.hyperparams[env_id]
    vector_env = gym.make_vec(env_id, num_envs=1, **entry["env_kwargs"])
    n_steps = script["rollout_steps"](None, vector_env.episode_steps)
    recipe = {key: getattr(cfg, key) for key in SB3_DEFAULTS}
    assert entry == zoo_hyperparams(recipe, n_steps, recurrent=algo == "recurrent-ppo", still=task.is_still)
    extractor_kwargs = entry["policy_kwargs"]["features_extractor_kwargs"]
    assert GlimpseExtractor(vector_env.single_observation_space, **extractor_kwargs).features_dim == cfg.features_dim


def test_every_read_is_a_fresh_copy():
    """rl-zoo3 pops keys of the entry it reads; the next read (a second run in this process) sees the file."""
    first = envs.zoo.ppo.hyperparams
    first[MNIST].pop("env_kwargs")
    first[MNIST]["policy_kwargs"]["features_extractor_kwargs"]["features_dim"] = 1
    again = envs.zoo.ppo.hyperparams[MNIST]
    assert again["env_kwargs"]["num_glimpses"] == 2
    assert again["policy_kwargs"]["features_extractor_kwargs"]["features_dim"] == 256
    assert again["policy_kwargs"]["features_extractor_class"] is GlimpseExtractor
    with pytest.raises(AttributeError, match="no attribute 'hyperparam'"):
        envs.zoo.ppo.hyperparam  # noqa: B018
