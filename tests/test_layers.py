"""The import graph: no cycles between modules, and every import points down the stated layers.

Layers (ARCHITECTURE.md): entry -> orchestration -> engine -> method API and toolkit -> data, with
`nlbench.errors` and `nlbench.specs` (and the package itself) below everything. Method plugins use the API, toolkit,
data and errors, and may extend another plugin's base; nothing imports a plugin by name except the
registry, which does so by string. The walk reads every import statement, those inside functions
too, so a lazy import cannot hide an arrow against the direction.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nlbench
import nlbench.data
import nlbench.methods

PACKAGES = {
    "nlbench": Path(nlbench.__file__).parent,
    "nlbench.methods": Path(nlbench.methods.__file__).parent,
    "nlbench.data": Path(nlbench.data.__file__).parent,
}
ORCHESTRATION = {"suite", "suite_loading", "run_spec", "expansion", "run", "runner", "jobs", "executors", "slurm", "devices", "store", "records", "tracking", "published",
                 "report", "report_frames", "report_markdown", "reproductions", "plots", "perf", "selection", "sweep_lock",
                 "suite_origin", "stats", "data_check"}  # fmt: skip
ALLOWED = {
    "entry": {"entry", "orchestration", "engine", "api", "plugin", "data", "base"},
    "orchestration": {"orchestration", "engine", "api", "data", "base"},
    "engine": {"engine", "api", "data", "base"},
    "plugin": {"plugin", "api", "data", "base"},
    "api": {"api", "data", "base"},
    "data": {"data", "base"},
    "base": {"base"},
}


def layer(module: str) -> str:
    parts = module.split(".")
    if module in ("nlbench", "nlbench.errors", "nlbench.specs", "nlbench.registry"):
        return "base"
    if parts[1] in ("cli", "cli_commands"):
        return "entry"
    if parts[1] in ORCHESTRATION:
        return "orchestration"
    if parts[1] == "engine":
        return "engine"
    if parts[1] == "data":
        return "data"
    if parts[1] == "methods":
        if len(parts) == 2 or parts[2] in ("api", "toolkit"):
            return "api"
        return "plugin"
    if parts[1] == "benchmarks":
        return "base"
    raise AssertionError(f"{module} is in no layer: add it to tests/test_layers.py")


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if (
                name.startswith("nlbench.methods")
                and package == "nlbench"
                or (name.startswith("nlbench.data") and package == "nlbench")
            ):
                continue
            found[name] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The nlbench modules `name` imports (a `from x import y` counts y when y is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_module_is_in_a_layer_and_imports_only_downwards():
    wrong = [
        f"{src} ({layer(src)}) imports {dst} ({layer(dst)})"
        for src, targets in graph().items()
        for dst in sorted(targets)
        if layer(dst) not in ALLOWED[layer(src)]
    ]
    assert wrong == []


def test_no_import_cycles():
    edges = graph()
    # A package's __init__ re-exporting its own modules is not a cycle of the design.
    edges = {src: {d for d in ds if not d.startswith(src + ".")} for src, ds in edges.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_walk_sees_the_layers_it_checks():
    """Guard the guard: the graph must contain the known arrows, or the tests above prove nothing."""
    edges = graph()
    assert "nlbench.engine.loop" in edges["nlbench.run"] or "nlbench.engine" in edges["nlbench.run"]
    assert "nlbench.methods.api" in edges["nlbench.methods.ce"]
    assert "nlbench.errors" in edges["nlbench.data.noise"]
    assert layer("nlbench.methods.ssr") == "plugin" and layer("nlbench.methods.api.plan") == "api"
    assert len(edges) > 40
