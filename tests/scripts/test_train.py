"""train.py, evaluate.py and visualize.py end to end on the offline data: in this process (tests/script_runs.py), and
a run killed by a signal in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from script_runs import in_process, killed_after_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}

RAM_TAGS = {
    "eval/accuracy", "train/accuracy", "train/reward", "train/loss_policy", "train/loss_baseline",
    "train/loss_classifier", "train/policy_std", "train/policy_entropy", "charts/images_per_second",
}


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    """``python scripts/<name> args``, in this process (:func:`script_runs.in_process`); a failure raises
    :class:`subprocess.CalledProcessError`, as ``subprocess.run(..., check=True)`` does."""
    done = in_process(name, *args, env=ENV)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
    return done


def train(run_dir: Path, *args: str, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    """train.py in this process, or (``wait=False``) started in a subprocess, to be killed."""
    args = ("--run-dir", str(run_dir), "--torch-threads", "1", *args)
    if not wait:
        return subprocess.Popen([sys.executable, str(SCRIPTS / "train.py"), *args], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return script("train.py", *args)


SMALL_RAM = ["--agent", "ram", "--env", "mnist", "--glimpse-size", "8", "--scales", "3", "--glimpses", "3",
             "--batch-size", "32", "--eval-images", "64", "--mc-samples", "2"]


def test_ram_run_writes_events_config_checkpoint_and_results(tmp_path):
    run = tmp_path / "ram"
    train(run, *SMALL_RAM, "--train-images", "256", "--eval-every", "128", "--checkpoint-every", "128")
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0}).Reload()
    assert RAM_TAGS <= set(events.Tags()["scalars"])
    assert "eval/glimpse_paths" in events.Tags()["images"]
    assert [e.step for e in events.Scalars("eval/accuracy")] == [128, 256]
    assert "hyperparameters/text_summary" in events.Tags()["tensors"]
    config = json.loads((run / "config.json").read_text())
    assert config["agent"] == "ram" and config["glimpses"] == 3
    results = json.loads((run / "results.json").read_text())
    assert results["train_images"] == 256 and 0 <= results["test_accuracy"] <= 1
    assert "test_accuracy_mc" in results and results["flops_per_image"] > 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["images_seen"] == 256
    assert not list(run.glob("*.tmp")), "a checkpoint was left half written"

    out = script("evaluate.py", "--run-dir", str(run), "--mc-samples", "2")
    evaluated = json.loads(out.stdout.strip().splitlines()[-1])
    assert evaluated["test_accuracy"] == results["test_accuracy"]  # the deterministic evaluation replays
    assert evaluated["test_accuracy_mc"] == results["test_accuracy_mc"]  # and so do the seeded sampled rollouts
    script("visualize.py", "--run-dir", str(run), "--count", "3")
    assert (run / "viz" / "glimpses.gif").stat().st_size > 0 and (run / "viz" / "paths.png").stat().st_size > 0


SHARED_TAGS = {"eval/accuracy", "train/accuracy", "train/reward", "train/loss_classifier", "charts/train_seconds",
               "charts/images_per_second"}
AGENT_TAGS = {
    "fc": set(), "conv": set(),
    "item-hard": {"train/loss_policy", "train/loss_baseline", "train/policy_entropy"},
    "item-soft": {"train/loss_attention", "train/attention_entropy"},
    "spatial-soft": {"train/loss_attention", "train/attention_entropy"},
    "stn": set(),
    "racnn-soft": {"eval/accuracy_scale1", "eval/accuracy_scale3", "train/loss_rank", "train/box_half_side"},
    "racnn-hard": {"eval/accuracy_scale1", "eval/accuracy_scale3", "train/loss_policy", "train/loss_baseline"},
}


@pytest.mark.parametrize("agent", list(AGENT_TAGS))
def test_every_agent_trains_with_the_shared_tags(tmp_path, agent):
    run = tmp_path / agent
    train(run, "--agent", agent, "--env", "translated-60", "--train-images", "256", "--batch-size", "64",
          "--eval-images", "64", "--glimpses", "3", "--glimpse-size", "12", "--scales", "2", "--mc-samples", "2")
    results = json.loads((run / "results.json").read_text())
    assert results["agent"] == agent and 0 <= results["test_accuracy"] <= 1 and results["flops_per_image"] > 0
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0}).Reload()
    assert SHARED_TAGS | AGENT_TAGS[agent] <= set(events.Tags()["scalars"])
    assert ("eval/glimpse_paths" in events.Tags()["images"]) == (agent == "item-hard")  # hard agents: paths
    soft = agent in ("item-soft", "spatial-soft", "stn", "racnn-soft", "racnn-hard")  # attention pictures
    assert ("eval/attention" in events.Tags()["images"]) == soft
    if agent in ("item-hard", "racnn-hard", "fc"):  # visualize draws paths, attention, or says there is none
        drawn = in_process("visualize.py", "--run-dir", str(run), "--count", "2", env=ENV)
        written = {"item-hard": "paths.png", "racnn-hard": "attention.png"}.get(agent)
        if written is None:
            assert drawn.returncode == 2 and "no attention to draw" in drawn.stderr.strip().splitlines()[-1]
        else:
            assert drawn.returncode == 0 and (run / "viz" / written).stat().st_size > 0, drawn.stderr


def test_agents_that_do_not_apply_are_refused(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as failure:
        train(tmp_path / "stn", "--agent", "stn", "--env", "catch", "--train-images", "32")
    assert "still images" in failure.value.stderr


def test_reinforce_into_core_reaches_ram_and_is_refused_elsewhere(tmp_path):
    from agents.ram import RAMOptions
    from agents.training import Config, make_agent, make_env

    cfg = Config(agent="ram", env="catch", glimpse_size=6, scales=3, options=RAMOptions(reinforce_into_core=True))
    env = make_env(cfg, "train", 4)
    assert make_agent(cfg, env).reinforce_into_core
    cfg.options.reinforce_into_core = False
    assert not make_agent(cfg, env).reinforce_into_core
    with pytest.raises(subprocess.CalledProcessError) as failure:
        train(tmp_path / "conv", "--agent", "conv", "--env", "mnist", "--reinforce-into-core", "--train-images", "32")
    assert "RAM option" in failure.value.stderr


def test_anneal_lr_decays_the_step_size_linearly_to_zero(tmp_path):
    run = tmp_path / "ram"
    train(run, *SMALL_RAM, "--train-images", "256", "--eval-every", "256", "--learning-rate", "2e-3", "--anneal-lr")
    logged = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload().Scalars("charts/learning_rate")
    # Update k (after k * 32 images) runs at 2e-3 * (1 - 32 k / 256); it is logged at step 32 (k + 1).
    assert [e.step for e in logged] == [32 * (k + 1) for k in range(8)]
    assert [e.value for e in logged] == pytest.approx([2e-3 * (1 - k / 8) for k in range(8)], rel=1e-6)
    train(tmp_path / "flat", *SMALL_RAM, "--train-images", "64", "--eval-every", "64")
    flat = EventAccumulator(str(tmp_path / "flat"), size_guidance={"scalars": 0}).Reload().Scalars("charts/learning_rate")
    assert [e.value for e in flat] == pytest.approx([1e-3, 1e-3])


def test_refuses_to_overwrite_a_run(tmp_path):
    run = tmp_path / "ram"
    train(run, *SMALL_RAM, "--train-images", "32")
    with pytest.raises(subprocess.CalledProcessError) as failure:
        train(run, *SMALL_RAM, "--train-images", "32")
    assert "--resume" in failure.value.stderr


SAT_ITEM_HARD = [*SMALL_RAM[2:], "--agent", "item-hard", "--expected-context-prob", "0.5"]


@pytest.mark.e2e  # a signal to a process
def test_resume_after_a_kill_reaches_the_same_result(tmp_path):
    """SIGKILL a run once it has checkpointed; --resume must end exactly where an uninterrupted run does."""
    # The kill lands within 10 ms of the first checkpoint (160 images): 640 more images cannot pass in that time.
    args = [*SMALL_RAM, "--anneal-lr", "--train-images", "800", "--eval-every", "400", "--checkpoint-every", "160"]
    train(tmp_path / "whole", *args)

    killed = tmp_path / "killed"
    process = train(killed, *args, wait=False)
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    if process.poll() is not None:
        pytest.skip("the run finished before it could be killed")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "results.json").exists()
    train(killed, *args, "--resume")
    assert_same_run(tmp_path / "whole", killed, 800)


def test_resume_after_a_kill_in_process_reaches_the_same_result(tmp_path):
    """The same for item-hard with SAT's expected context, which also draws a coin per minibatch from torch's
    RNG: killed (in this process) right after its first checkpoint, then resumed."""
    args = [*SAT_ITEM_HARD, "--train-images", "640", "--eval-every", "160", "--checkpoint-every", "160"]
    train(tmp_path / "whole", *args)
    killed = tmp_path / "killed"
    with killed_after_checkpoint(1):
        assert in_process("train.py", "--run-dir", str(killed), "--torch-threads", "1", *args,
                          env=ENV).returncode == -signal.SIGKILL
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["images_seen"] == 160
    assert not (killed / "results.json").exists()
    train(killed, *args, "--resume")
    assert_same_run(tmp_path / "whole", killed, 640)


def assert_same_run(whole_run: Path, killed: Path, images: int) -> None:
    """The resumed run ended with the uninterrupted run's weights, images seen and test accuracy."""
    whole = torch.load(whole_run / "checkpoint.pt", weights_only=True)
    resumed = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert whole["images_seen"] == resumed["images_seen"] == images
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    first = json.loads((whole_run / "results.json").read_text())
    second = json.loads((killed / "results.json").read_text())
    assert first["test_accuracy"] == second["test_accuracy"]
    # TensorBoard shows the resumed run's curve whole: the evaluation logged just before the checkpoint it resumed
    # from is kept (not purged with the killed run's later events), none is logged twice.
    assert eval_curve(killed) == eval_curve(whole_run)


