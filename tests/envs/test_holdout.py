"""The validation split: ``envs.data.hold_out`` (fixed held-out items, the rest in order, recorded as used) and the
env's ``split="val"`` with ``val_size`` (a fixed set of the held-out items; training never shows one)."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import envs  # noqa: F401  (registers the glimpse ids)
from envs import data

pytestmark = pytest.mark.filterwarnings("ignore::envs.data.OfflineSubsetWarning")


def offline_train() -> data.DigitDataset:
    return data.load_digits("mnist", "train")


def as_rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(image.flatten().tolist()) for image in images}


# --- envs.data.hold_out ------------------------------------------------------------------------------------------


def test_the_held_out_items_and_the_rest_partition_the_training_split_in_their_order():
    whole = offline_train()
    train, val = data.hold_out(whole, 300, "train"), data.hold_out(whole, 300, "val")
    assert (len(train), len(val)) == (3700, 300) and (train.split, val.split) == ("train", "val")
    held = data.held_out_indices(len(whole), 300)
    kept = torch.tensor(sorted(set(range(len(whole))) - set(held.tolist())))
    assert torch.equal(val.images, whole.images[held]) and torch.equal(val.labels, whole.labels[held])
    assert torch.equal(train.images, whole.images[kept]) and torch.equal(train.labels, whole.labels[kept])
    assert held.unique().numel() == 300 and bool((held.diff() > 0).all())  # distinct, in the split's order
    # Every class is held out at about its share (a uniform draw: 30 of 300 expected per class here).
    assert set(val.labels.tolist()) == set(range(10)) and max(torch.bincount(val.labels).tolist()) < 60


def test_the_held_out_items_are_fixed_whatever_the_seed_and_nest_as_the_count_grows():
    torch.manual_seed(0)
    first = data.held_out_indices(4000, 100)
    torch.manual_seed(12345)
    assert torch.equal(data.held_out_indices(4000, 100), first)  # not torch's global stream
    larger = set(data.held_out_indices(4000, 500).tolist())
    assert set(first.tolist()) <= larger  # a larger validation split holds the smaller one


def test_hold_out_records_the_part_it_returns_in_place_of_the_whole():
    with data.recording() as loaded:
        part = data.hold_out(offline_train(), 50, "val")
    assert loaded == [part]
    record = data.provenance(part)
    assert (record["split"], record["size"]) == ("val", 50) and "50 items held out" in record["source"]


@pytest.mark.parametrize("count, split, message", [
    (0, "val", "val_size must be a positive int"),
    (True, "val", "val_size must be a positive int"),
    (4000, "val", "val_size=4000 leaves nothing to train on: the training split holds 4000 items"),
    (10, "test", "split must be one of ('train', 'val')"),
])
def test_hold_out_refuses_what_leaves_no_split(count, split, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.hold_out(offline_train(), count, split)


def test_only_a_training_split_has_items_to_hold_out():
    with pytest.raises(ValueError, match="held out of the training split; got the 'test' split"):
        data.hold_out(data.load_digits("mnist", "test"), 10, "val")


# --- the env ---------------------------------------------------------------------------------------------------


TWO_LOOKS = dict(num_glimpses=2, autoreset_mode="SameStep")  # a new episode shows after every 2nd step


def test_the_val_split_is_a_fixed_set_showing_each_held_out_digit_once_and_training_never_shows_one():
    whole, n, size = offline_train(), 8, 40
    held = as_rows(data.hold_out(whole, size, "val").images)
    seen: list[bytes] = []
    for seed in (0, 7):  # the same set whatever the seed
        env = gym.make_vec("glimpse/MNIST-v0", num_envs=n, split="val", val_size=size, **TWO_LOOKS)
        env.reset(seed=seed)
        shown = []
        for _ in range(size // n):  # ceil(M / N) episodes of N envs cover the M items once
            pictures, _ = env.scene()
            shown += [bytes(p.flatten().tolist()) for p in pictures]
            for _ in range(2):
                env.step(env.action_space.sample())
        assert sorted(shown) == sorted(held)
        seen.append(b"".join(sorted(shown)))
    assert seen[0] == seen[1]
    train = gym.make_vec("glimpse/MNIST-v0", num_envs=64, split="train", val_size=size, **TWO_LOOKS)
    train.reset(seed=3)
    for _ in range(10):
        pictures, _ = train.scene()
        assert not as_rows(pictures) & held
        for _ in range(2):
            train.step(train.action_space.sample())


def test_without_val_size_training_plays_the_whole_split():
    with data.recording() as loaded:
        gym.make_vec("glimpse/MNIST-v0", num_envs=2)
    assert [(d.split, len(d)) for d in loaded] == [("train", 4000)]


@pytest.mark.parametrize("kwargs, message", [
    (dict(split="val"), "split='val' is held out of the training split: pass val_size > 0"),
    (dict(split="valid", val_size=5), "split must be one of ('train', 'val', 'test')"),
    (dict(val_size=-1), "val_size"),
    (dict(split="val", val_size=4000), "val_size=4000 leaves nothing to train on"),
])
def test_the_env_refuses_a_val_split_it_cannot_hold_out(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gym.make_vec("glimpse/MNIST-v0", num_envs=2, **kwargs)


def test_a_task_without_a_data_set_refuses_val_size():
    with pytest.raises(ValueError, match="val_size=10: task 'catch' loads no training split"):
        gym.make_vec("glimpse/Catch-v0", num_envs=2, val_size=10)
