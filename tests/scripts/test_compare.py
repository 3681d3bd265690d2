"""scripts/compare.py end to end, in this process: every run with identical tags, the TensorBoard layout, the plot
and the table."""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
from pathlib import Path

import numpy as np
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins import base_plugin
from tensorboard.plugins.custom_scalar.custom_scalars_plugin import CustomScalarsPlugin
from tensorboard.plugins.scalar.scalars_plugin import ScalarsPlugin
from torch.utils.tensorboard import SummaryWriter

from agents import sweep
from script_runs import InProcessPopen, in_process

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def compare_script() -> dict:
    """scripts/compare.py's names (it is a script, not a module), run without its ``__main__`` block."""
    return runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "compare.py"), run_name="compare_for_test")


def tensorboard_plugins(logdir: Path) -> tuple[CustomScalarsPlugin, list[str]]:
    """TensorBoard's own loading of ``logdir``: its Custom Scalars plugin (over the Scalars plugin) and runs."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    tb = base_plugin.TBContext(logdir=str(logdir), multiplexer=multiplexer, plugin_name_to_instance={},
                               data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(logdir)))
    for plugin in (ScalarsPlugin(tb), CustomScalarsPlugin(tb)):
        tb.plugin_name_to_instance[plugin.plugin_name] = plugin
    return tb.plugin_name_to_instance["custom_scalars"], sorted(multiplexer.Runs())


def chart_lines(plugin: CustomScalarsPlugin, runs: list[str], chart: dict) -> dict[str, dict[str, list]]:
    """What the Custom Scalars page draws for one chart of the layout, as its frontend asks for it: the
    chart's tag filter (regexes joined, or a Margin chart's escaped tag names) in every run; one line per
    matching (run, tag), coloured by its run. Returns run -> tag -> [(step, value)]."""
    if "multiline" in chart:
        regexes = chart["multiline"]["tag"]
        pattern = regexes[0] if len(regexes) == 1 else "|".join(f"({r})" for r in regexes)
    else:
        tags = [t for series in chart["margin"]["series"] for t in (series["value"], series["lower"], series["upper"])]
        pattern = "|".join(f"({re.escape(t)})" for t in tags)
    lines = {}
    for run in runs:
        body = plugin.scalars_impl(context.RequestContext(), run, pattern, "")
        assert body["regex_valid"], pattern
        if body["tag_to_events"]:
            lines[run] = {tag: [(step, value) for _, step, value in events]
                          for tag, events in body["tag_to_events"].items()}
    return lines


def check_aggregate_runs(out: Path, agents: dict[str, str]) -> None:
    """Each agent's mean / min / max over seeds is a run of its own, ``mean-<agent>``, under tags common to
    all agents (and to its kind); every Custom Scalars chart draws one line per agent of its kind."""
    seeds = {a: np.array([[e.value for e in EventAccumulator(str(out / f"mnist__{a}__{s}"), size_guidance={"scalars": 0})
                           .Reload().Scalars("eval/accuracy")] for s in (1, 2)]) for a in agents}  # (seeds, evals)
    plugin, runs = tensorboard_plugins(out)
    for agent, kind in agents.items():
        events = EventAccumulator(str(out / f"mean-{agent}"), size_guidance={"scalars": 0}).Reload()
        common = {f"compare/accuracy_{s}" for s in ("mean", "min", "max")}
        assert set(events.Tags()["scalars"]) == common | {f"compare/{kind}/accuracy_{s}" for s in ("mean", "min", "max")}
        for prefix in ("compare", f"compare/{kind}"):
            for summary, expected in (("mean", seeds[agent].mean(0)), ("min", seeds[agent].min(0)),
                                      ("max", seeds[agent].max(0))):
                got = events.Scalars(f"{prefix}/accuracy_{summary}")
                assert [e.step for e in got] == [64, 128]
                np.testing.assert_allclose([e.value for e in got], expected, rtol=0, atol=1e-6)

    layout = json.loads(plugin.layout_impl(context.RequestContext(), ""))
    charts = {(c["title"], ch["title"]): ch for c in layout["category"] for ch in c["chart"]}
    means, bands = "hard vs soft: test accuracy, mean over seeds", "hard vs soft: test accuracy, mean and min-max over seeds"
    assert set(charts) == {(cat, t) for cat in (means, bands)
                           for t in ("all agents", "hard attention", "soft attention", "baselines")}
    chart_kind = {"all agents": None, "hard attention": "hard", "soft attention": "soft", "baselines": "baseline"}
    for (category, title), chart in charts.items():
        expected = [a for a, k in agents.items() if chart_kind[title] in (None, k)]
        lines = chart_lines(plugin, runs, chart)
        assert sorted(lines) == sorted(f"mean-{a}" for a in expected), (category, title)  # one colour per agent
        for agent in expected:
            drawn = lines[f"mean-{agent}"]
            mean_tag = next(t for t in drawn if t.endswith("accuracy_mean"))
            assert len(drawn) == (1 if category == means else 3)  # the mean, or the mean and its band
            np.testing.assert_allclose([v for _, v in drawn[mean_tag]], seeds[agent].mean(0), rtol=0, atol=1e-6)


def test_short_comparison_writes_runs_layout_plot_and_table(tmp_path, monkeypatch):
    """compare.py and its train.py runs in this process (run_parallel's subprocesses: InProcessPopen; the
    sweep's real processes are tested with ram_table.py and in tests/agents/test_runs.py)."""
    monkeypatch.setattr(sweep, "subprocess", InProcessPopen)
    out = tmp_path / "cmp"
    cmd = ["--env", "mnist", "--agents", "ram,item-soft,racnn-soft,conv",
           "--seeds", "2", "--train-images", "128", "--eval-every", "64", "--eval-images", "32", "--batch-size", "32",
           "--glimpse-size", "8", "--scales", "2", "--glimpses", "2", "--mc-samples", "2", "--jobs", "2",
           "--val-images", "40", "--out", str(out)]
    first = in_process("compare.py", *cmd, env=ENV)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("start ") == 8  # every seed of every agent trained

    agents = {"conv": "baseline", "item-soft": "soft", "racnn-soft": "soft", "ram": "hard"}
    runs = sorted(p.name for p in out.iterdir() if p.is_dir())
    seed_runs = [f"mnist__{a}__{s}" for a in agents for s in (1, 2)]
    assert runs == sorted(seed_runs + [f"mean-{a}" for a in agents])
    assert not list(out.glob("events.out.tfevents.*"))  # no aggregate run "." any more
    for name in seed_runs:  # identical tags, so TensorBoard overlays them
        events = EventAccumulator(str(out / name), size_guidance={"scalars": 0}).Reload()
        assert [e.step for e in events.Scalars("eval/accuracy")] == [64, 128]
        assert {"train/loss_classifier", "train/accuracy", "charts/train_seconds"} <= set(events.Tags()["scalars"])
    check_aggregate_runs(out, agents)

    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "comparison.md").read_text()
    for name in ("| RAM | hard |", "| item-wise soft | soft |", "| RA-CNN soft | soft |", "| conv | baseline |"):
        assert name in table
    assert "| agent | scale 1 acc. | scale 2 acc. | scale 3 acc. | fused acc. |" in table  # RA-CNN's scales
    written = shlex.split(re.search(r"Command: `([^`]*)`", table).group(1))
    assert written[:2] == ["python", "scripts/compare.py"]
    titles = {"ram": "RAM", "item-soft": "item-wise soft", "racnn-soft": "RA-CNN soft", "conv": "conv"}
    for agent, name in titles.items():  # each row from its seeds' results.json, rebuilt here
        results = [json.loads((out / f"mnist__{agent}__{s}" / "results.json").read_text()) for s in (1, 2)]
        assert all(r["val_images"] == 40 for r in results)  # every run held out the same 40 items, reported
        test, val = (np.array([100 * (1 - r[f"{split}_accuracy"]) for r in results]) for split in ("test", "val"))
        mc = [100 * (1 - r["test_accuracy_mc"]) for r in results if "test_accuracy_mc" in r]
        cells = next(line for line in table.splitlines() if line.startswith(f"| {name} |")).split(" | ")
        assert cells[2:6] == [f"{test.mean():.2f} +- {test.std():.2f}", ", ".join(f"{e:.1f}" for e in test),
                              f"{np.mean(mc):.2f} +- {np.std(mc):.2f}" if agent == "ram" else "–",
                              f"{val.mean():.2f} +- {val.std():.2f}"], cells
        if agent == "racnn-soft":  # its accuracy per scale, then fused, means over the seeds
            scales = [np.mean([r[f"test_accuracy_scale{k}"] for r in results]) for k in (1, 2, 3)]
            fused = np.mean([r["test_accuracy"] for r in results])
            assert f"| RA-CNN soft | {' | '.join(f'{a:.3f}' for a in scales)} | {fused:.3f} |" in table

    # The command the table names, run again, reuses the finished runs instead of training them again.
    again = in_process("compare.py", *written[2:], env=ENV)
    assert again.returncode == 0 and "start" not in again.stdout, again.stderr
    assert all(len(list((out / f"mean-{a}").glob("events.out.tfevents.*"))) == 1 for a in agents)  # rewritten, not added
    check_aggregate_runs(out, agents)

    # A finished run is reused only for the command that made it: another flag is one line naming it.
    other = in_process("compare.py", *cmd, "--learning-rate", "0.01", env=ENV)
    assert other.returncode == 2 and "start" not in other.stdout, other.stderr
    [line] = other.stderr.strip().splitlines()
    assert "mnist__ram__1 holds a finished run that this command did not make" in line and "--learning-rate" in line


