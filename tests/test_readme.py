"""The README's Python examples run as written (PPO's rollout and learn() shortened), so the README stays true."""

import re
import warnings
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2, "the README lost its environment and SB3 examples"
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the offline-data notice
        for block in blocks:
            short = block.replace("model.learn(100_000)", "model.learn(64)")
            short = short.replace('PPO("MultiInputPolicy", venv, ', 'PPO("MultiInputPolicy", venv, n_steps=4, batch_size=64, ')
            exec(short, namespace)
    assert tuple(namespace["obs"]["glimpse"].shape) == (256, 3, 1, 12, 12)
    assert tuple(namespace["returns"].shape) == (8,)  # the wrappers example: episodes of 3 glimpses, all ended
    assert set(namespace["returns"].tolist()) <= {0.0, 1.0}
