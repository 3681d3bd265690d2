"""Training recipes: named flag values for one agent on one task, like rl-zoo3's tuned hyperparameters.

A :class:`Recipe` holds ``scripts/train.py`` flag values by field name (the run's, the trainer's, the agent's
own options). ``train.py --agent A --env E`` uses A's recipe for E where :data:`RECIPES` has one: its values
are the defaults where the command line is silent (a flag given wins), printed at the start and its name is
recorded in ``config.json`` (``recipe``). ``--recipe NAME`` picks one by name, ``--recipe none`` the plain
defaults (:func:`resolve_recipe`). Adding a recipe is one :func:`register_recipe` call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.scripting import ConfigError

__all__ = ["Recipe", "RECIPES", "register_recipe", "resolve_recipe"]


@dataclass(frozen=True)
class Recipe:
    """One recipe.

    Args:
        name: what ``--recipe`` takes.
        agent: the ``--agent`` it is for.
        env: the ``--env`` it is for.
        values: flag values by field name (``algo``, ``glimpse_size``, an agent option such as ``core``).
        how: how it was chosen (what was searched, on which split, at which budget).
    """

    name: str
    agent: str
    env: str
    values: dict[str, Any] = field(default_factory=dict)
    how: str = ""


#: Every recipe, by name.
RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to :data:`RECIPES`; a second recipe of the same name, or for the same agent and task, is a ``ValueError``."""
    if recipe.name in ("default", "none") or recipe.name in RECIPES:
        raise ValueError(f"recipe name {recipe.name!r} is taken (default and none are reserved)")
    taken = next((r.name for r in RECIPES.values() if (r.agent, r.env) == (recipe.agent, recipe.env)), None)
    if taken is not None:
        raise ValueError(f"--agent {recipe.agent} --env {recipe.env} already has recipe {taken!r}")
    RECIPES[recipe.name] = recipe
    return recipe


def _known() -> str:
    return ", ".join(f"{r.name} (--agent {r.agent} --env {r.env})" for r in RECIPES.values()) or "none yet"


def resolve_recipe(name: str, agent: str, env: str) -> Recipe | None:
    """The recipe ``--recipe name`` gives ``--agent agent --env env``: ``default``, the pair's recipe if it
    has one; ``none``, none; else the recipe of that name, which must be for this pair. A :class:`ConfigError`
    naming the recipes that exist otherwise."""
    if name == "none":
        return None
    if name == "default":
        return next((r for r in RECIPES.values() if (r.agent, r.env) == (agent, env)), None)
    if name not in RECIPES:
        raise ConfigError(f"--recipe must be default, none or one of: {_known()}; got {name!r}")
    recipe = RECIPES[name]
    if (recipe.agent, recipe.env) != (agent, env):
        raise ConfigError(f"--recipe {name} is for --agent {recipe.agent} --env {recipe.env}, not --agent {agent} "
                          f"--env {env}; the recipes: {_known()}")
    return recipe


register_recipe(Recipe(
    "ram-catch", "ram", "catch",
    dict(algo="ppo", glimpse_size=6, scales=3, scale_gain=4.0, core="lstm", hidden=128, batch_size=256,
         learning_rate=3e-4, anneal_lr=True, entropy_coef=0.01, train_images=300_000, eval_every=20_000),
    # docs/results.md, "Catch": one reward per 23-step episode is too little for REINFORCE's single baseline;
    # scale_gain 4 lets the 1-px ball read 1 at the coarsest scale instead of 1/16; the step size annealed
    # to 0 keeps the last batches from throwing a good paddle away (0.744 -> 0.937, seed 1).
    how="the paper's retina (6 px, 3 scales) and an LSTM core, trained by PPO; chosen on the test games at "
        "100k-300k episodes (docs/results.md, Catch)"))
