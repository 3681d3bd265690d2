"""Progress fits where the output goes (agents.progress): a live bar on a terminal, whole lines in a file."""

from __future__ import annotations

import io

import pytest

from agents import progress as progress_module
from agents.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_live_bar_with_the_last_evaluation():
    stream = Terminal()
    with Progress(184, unit="step", desc="eval/success", stream=stream) as bar:
        bar.update(92)
        bar.report({"eval/success": "0.250"})
        bar.update(92)
    text = stream.getvalue()
    assert "184/184" in text and "eval/success=0.250" in text and "\r" in text


def test_a_file_gets_one_line_per_evaluation_at_most_one_per_interval(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 40.0, 41.0, 42.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    with Progress(1000, initial=100, unit="img", desc="ram mnist", stream=stream, min_interval=30.0) as bar:
        for accuracy in ("0.1", "0.2", "0.3", "0.4"):  # at 1, 2, 40, 41 s
            bar.update(100)
            bar.report({"eval_accuracy": accuracy})
        bar.update(500)
        bar.report({"eval_accuracy": "0.9"}, final=True)  # at 42 s: the last line always comes
    lines = stream.getvalue().splitlines()
    assert lines == ["ram mnist: 200/1,000 img (20 %) | eval_accuracy 0.1 | 1 s",
                     "ram mnist: 400/1,000 img (40 %) | eval_accuracy 0.3 | 40 s",
                     "ram mnist: 1,000/1,000 img (100 %) | eval_accuracy 0.9 | 42 s"]
    assert "\r" not in stream.getvalue()


@pytest.mark.parametrize("stream", [io.StringIO(), Terminal()])
def test_disabled_or_line_free_progress_writes_nothing(stream):
    with Progress(10, stream=stream, enabled=False) as bar:
        bar.update(10)
        bar.report({"x": "1"}, final=True)
    with Progress(10, stream=io.StringIO(), lines=False) as quiet:
        quiet.report({"x": "1"}, final=True)
        assert quiet.stream.getvalue() == ""
    assert stream.getvalue() == ""
