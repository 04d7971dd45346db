"""Reading a suite: a YAML file (or data built from an official command line), `--set KEY=VALUE`
overrides applied to it, then validation into a `Suite`; every failure is one ConfigError line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from nlbench.errors import ConfigError, did_you_mean
from nlbench.suite import DatasetEntry, MethodEntry, NoiseEntry, Suite, explain


def _set_path(tree: Any, path: list[str], value: Any, parent: str = "") -> None:
    """Apply one `--set a.b.c=v`. Entries of `datasets`, `noise` and `methods` are addressed by
    index, by name (a noise entry by its model), or all at once by naming a field instead."""
    key, rest = path[0], path[1:]
    if isinstance(tree, list):
        if key.isdigit():
            targets = [tree[int(key)]] if int(key) < len(tree) else []
            if not targets:
                raise ConfigError(
                    f"--set: {parent} has {len(tree)} entries, so there is no {parent}.{key}"
                )
        else:
            names = [t.get("name", t.get("model")) for t in tree if isinstance(t, dict)]
            targets = [
                t for t in tree if isinstance(t, dict) and key in (t.get("name"), t.get("model"))
            ]
            if not targets:
                fields = _ENTRY_MODELS[parent].model_fields if parent in _ENTRY_MODELS else {}
                if key not in fields:
                    raise ConfigError(
                        f"--set: no entry named '{key}' in {parent}{did_you_mean(key, names)}; "
                        f"its entries: {', '.join(map(str, names)) or 'none'}"
                    )
                targets, rest = tree, path
        for t in targets:
            if not rest:
                raise ConfigError(f"--set: give a key below '{key}'")
            _set_path(t, rest, value, key)
        return
    if not isinstance(tree, dict):
        raise ConfigError(f"--set: '{key}' is below a value, not a section")
    if rest:
        child = tree.get(key)
        if child is None:
            child = tree[key] = {}
        if isinstance(child, list):
            child[:] = [{"name": c} if isinstance(c, str) else c for c in child]
        _set_path(child, rest, value, key)
    else:
        tree[key] = value


_ENTRY_MODELS: dict[str, type[BaseModel]] = {
    "datasets": DatasetEntry,
    "noise": NoiseEntry,
    "methods": MethodEntry,
}
_ALIASES = {"dataset": "datasets", "method": "methods"}


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`key.path=value` pairs, values parsed as YAML (so 5, 0.1, [0,1], true work)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set '{item}': expected key=value, e.g. --set seeds=[0,1]")
        key, text = item.split("=", 1)
        path = key.strip().split(".")
        path[0] = _ALIASES.get(path[0], path[0])
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set '{item}': the value is not valid YAML ({exc})") from None
        _set_path(raw, path, value)
    return raw


def load_suite(path: str | Path, overrides: list[str] | None = None) -> Suite:
    """Read, override and validate a suite file; every failure is one ConfigError line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"suite file '{path}' not found (suites live in benchmarks/, e.g. "
            "benchmarks/quick.yaml)"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a suite is a mapping of keys (name, datasets, noise, methods, ...)"
        )
    raw.setdefault("name", path.stem)
    return suite_from_dict(raw, str(path), overrides)


def suite_from_dict(raw: dict[str, Any], where: str, overrides: list[str] | None = None) -> Suite:
    """Validate a suite given as data (e.g. built from an official command line)."""
    apply_overrides(raw, overrides or [])
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        raise explain(exc, Suite, where) from None
