"""agents/episodes.py: the episode buffer against stacking the steps by hand, gradients included."""

from __future__ import annotations

import pytest
import torch

from agents.episodes import EpisodeBuffer
from glimpse.reinforce import discounted_returns

N, T, GLIMPSE = 3, 4, (1, 1, 2, 2)


def steps(requires_grad: bool):
    """``T`` steps of random per-step values, and the first observation."""
    torch.manual_seed(0)
    weight = torch.ones((), requires_grad=requires_grad)
    first = {"glimpse": torch.rand(N, *GLIMPSE), "location": torch.rand(N, 2)}
    rows = [dict(state=torch.rand(N, 5) * weight, baseline=torch.rand(N) * weight,
                 reward=torch.rand(N), location=torch.rand(N, 2),
                 obs={"glimpse": torch.rand(N, *GLIMPSE), "location": torch.rand(N, 2)},
                 look_log_prob=torch.rand(N) * weight, look_entropy=torch.rand(N), look_raw=torch.rand(N, 2),
                 decision_log_prob=torch.rand(N) * weight, decision_entropy=torch.rand(N),
                 decision_raw=torch.randint(3, (N,)))
            for _ in range(T)]
    return weight, first, rows


def fill(first, rows, record: bool) -> EpisodeBuffer:
    buffer = EpisodeBuffer(T, first, record=record)
    for t, row in enumerate(rows, 1):
        if t == T:  # the last look is not scored
            row = {**row, "look_log_prob": None, "look_entropy": None, "look_raw": None}
        buffer.add(**row)
    return buffer


@pytest.mark.parametrize("requires_grad", [False, True])
def test_get_is_the_steps_stacked(requires_grad):
    weight, first, rows = steps(requires_grad)
    ro = fill(first, rows, record=True).get()
    stack = lambda key, rows=rows: torch.stack([row[key] for row in rows], dim=1)  # noqa: E731
    for field, key in (("states", "state"), ("baselines", "baseline"), ("rewards", "reward"),
                       ("decision_log_probs", "decision_log_prob"), ("decision_entropies", "decision_entropy")):
        assert torch.equal(getattr(ro, field), stack(key)), field
    assert torch.equal(ro.log_probs, stack("look_log_prob", rows[:-1]))
    assert torch.equal(ro.entropies, stack("look_entropy", rows[:-1]))
    assert torch.equal(ro.returns, discounted_returns(stack("reward"), gamma=1.0))
    assert torch.equal(ro.locations, torch.stack([first["location"]] + [row["location"] for row in rows], dim=1))
    # a replay reads each step's observation: the first one, then those the env returned (not the last)
    glimpses = torch.stack([first["glimpse"]] + [row["obs"]["glimpse"] for row in rows[:-1]], dim=1)
    assert torch.equal(ro.record["glimpses"], glimpses)
    assert torch.equal(ro.record["looks"], stack("look_raw", rows[:-1]))
    assert torch.equal(ro.record["decisions"], stack("decision_raw"))
    if requires_grad:
        (ro.baselines.sum() + ro.log_probs.sum()).backward()
        expected = sum(float(row["baseline"].detach().sum()) for row in rows) + sum(
            float(row["look_log_prob"].detach().sum()) for row in rows[:-1])
        torch.testing.assert_close(weight.grad, torch.tensor(expected))  # d(w * x)/dw = x, summed


def test_without_record_or_policies_nothing_extra_is_kept():
    _, first, rows = steps(False)
    rows = [{**row, "decision_log_prob": None, "decision_entropy": None, "decision_raw": None} for row in rows]
    ro = fill(first, rows, record=False).get(logits=torch.zeros(N, 10), labels=torch.zeros(N, dtype=torch.long))
    assert ro.record is None and ro.decision_log_probs is None and ro.decision_entropies is None
    assert ro.logits.shape == (N, 10) and ro.labels.shape == (N,)


def test_an_episode_of_one_step_scores_no_look():
    _, first, rows = steps(False)
    buffer = EpisodeBuffer(1, first)
    buffer.add(**{**rows[0], "look_log_prob": None, "look_entropy": None, "look_raw": None})
    ro = buffer.get()
    assert ro.log_probs.shape == ro.entropies.shape == (N, 0) and ro.rewards.shape == (N, 1)


def test_get_before_the_last_step_is_refused():
    _, first, rows = steps(False)
    buffer = EpisodeBuffer(T, first)
    buffer.add(**rows[0])
    with pytest.raises(RuntimeError, match="the episode has 1 of its 4 steps"):
        buffer.get()
