"""The counter-based RNG against a pure-Python SplitMix64 reference, and its batching property."""

import torch

from envs import rng

M = (1 << 64) - 1


def mix_reference(x: int) -> int:
    x &= M
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M
    return x ^ (x >> 31)


def uniform_reference(key: int, episode: int, stream: int, element: int) -> float:
    g = 0x9E3779B97F4A7C15
    base = mix_reference((mix_reference(key + g * (stream + 1)) + episode * g) & M)
    return (mix_reference(base + (element + 1) * g) >> 11) * 2.0**-53


def test_matches_python_splitmix_reference():
    keys = torch.tensor([0, 1, 12345, 2**40 + 7])
    episodes = torch.tensor([0, 3, 1, 99])
    out = rng.uniform(keys, episodes, stream=5, shape=(2, 3))
    for n in range(4):
        for j in range(6):
            assert out[n].reshape(-1)[j].item() == uniform_reference(int(keys[n]), int(episodes[n]), 5, j)


def test_batch_row_equals_single_env_with_shifted_seed():
    batch = rng.uniform(rng.keys_from_seed(7, 4), torch.zeros(4, dtype=torch.long), stream=0, shape=(5,))
    for i in range(4):
        single = rng.uniform(rng.keys_from_seed(7 + i, 1), torch.zeros(1, dtype=torch.long), stream=0, shape=(5,))
        assert torch.equal(batch[i], single[0])


def test_streams_and_episodes_differ_and_values_look_uniform():
    keys, ep = rng.keys_from_seed(0, 1), torch.zeros(1, dtype=torch.long)
    a = rng.uniform(keys, ep, stream=0, shape=(20000,))
    assert not torch.equal(a, rng.uniform(keys, ep, stream=1, shape=(20000,)))
    assert not torch.equal(a, rng.uniform(keys, ep + 1, stream=0, shape=(20000,)))
    assert 0 <= a.min() and a.max() < 1
    assert abs(a.mean().item() - 0.5) < 0.01 and abs(a.var().item() - 1 / 12) < 0.005
    counts = torch.bincount(rng.integers(keys, ep, 2, 10, (50000,))[0], minlength=10)
    assert counts.min() > 4500 and counts.max() < 5500
    z = rng.normal(keys, ep, 3, (50000,))
    assert abs(z.mean().item()) < 0.02 and abs(z.std().item() - 1) < 0.02


def test_integers_respect_per_row_bounds():
    high = torch.tensor([[1], [3], [1000]])
    out = rng.integers(rng.keys_from_seed(1, 3), torch.zeros(3, dtype=torch.long), 0, high, (500,))
    assert (out >= 0).all() and (out < high).all() and (out[0] == 0).all()
