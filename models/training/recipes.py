"""Training recipes as config files (configs/recipes/NAME.yaml), nanoGPT-style: a recipe is the
options of train.py's stages, in order, each stage starting from the previous one's weights, so the
shipped weights' recipes are data anyone can read, copy and change without touching the code.

    stages:               # one mapping of train.py options per stage (`real_fraction`: --real-fraction)
      - data: sim
        steps: 800
        lr: 2e-3
        loss: {acceleration: 10, velocity: 2}   # or the command line's "acceleration=10,velocity=2"
    after: shipped        # optional: another recipe's stages first (a name in the same folder)

Every key and value is checked against train.py's own options (its argparse parser, the one source
of what an option takes), so a mistake is one line naming the file, the stage and the key before any
training starts, not a failure half an hour in. The options a recipe itself sets (where the weights
go, where a stage starts from) and the architecture (the command line's --arch) are refused.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from pathlib import Path

from liverig.core.safe_io import read_yaml_file

RECIPES_DIR = Path(__file__).resolve().parent.parent.parent / "configs" / "recipes"
# the command line's options, or those the recipe sets itself
NOT_IN_A_RECIPE = ("recipe", "arch", "out", "init", "no_export", "help")


class RecipeError(ValueError):
    """A recipe that cannot be used; the message is one line naming the file and the key."""


def recipe_path(recipe: str) -> Path:
    """A recipe's file: a name (`shipped`) is configs/recipes/NAME.yaml; anything with a folder or a
    .yaml/.yml suffix is a path."""
    if "/" in recipe or "\\" in recipe or recipe.endswith((".yaml", ".yml")):
        return Path(recipe)
    return RECIPES_DIR / f"{recipe}.yaml"


def available() -> list[str]:
    """The names of the recipes in configs/recipes (for --help)."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def read_recipe(recipe: str, parser: argparse.ArgumentParser, loss_terms: Iterable[str]) -> list[list[str]]:
    """The recipe's stages as train.py argument lists, `after` recipes' stages first. `parser`: train.py's
    (what each option takes); `loss_terms`: the loss weights `loss` may set."""
    return _stages(recipe_path(recipe), parser, set(loss_terms), [])


def _stages(
    path: Path, parser: argparse.ArgumentParser, loss_terms: set[str], seen: list[Path]
) -> list[list[str]]:
    where = f"recipe {path}"
    data = read_yaml_file(path, "recipe", RecipeError)  # regular files, size-, depth-limited, UTF-8
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: the top level must be a mapping with the key 'stages'")
    unknown = sorted(str(key) for key in data if key not in ("stages", "after"))
    if unknown:
        raise RecipeError(f"{where}: key '{unknown[0]}': not a recipe key (stages, after)")
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        raise RecipeError(
            f"{where}: key 'stages': a list of at least one stage (a mapping of train.py options)"
        )
    before: list[list[str]] = []
    after = data.get("after")
    if after is not None:
        if not isinstance(after, str) or not after.isidentifier():
            raise RecipeError(f"{where}: key 'after': the name of a recipe in the same folder, not {after!r}")
        base = path.parent / f"{after}.yaml"
        if base.resolve() in (p.resolve() for p in (*seen, path)):
            raise RecipeError(f"{where}: key 'after': recipe '{after}' comes round again (a loop)")
        if not base.is_file():
            raise RecipeError(f"{where}: key 'after': no recipe '{after}' ({base})")
        before = _stages(base, parser, loss_terms, [*seen, path])
    return before + [
        _stage_argv(stage, f"{where}: stage {n}", parser, loss_terms)
        for n, stage in enumerate(stages, start=1)
    ]


def _stage_argv(
    stage: object, where: str, parser: argparse.ArgumentParser, loss_terms: set[str]
) -> list[str]:
    """One stage's mapping as train.py arguments, each value checked as train.py will parse it."""
    if not isinstance(stage, dict) or not stage:
        raise RecipeError(f"{where}: a stage is a mapping of train.py options (data: sim, steps: 800, ...)")
    options = {action.dest: action for action in parser._actions if action.option_strings}
    argv: list[str] = []
    for key, value in stage.items():
        dest = str(key).replace("-", "_")
        action = options.get(dest)
        if action is None or dest in NOT_IN_A_RECIPE or action.nargs == 0:
            why = "set by the command line or the recipe itself" if action is not None else "no such option"
            raise RecipeError(f"{where}: key '{key}': not a recipe setting ({why}; see train.py --help)")
        text = _loss_text(value, f"{where}: key '{key}'", loss_terms) if dest == "loss" else _scalar(value)
        if text is None:
            raise RecipeError(f"{where}: key '{key}': a number or a word, not {value!r}")
        if action.type is not None:
            try:
                parsed = action.type(text)
            except ValueError:
                raise RecipeError(f"{where}: key '{key}': {text!r} is not {action.type.__name__}") from None
            if isinstance(parsed, float) and not math.isfinite(parsed):
                raise RecipeError(f"{where}: key '{key}': {text!r} is not a finite number")
        if action.choices is not None and text not in action.choices:
            raise RecipeError(f"{where}: key '{key}': {text!r} is not one of {', '.join(action.choices)}")
        argv += [action.option_strings[0], text]
    return argv


def _scalar(value: object) -> str | None:
    """A YAML scalar as the command line would spell it (`2e-3` stays `2e-3`); None: not a scalar."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    return str(value)


def _loss_text(value: object, where: str, loss_terms: set[str]) -> str:
    """`loss` as train.py's --loss text: a mapping {term: weight} or that text, each term checked."""
    if isinstance(value, str):
        pairs = [pair.split("=", 1) for pair in value.split(",") if pair]
        if any(len(pair) != 2 for pair in pairs):
            raise RecipeError(f"{where}: '{value}' is not term=weight,... (or a mapping)")
        value = dict(pairs)
    if not isinstance(value, dict) or not value:
        raise RecipeError(f"{where}: a mapping of loss weights, e.g. {{acceleration: 10, velocity: 2}}")
    for term, weight in value.items():
        if term not in loss_terms:
            raise RecipeError(f"{where}: '{term}' is not a loss term ({', '.join(sorted(loss_terms))})")
        text = _scalar(weight)
        try:
            finite = text is not None and math.isfinite(float(text))
        except ValueError:
            finite = False
        if not finite:
            raise RecipeError(f"{where}: '{term}': {weight!r} is not a finite number")
    return ",".join(f"{term}={_scalar(weight)}" for term, weight in value.items())