def eval_curve(run: Path) -> list[tuple[int, float]]:
    """``(step, test accuracy)`` of every evaluation, as TensorBoard reads the run (resumed runs' purges applied)."""
    events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    return [(e.step, e.value) for e in events.Scalars("eval/accuracy")]


def test_folder_of_pictures_trains_racnn_and_needs_a_data_dir(tmp_path):
    """--env folder reads the user's class folders (RGB) from --data-dir; RA-CNN reports each scale."""
    from test_envs import write_image_folder

    root = write_image_folder(tmp_path / "pictures")
    run = tmp_path / "racnn"
    train(run, "--agent", "racnn-soft", "--env", "folder", "--data-dir", str(root), "--train-images", "64",
          "--batch-size", "16", "--eval-images", "3", "--racnn-input-size", "32")
    results = json.loads((run / "results.json").read_text())
    assert {"test_accuracy", "test_accuracy_scale1", "test_accuracy_scale3"} <= set(results)
    with pytest.raises(subprocess.CalledProcessError) as failure:
        train(tmp_path / "no-dir", "--agent", "conv", "--env", "folder", "--train-images", "16")
    assert "--data-dir" in failure.value.stderr


def test_command_flags_read_back_to_the_same_values():
    from agents.training import command_flags, parse_train_config

    values = {"algo": "ppo", "learning_rate": 0.0003, "anneal_lr": True, "normalize_advantages": False,
              "value_clip": None, "target_kl": 0.02, "scale_gain": 4.0, "entropy_coef_final": 0.001}
    cfg = parse_train_config(["--agent", "ram", "--env", "mnist", *command_flags(values)])
    read = {**vars(cfg), **vars(cfg.algorithm), **vars(cfg.options)}  # the run's, the trainer's, the agent's groups
    assert {name: read[name] for name in values} == values


