"""Collection settings for the whole tree (``--doctest-modules`` imports every module of the packages)."""

import importlib.util

# envs.torchrl_env needs the optional torchrl extra: without it, its doctests are not collected (its tests
# in tests/envs/test_torchrl_env.py skip themselves).
collect_ignore = [] if importlib.util.find_spec("torchrl") else ["envs/torchrl_env.py"]
