"""The layering of the project, read from the source with ``ast``: scripts -> agents -> envs -> glimpse.

Rules, for every ``.py`` under glimpse/, envs/, agents/, scripts/ and tests/:

- a package imports only packages below it (``glimpse`` nothing of the project, ``envs`` only ``glimpse``,
  ``agents`` not ``scripts`` or ``tests``, and nothing imports ``tests``);
- no ``sys.path.insert`` / ``sys.path.append``: the packages are installed, scripts are run by path;
- no underscore name (a module or a name starting with ``_``) is imported from another of the project's
  packages: what one package offers another is public;
- nothing asks an env for its task's name (``getattr(env, "task")``, ``env.task``): envs expose typed
  properties (``task_spec``, ``is_still``, ``decision``, ...);
- pixels are cropped and sampled in ``glimpse/`` only: outside it (and the tests' slow references) no call
  of a sampling or pooling op (``grid_sample``, ``affine_grid``, ``roi_align``, ``roi_pool``,
  ``avg_pool2d``, ``interpolate``); call the core (``glimpse.extract_glimpses``, ``glimpse.samplers``,
  ``glimpse.baselines`` for benchmarks).

Each rule is also shown to fire on a small bad source, so the repository check cannot pass vacuously.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"glimpse": 0, "envs": 1, "agents": 2, "scripts": 3, "tests": 4}  # a package imports lower ones only


def sources() -> list[Path]:
    """Every ``.py`` of the project's packages, relative to the repository root."""
    return sorted(path.relative_to(ROOT) for package in LAYERS for path in (ROOT / package).rglob("*.py")
                  if "__pycache__" not in path.parts)


def imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """``(module, imported names)`` of every absolute import, also those inside functions."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_sys_path_edit(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("insert", "append") and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "path" and isinstance(node.func.value.value, ast.Name)
            and node.func.value.value.id == "sys")


def _asks_env_for_task(node: ast.AST) -> bool:
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "task"):
        return True
    owner = node.value if isinstance(node, ast.Attribute) else None
    name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
    return node.attr == "task" and name.endswith("env") if owner is not None else False


PIXEL_OPS = frozenset({"grid_sample", "affine_grid", "roi_align", "roi_pool", "avg_pool2d", "interpolate"})
CROPPERS = ("glimpse", "tests")  # the core, and the tests' independent references


def _samples_pixels(node: ast.AST) -> str | None:
    """The op's name if ``node`` calls one of :data:`PIXEL_OPS` (``F.grid_sample(...)``, ``roi_align(...)``)."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name if name in PIXEL_OPS else None


def violations(path: Path, source: str) -> list[str]:
    """What in ``source`` (the file ``path``, relative to the root) breaks the layering rules."""
    package = path.parts[0]
    tree = ast.parse(source, filename=str(path))
    found = []
    for module, names in imports(tree):
        top = module.split(".")[0]
        if top not in LAYERS or top == package:
            continue
        if LAYERS[top] > LAYERS[package]:
            found.append(f"{path}: {package}/ imports {module} from a package above it")
        private = [part for part in module.split(".") if _private(part)] + [name for name in names if _private(name)]
        if private:
            found.append(f"{path}: imports the private {', '.join(private)} of {module}; use its public module")
    for node in ast.walk(tree):
        if _is_sys_path_edit(node):
            found.append(f"{path}:{node.lineno}: edits sys.path; import the installed packages instead")
        if _asks_env_for_task(node):
            found.append(f"{path}:{node.lineno}: asks an env for its task's name; read its typed properties")
        if package not in CROPPERS and (op := _samples_pixels(node)):
            found.append(f"{path}:{node.lineno}: samples pixels with {op} outside glimpse/; call the glimpse core")
    return found


def test_the_packages_are_found():
    files = sources()
    assert {path.parts[0] for path in files} == set(LAYERS)
    assert Path("tests/test_layering.py") in files and Path("envs/data/__init__.py") in files


def test_the_project_keeps_its_layering():
    found = [v for path in sources() for v in violations(path, (ROOT / path).read_text(encoding="utf-8"))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path, source, message", [
    ("glimpse/x.py", "import envs", "imports envs from a package above it"),
    ("glimpse/x.py", "def f():\n    from agents.recurrent import RAM", "imports agents.recurrent from a package above"),
    ("envs/x.py", "from agents import AGENTS", "imports agents from a package above it"),
    ("agents/x.py", "import scripts.train", "imports scripts.train from a package above it"),
    ("scripts/x.py", "import sys\nsys.path.insert(0, 'scripts')", "edits sys.path"),
    ("tests/x.py", "import sys\nsys.path.append('.')", "edits sys.path"),
    ("envs/x.py", "from glimpse._fused import available", "private _fused of glimpse._fused"),
    ("agents/x.py", "from glimpse import _fused", "private _fused of glimpse"),
    ("tests/x.py", "from envs.rng import _signed", "private _signed of envs.rng"),
    ("scripts/x.py", "name = getattr(env, 'task', None)", "asks an env for its task's name"),
    ("agents/x.py", "still = self.env.task in STILL", "asks an env for its task's name"),
    ("agents/x.py", "still = vec_env.task == 'mnist'", "asks an env for its task's name"),
    ("scripts/x.py", "out = roi_align(images, boxes, output_size=4)", "samples pixels with roi_align outside glimpse/"),
    ("agents/x.py", "x = F.grid_sample(images, grid, align_corners=False)", "samples pixels with grid_sample"),
    ("envs/x.py", "x = torch.nn.functional.avg_pool2d(window, 2)", "samples pixels with avg_pool2d"),
])
def test_each_rule_fires(path, source, message):
    found = violations(Path(path), source)
    assert any(message in v for v in found), found


@pytest.mark.parametrize("path, source", [
    ("glimpse/retina.py", "from glimpse import _fused"),  # private inside its own package
    ("agents/x.py", "from glimpse.checks import check_canvas\nimport envs\nfrom tyro.conf import Suppress"),
    ("tests/x.py", "from agents.training import cli\nfrom envs import __all__"),
    ("scripts/x.py", "spec = env.task_spec; still = env.is_still"),
    ("glimpse/x.py", "x = F.grid_sample(images, grid, align_corners=ALIGN_CORNERS)"),  # the core samples
    ("tests/x.py", "expected = F.avg_pool2d(window, 2)"),  # a test's slow reference
    ("agents/x.py", "h = F.max_pool2d(F.relu(self.conv(x)), 2)"),  # a CNN's feature pooling is not a crop
])
def test_allowed_imports_pass(path, source):
    assert violations(Path(path), source) == []