def test_an_agent_twice_or_an_out_that_is_a_run_folder_or_a_file_is_one_line_and_touches_nothing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text("{}")
    (run / "events.out.tfevents.1.host").write_text("a run's history")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for args, words in ((["--agents", "fc, conv,fc"], "--agents lists fc more than once"),
                        (["--out", str(run)], f"--out {run} is a train.py run folder"),
                        (["--out", str(a_file)], f"--out {a_file}: cannot make the folder there")):
        done = in_process("compare.py", "--env", "mnist", "--train-images", "0", *args, env=ENV)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert words in line, line
    assert sorted(p.name for p in run.iterdir()) == ["events.out.tfevents.1.host", "results.json"]


def test_a_failed_runs_message_is_its_logs_last_words_not_the_frame_around_them(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("data: ...\n╭─ Parsing error ─╮\n│ Invalid choice: 'foo' for --dataset │\n╰─────────╯\n\n")
    assert sweep.last_line(log) == "Invalid choice: 'foo' for --dataset"


def test_target_kl_goes_to_the_hard_agents_on_their_recipes_algo():
    """--target-kl without --hard-algo reaches the hard agents (their recipes train by PPO); with --hard-algo
    reinforce, which has no KL guard, it is refused."""
    from agents import training  # noqa: PLC0415

    compare = compare_script()
    cfg = compare["Config"](task=compare["CompareTask"](env="cluttered-60"), target_kl=0.02)
    for agent, expected in (("ram", 0.02), ("item-hard", 0.02), ("stn", None)):
        parsed = training.parse_train_config(compare["train_command"](cfg, agent, 1, threads=1)[2:])
        assert parsed.algorithm.target_kl == expected and parsed.algorithm.algo == ("reinforce" if expected is None
                                                                                    else "ppo"), agent
    refused = in_process("compare.py", "--target-kl", "0.02", "--hard-algo", "reinforce", env=ENV)
    assert refused.returncode == 2 and "--target-kl 0.02 is PPO's KL guard" in refused.stderr, refused.stderr


def test_retina_and_glimpses_default_to_the_tasks_budget_through_each_agents_recipe():
    """compare.py names no retina unless told: every agent's recipe gives the task's budget (the same for all)."""
    from agents import training  # noqa: PLC0415
    from agents.recipes import TASK_BUDGETS  # noqa: PLC0415

    compare = compare_script()
    config, task, train_command = compare["Config"], compare["CompareTask"], compare["train_command"]
    budget = TASK_BUDGETS["cluttered-60"]
    for agent in ("ram", "stn", "conv"):
        command = train_command(config(task=task(env="cluttered-60")), agent, 1, threads=1)
        assert not {"--glimpse-size", "--scales", "--glimpses"} & set(command)
        parsed = training.parse_train_config(command[2:])
        assert (parsed.glimpse_size, parsed.scales, parsed.glimpses) == (
            budget["glimpse_size"], budget["scales"], budget["glimpses"])
    told = train_command(config(task=task(env="cluttered-60", glimpses=4)), "ram", 1, threads=1)
    assert training.parse_train_config(told[2:]).glimpses == 4  # a flag given is every agent's


def test_the_mean_over_seeds_matches_evaluations_by_step(tmp_path):
    """A seed that lacks an evaluation (a run resumed by an older train.py, which dropped the one at its checkpoint)
    leaves that step out of the mean; the others are averaged step by step, never by position."""
    compare = compare_script()
    cfg = compare["Config"](task=compare["CompareTask"](env="mnist"), seeds=2, out=str(tmp_path))
    curves = {1: {10: 0.1, 20: 0.2, 40: 0.4, 50: 0.5}, 2: {10: 0.3, 20: 0.4, 30: 0.5, 40: 0.6, 50: 0.7}}
    for seed, curve in curves.items():
        run = tmp_path / compare["run_name"](cfg, "conv", seed)
        with SummaryWriter(str(run)) as writer:
            for step, accuracy in curve.items():
                writer.add_scalar("eval/accuracy", accuracy, step)
                writer.add_scalar("charts/train_seconds", step / 10, step)
        (run / "results.json").write_text(json.dumps({"test_accuracy": curve[50]}))
    [row] = compare["summarize"](cfg, ["conv"])
    assert row["images"].tolist() == [10, 20, 40, 50]
    np.testing.assert_allclose(row["accuracy"], [[0.1, 0.2, 0.4, 0.5], [0.3, 0.4, 0.6, 0.7]], atol=1e-6)
    np.testing.assert_allclose(row["seconds"][0], [1, 2, 4, 5], atol=1e-6)
