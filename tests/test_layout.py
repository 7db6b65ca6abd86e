"""The layout's rules, checked on the source (issue 15): the core imports nothing of ours, bridges
and the node's inference import only the core, and no package imports one above it (no cycle).

Layers, bottom up (a package may import only its own layer or those below):
    core                 messages, skeleton, config schema, safe file reading, fetching, geometry
    bridges, models      the wire protocols; the motion network and its backends (inference)
    runtime              the node: sources, perception, motion stage, parts, retargeting, the page
    calibration          calibrations that run the node's stages
    models.training      data generation and training
    models.evaluation    evaluation and figures (reads the training data)
    liverig (the entry)  the command line (liverig/cli.py), on top of everything
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOPS = ("core", "bridges", "models", "runtime", "calibration")
LAYER = {
    "core": 0,
    "bridges": 1,
    "models": 1,
    "runtime": 2,
    "calibration": 3,
    "models.training": 4,
    "models.evaluation": 5,
    "entry": 6,
}


def package_of(module: str) -> str | None:
    """The layout package a dotted module name (`liverig.runtime.node`) belongs to (None: not ours)."""
    if not module.startswith("liverig."):
        return None
    parts = module.split(".")[1:]
    if parts[0] not in TOPS:  # liverig/*.py: the command line and its entries (bench, harden)
        return "entry"
    if parts[0] not in TOPS:
        return None
    if parts[0] == "models" and len(parts) > 1 and f"models.{parts[1]}" in LAYER:
        return f"models.{parts[1]}"
    return parts[0]


def our_imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import of ours in a file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.module, node.lineno)]
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return [(name, line) for name, line in found if package_of(name) is not None]


def modules() -> list[tuple[str, Path]]:
    """(import name, file) of every module in the design's folders, as installed under `liverig`."""
    out = [
        (f"liverig.{path.stem}", path)
        for path in sorted((ROOT / "liverig").glob("*.py"))
        if path.stem != "__init__"
    ]
    for top in TOPS:
        for path in sorted((ROOT / top).rglob("*.py")):
            out.append(("liverig." + ".".join(path.relative_to(ROOT).with_suffix("").parts), path))
    return out


def test_our_folders_are_imported_under_the_liverig_name_only():
    """A bare `import runtime` would load a second copy of a module beside `liverig.runtime`'s (two
    classes of the same name) and collides with other installed packages."""
    bare = []
    for path in [p for top in TOPS for p in (ROOT / top).rglob("*.py")] + sorted(ROOT.glob("tests/*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            bare += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in TOPS]
    assert not bare, "\n".join(bare)


def test_every_package_imports_only_its_layer_or_below():
    wrong = []
    for module, path in modules():
        own = package_of(module)
        for name, line in our_imports(path):
            other = package_of(name)
            if other != own and LAYER[other] >= LAYER[own]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {name} ({other})")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_the_core_imports_nothing_of_ours_but_itself():
    for module, path in modules():
        if package_of(module) == "core":
            assert {package_of(name) for name, _ in our_imports(path)} <= {"core"}, path


@pytest.mark.parametrize("top", ["bridges", "models"])
def test_bridges_and_inference_import_only_the_core(top):
    for module, path in modules():
        if package_of(module) == top:
            others = {package_of(name) for name, _ in our_imports(path)} - {top}
            assert others <= {"core"}, f"{path.relative_to(ROOT)} imports {others}"


def test_no_module_level_import_cycle_between_files():
    """Module-level imports only (a function-level import runs late and cannot deadlock a start):
    no two files of ours import each other, directly or round a longer loop."""
    graph: dict[str, set[str]] = {}
    known = {module for module, _ in modules()}
    for module, path in modules():
        targets = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            targets |= {n for n in names if n in known and n != module}
        graph[module] = targets
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in graph[module]:
            if state.get(target) == 1:
                cycle = trail[trail.index(target) :] + [target] if target in trail else [module, target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, trail + [target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
