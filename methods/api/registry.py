"""The method registry: built-in methods by module, third-party ones by entry point.

A third-party package registers methods through the entry-point group `nlbench.methods`, one entry
per method, named as the method registers itself (`mine = mypackage.mine`). A plugin that cannot be
loaded (an import error, a name already taken, an entry named unlike its method) costs one warning
line on stderr and is left out; the built-in methods and every other plugin still run.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from importlib.metadata import EntryPoint, entry_points

from nlbench.methods.api.method import Method, MethodCommand
from nlbench.registry import Registry

GROUP = "nlbench.methods"
_REGISTRY: Registry[type[Method]] = Registry(
    "method", listing="`python run_bench.py list` shows them"
)
_discovered = False


def register(name: str):
    """Class decorator: make a method available to suites under `name`."""

    def wrap(cls: type[Method]) -> type[Method]:
        _REGISTRY.add(name, cls)
        cls.name = name
        return cls

    return wrap


def _load_plugin(ep: EntryPoint) -> str | None:
    """Load one entry point; the warning line to print if it fails, else None."""
    before = set(_REGISTRY)
    try:
        ep.load()
    except Exception as exc:  # noqa: BLE001 - any failure of a third-party import is its own
        for name in set(_REGISTRY) - before:
            _REGISTRY.remove(name)
        return (
            f"warning: method plugin '{ep.name}' ({ep.value}) not loaded: "
            f"{type(exc).__name__}: {exc}"
        )
    added = set(_REGISTRY) - before
    if ep.name not in _REGISTRY or (added and ep.name not in added):
        for name in added:
            _REGISTRY.remove(name)
        found = ", ".join(sorted(added)) or "no method"
        return (
            f"warning: method plugin '{ep.name}' ({ep.value}) not loaded: it registers "
            f"{found}; name the entry point as the method registers itself"
        )
    return None


def _discover() -> None:
    """Import every built-in method module once, then the entry points of `nlbench.methods`."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("nlbench.methods")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"nlbench.methods.{info.name}")
    for ep in entry_points(group=GROUP):
        problem = _load_plugin(ep)
        if problem:
            print(problem, file=sys.stderr)


def available() -> dict[str, type[Method]]:
    """All registered methods by name."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> type[Method]:
    """The method class registered as `name`, or a ConfigError naming the nearest valid one."""
    _discover()
    return _REGISTRY.lookup(name)


def commands() -> dict[str, MethodCommand]:
    """The command lines methods register (e.g. `ssr`: SSR's official flags), by command name."""
    return {cls.command.name: cls.command for cls in available().values() if cls.command}
