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

import envs
from agents.registry import AGENTS
from agents.scripting import ConfigError

__all__ = ["Recipe", "RECIPES", "TASK_BUDGETS", "register_recipe", "resolve_recipe"]


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
    naming the recipes that exist otherwise. ``env`` may be a task's Gym id: its task's recipe."""
    if name == "none":
        return None
    try:
        env = envs.task_of(env).name
    except ValueError:
        pass  # an unknown --env has no recipe; the task's own check names it
    if name == "default":
        return next((r for r in RECIPES.values() if (r.agent, r.env) == (agent, env)), None)
    if name not in RECIPES:
        raise ConfigError(f"--recipe must be default, none or one of: {_known()}; got {name!r}")
    recipe = RECIPES[name]
    if (recipe.agent, recipe.env) != (agent, env):
        raise ConfigError(f"--recipe {name} is for --agent {recipe.agent} --env {recipe.env}, not --agent {agent} "
                          f"--env {env}; the recipes: {_known()}")
    return recipe


#: Each task's glimpse budget: the retina (side, scales) and the glimpses per image, the same in every agent's recipe
#: for the task, so that agents compare at equal budgets (the RAM paper's, Mnih et al. 2014, sec. 4.1, where it has
#: the task; video and Catch glimpse once per frame).
TASK_BUDGETS: dict[str, dict[str, Any]] = {
    "mnist": dict(glimpses=6, glimpse_size=8, scales=1),
    "translated-60": dict(glimpses=8, glimpse_size=12, scales=3),
    "cluttered-60": dict(glimpses=8, glimpse_size=12, scales=3),
    "cluttered-100": dict(glimpses=8, glimpse_size=12, scales=4),
    "small-100": dict(glimpses=6, glimpse_size=12, scales=3),
    "moving-mnist": dict(glimpse_size=12, scales=3),
    "catch": dict(glimpse_size=6, scales=3),
}
_PAPER_BUDGET = "the task's glimpse budget (TASK_BUDGETS: the RAM paper's retina where it has the task)"
_NOT_SEARCHED = f"{_PAPER_BUDGET}; every other value at its default, not searched on this task"
#: RA-CNN's scales each see the canvas at 50x50 on the 100-px canvases (docs/results.md, RA-CNN: the setting measured).
_RACNN_100 = dict(racnn_input_size=50)

register_recipe(Recipe(
    "ram-catch", "ram", "catch",
    dict(**TASK_BUDGETS["catch"], algo="ppo", scale_gain=4.0, core="lstm", hidden=128, batch_size=256,
         learning_rate=3e-4, anneal_lr=True, entropy_coef=0.01, train_images=300_000, eval_every=20_000),
    # docs/results.md, "Catch": one reward per 23-step episode is too little for REINFORCE's single baseline;
    # scale_gain 4 lets the 1-px ball read 1 at the coarsest scale instead of 1/16; the step size annealed
    # to 0 keeps the last batches from throwing a good paddle away (0.744 -> 0.937, seed 1).
    how="the paper's retina (6 px, 3 scales) and an LSTM core, trained by PPO; chosen on the test games at "
        "100k-300k episodes (docs/results.md, Catch)"))
#: The hard agents on cluttered-60: PPO with its KL guard (without it PPO's 16 Adam steps per batch stall RAM near
#: 0.28), each look credited by its gain in log p(true class) with a prediction at every glimpse, DRAM's gist of the
#: whole canvas for the where-path, a convolutional glimpse network, an LSTM core, and the step size annealed to 0
#: (at a constant 1e-3 RAM under-fits its training digits and plateaus: docs/results.md, the step-size study).
_CLUTTERED_HARD = dict(algo="ppo", target_kl=0.05, credit="gain", step_ce=1.0, gist=12, glimpse_encoder="conv",
                       core="lstm", anneal_lr=True)
_CLUTTERED_HOW = (f"{_PAPER_BUDGET}; chosen on validation accuracy (--val-images 1000) at 100k images, PPO: first "
                  f"--credit gain --step-ce 1 against the final reward alone, each term alone, a learned, a scheduled "
                  f"and a wider fixed location std (RAM: --std 0.3 kept; seeds 1-3 for RAM, 1-2 for item-hard); then "
                  f"--gist 12, --target-kl 0.05 (against 0.02 and none), --glimpse-encoder conv and --core lstm, each "
                  f"alone and together (seeds 1-2); then --anneal-lr against the constant step size (seeds 1-2; RAM "
                  f"also at 300k); docs/results.md, denser credit, more levers and the step-size study")
for _agent, _own in (("ram", dict(std=0.3)), ("item-hard", {})):
    # RAM's wider std: the classifier's drift of h_t moves a narrow Gaussian's KL past PPO's stop.
    register_recipe(Recipe(f"{_agent}-cluttered-60", _agent, "cluttered-60",
                           {**TASK_BUDGETS["cluttered-60"], **_CLUTTERED_HARD, **_own}, _CLUTTERED_HOW))
for _task in TASK_BUDGETS:
    _still = envs.task_of(_task).is_still
    for _agent, _spec in AGENTS.items():
        if f"{_agent}-{_task}" in RECIPES or (_spec.still_only and not _still) \
                or (_agent, _task) == ("item-hard", "catch"):
            continue  # the recipes above; still-image agents do not apply to video or games, item-wise ones to Catch
        _extra = _RACNN_100 if _agent.startswith("racnn") and _task in ("small-100", "cluttered-100") else {}
        register_recipe(Recipe(f"{_agent}-{_task}", _agent, _task, {**TASK_BUDGETS[_task], **_extra}, _NOT_SEARCHED))