def test_a_flat_config_json_written_before_the_groups_loads_and_round_trips():
    """tests/fixtures/config_flat_2026-12-07.json: written by train.py when Config was one flat dataclass and
    entropy_coef an agent option (ram on Catch, PPO, --glimpse-size 7 --target-kl 0.02 --entropy-coef-final 0.001)."""
    from agents.ram import RAMOptions
    from agents.training import Config, config_from_flat, flat_config

    saved = json.loads((Path(__file__).parents[1] / "fixtures" / "config_flat_2026-12-07.json").read_text())
    cfg = config_from_flat(saved)
    algorithm = cfg.algorithm
    assert (algorithm.algo, algorithm.target_kl, algorithm.entropy_coef, algorithm.entropy_coef_final) == \
        ("ppo", 0.02, 0.01, 0.001)
    assert (cfg.agent, cfg.env, cfg.glimpse_size, cfg.scales, cfg.batch_size, cfg.learning_rate) == \
        ("ram", "catch", 7, 3, 256, 3e-4)
    assert isinstance(cfg.options, RAMOptions) and (cfg.options.core, cfg.options.hidden) == ("lstm", 128)
    flat = flat_config(cfg)
    run_only = ("data", "world_size")  # what train.py adds to config.json beside the flags
    assert {k: flat[k] for k in saved if k not in run_only} == {k: v for k, v in saved.items() if k not in run_only}
    # The flags added since (the recipe, the validation split, the hard agents' credit options) load at their
    # defaults: no recipe recorded, no validation split, the paper's credit.
    added = set(flat) - set(saved)
    plain = flat_config(Config(agent="ram"))
    assert "recipe" in added and {k: flat[k] for k in added - {"recipe"}} == {k: plain[k] for k in added - {"recipe"}}
    assert cfg.recipe == "default" and cfg.val_images == 0
