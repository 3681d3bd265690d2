"""The README's Python examples run as written (PPO's rollout and learn() shortened), so the README stays true."""

import importlib.util
import re
import warnings
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2, "the README lost its environment and SB3 examples"
    has_torchrl = importlib.util.find_spec("torchrl") is not None
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the offline-data notice
        for block in blocks:
            if "torchrl" in block and not has_torchrl:
                continue  # the optional extra: run where it is installed (CI installs it)
            short = block.replace("model.learn(100_000)", "model.learn(64)")
            short = short.replace('PPO("MultiInputPolicy", venv, ', 'PPO("MultiInputPolicy", venv, n_steps=4, batch_size=64, ')
            exec(short, namespace)
    assert tuple(namespace["obs"]["glimpse"].shape) == (256, 3, 1, 12, 12)
    assert tuple(namespace["returns"].shape) == (8,)  # the wrappers example: episodes of 3 glimpses, all ended
    assert set(namespace["returns"].tolist()) <= {0.0, 1.0}
    if has_torchrl:  # the TorchRL example: 16 envs x 12 steps, 2 whole episodes each
        assert namespace["rollout"].batch_size == (16, 12)
        assert tuple(namespace["episode_returns"].shape) == (32,)
        assert set(namespace["episode_returns"].tolist()) <= {0.0, 1.0}
