"""Adding an agent is one module plus one registry entry, and a task one spec: a plugin module registers
a small new agent and a small new task, and both train and evaluate through the training library and
through scripts/train.py (``--plugins``), then scripts/evaluate.py finds them again from the run."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest
import torch

from script_runs import in_process

PLUGIN = textwrap.dedent('''
    """A small agent and a small task, registered from outside the packages."""

    from dataclasses import dataclass, replace

    import torch
    from torch import nn

    import envs
    from agents import AgentSpec, register_agent
    from agents.common import SceneClassifier


    @dataclass
    class TinyOptions:
        hidden: int = 16
        """width of the tiny MLP's hidden layer"""


    class TinyMLP(SceneClassifier):
        def __init__(self, canvas_shape, num_classes, hidden=16):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(torch.Size(canvas_shape).numel(), hidden), nn.ReLU(),
                                     nn.Linear(hidden, num_classes))

        def forward(self, images):
            return self.net(images)


    register_agent(AgentSpec("plugin-mlp", TinyMLP, TinyOptions, family="baseline", title="tiny MLP", still_only=True),
                   replace=True)

    # A digit translated on a 44x44 canvas: the generic translated task with its own name, id and defaults.
    if "translated-44" not in envs.TASKS:
        generic = envs.TASKS["translated"]
        envs.register_task(replace(generic, name="translated-44", env_id="glimpse/TranslatedMNIST44-v0",
                                   options=replace(generic.options, canvas=44), summary="a digit on 44x44"))
''')


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    from agents import AGENTS

    (tmp_path / "tiny_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "tiny_plugin"
    sys.modules.pop("tiny_plugin", None)
    # The registry is the process's: a test that walks every agent (their recipes) must not meet this one.
    AGENTS.pop("plugin-mlp", None)


@pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")
def test_plugin_agent_and_task_train_through_the_library(plugin):
    from agents import AGENTS
    from agents.training import Config, evaluate_split, import_plugins, make_agent, make_env, make_test_env

    import_plugins([plugin])
    assert "plugin-mlp" in AGENTS
    cfg = Config(agent="plugin-mlp", env="translated-44", batch_size=16, eval_images=32)
    assert cfg.options.hidden == 16
    env = make_env(cfg, "train", cfg.batch_size)
    assert env.canvas_shape == (1, 44, 44) and env.is_still
    torch.manual_seed(0)
    model = make_agent(cfg, env)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        losses, obs = model.train_losses(env, obs)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    metrics = evaluate_split(cfg, model, make_test_env(cfg))
    assert metrics["examples"] == 32 and 0.0 <= metrics["accuracy"] <= 1.0


def test_plugin_agent_and_task_train_through_the_script(plugin, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    run = tmp_path / "run"
    done = in_process("train.py", "--plugins", plugin, "--agent", "plugin-mlp", "--hidden", "8", "--env",
                      "translated-44", "--train-images", "64", "--batch-size", "16", "--eval-images", "16",
                      "--torch-threads", "1", "--run-dir", str(run), env=env)
    assert done.returncode == 0, done.stderr
    results = json.loads((run / "results.json").read_text())
    assert results["agent"] == "plugin-mlp" and results["env"] == "translated-44" and results["train_images"] == 64
    assert json.loads((run / "config.json").read_text())["hidden"] == 8
    # A run folder never imports code by itself: the plugins it recorded must be named on the command line.
    refused = in_process("evaluate.py", "--run-dir", str(run), env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert f"--plugins {plugin}" in refused.stderr.strip().splitlines()[-1]
    out = in_process("evaluate.py", "--run-dir", str(run), "--plugins", plugin, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["test_accuracy"] == results["test_accuracy"]


def test_the_old_names_of_the_plugin_api_still_work_with_a_deprecation_warning():
    """README once documented AgentSpec(kind=...) and agents.contract.GlimpseEnv (now family= and EnvSurface:
    ``kind`` is a task's still/video/game, envs.GlimpseEnv the single Gymnasium env)."""
    import agents.contract
    from agents import AgentSpec
    from agents.common import SceneClassifier

    with pytest.warns(DeprecationWarning, match=r"AgentSpec\(kind=...\) is now AgentSpec\(family=...\)"):
        spec = AgentSpec("old-style", SceneClassifier, kind="soft")
    assert spec.family == "soft" and AgentSpec("new-style", SceneClassifier, family="soft").family == "soft"
    with pytest.warns(DeprecationWarning, match="agents.contract.GlimpseEnv is now agents.contract.EnvSurface"):
        assert agents.contract.GlimpseEnv is agents.contract.EnvSurface
    with pytest.raises(AttributeError):
        agents.contract.NoSuchName
