"""Expansion: a suite into its runs, datasets x noise x ratios x methods x trials x seeds, each
method's hyperparameters resolved (protocol, common, entry, dataset and noise overrides) and
validated once, here."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from nlbench.engine import EngineOptions
from nlbench.errors import ConfigError, did_you_mean
from nlbench.run_spec import RunSpec, dataset_identity, dataset_label
from nlbench.specs import DatasetSpec, MethodSpec, NoiseSpec, NumericEngine, SelectionSpec
from nlbench.suite import Suite, explain


def _resolve(
    suite: Suite,
    index: int,
    dataset: str,
    overrides: list[dict[str, Any]],
) -> dict[str, Any]:
    """A method's hparams: defaults < its protocol on this dataset < common < its entry < dataset
    entry < noise entry."""
    from nlbench.methods.api import get as get_method
    from nlbench.methods.api.protocols import protocol

    entry = suite.methods[index]
    cls = get_method(entry.name)
    fields = set(cls.HParams.model_fields)
    merged = {}
    if entry.protocol is not None:
        try:
            merged = protocol(entry.protocol, dataset).hparams_for(fields)
        except ConfigError as exc:
            raise ConfigError(f"methods[{index}] ({entry.name}): {exc}") from None
    merged |= {k: v for k, v in suite.common.items() if k in fields}
    for layer in (entry.hparams, *overrides):
        merged.update(layer)
    try:
        return cls.HParams.model_validate(merged).model_dump()
    except ValidationError as exc:
        raise explain(exc, cls.HParams, f"methods[{index}] ({entry.name}) hparams") from None


def _check_references(suite: Suite) -> None:
    from nlbench.methods.api import get as get_method

    names = {m.name for m in suite.methods}
    for where, entries in (("datasets", suite.datasets), ("noise", suite.noise)):
        for i, entry in enumerate(entries):
            for name in entry.hparams:
                if name not in names:
                    raise ConfigError(
                        f"{where}[{i}].hparams: '{name}' is not a method of this "
                        f"suite{did_you_mean(name, names)}"
                    )
    unused = [
        k
        for k in suite.common
        if not any(k in get_method(m.name).HParams.model_fields for m in suite.methods)
    ]
    if unused:
        raise ConfigError(
            f"common: key '{unused[0]}' is a hyperparameter of none of the suite's methods"
        )


def expand(suite: Suite) -> list[RunSpec]:
    """datasets x noise x ratios x methods x seeds, with each method's hparams fully resolved.

    Two method entries that resolve to the same recipe would be one run listed twice, and two
    datasets under one label would share leaderboard rows: both are refused with one line.
    """
    _check_references(suite)
    _check_labels(suite)
    engine = numeric_engine_options(suite.engine)
    specs = []
    seen: dict[str, int] = {}
    for ds in suite.datasets:
        dataset = DatasetSpec.model_validate(ds.model_dump(exclude={"hparams"}))
        for nz in suite.noise:
            for index, method in enumerate(suite.methods):
                layers = [ds.hparams.get(method.name, {}), nz.hparams.get(method.name, {})]
                hparams = _resolve(suite, index, ds.name, layers)
                for tags, recipe in _trials(suite, index, hparams):
                    for ratio in nz.ratios:
                        for seed in suite.seeds:
                            spec = RunSpec(
                                suite=suite.name,
                                dataset=dataset,
                                noise=NoiseSpec(
                                    model=nz.model,
                                    ratio=ratio,
                                    seed=seed if nz.seed is None else nz.seed,
                                    options=nz.options,
                                ),
                                method=MethodSpec(name=method.name, hparams=recipe, **tags),
                                seed=seed,
                                engine=engine,
                                selection=_selection(suite, seed),
                            )
                            _add(spec, index, method.name, seen, specs)
    return specs


def _selection(suite: Suite, seed: int) -> SelectionSpec | None:
    """The run's validation split: the suite's, with each run's own seed unless one is fixed."""
    chosen = suite.selection
    if chosen is None:
        return None
    if chosen.split == "dataset_val":
        return SelectionSpec(split="dataset_val", headline=chosen.headline)
    return SelectionSpec(
        split=chosen.split,
        fraction=chosen.fraction,
        seed=seed if chosen.seed is None else chosen.seed,
        headline=chosen.headline,
    )


DRAW_ATTEMPTS = 50
"""Draws tried per trial before a search space counts as exhausted."""


def _trials(suite: Suite, index: int, hparams: dict[str, Any]) -> list[tuple[dict, dict]]:
    """(search tags, hparams) of one method entry: its recipe alone without a search; with one,
    the recipe as trial 0 and up to `trials - 1` further *distinct* configurations drawn from the
    method's search space (fewer when a small space runs out; none without a space). The tags
    name the trial and the entry's default recipe, so the report groups an entry's trials."""
    from nlbench.methods.api import get as get_method
    from nlbench.methods.api.search import draw_configuration

    if suite.search is None:
        return [({}, hparams)]
    name = suite.methods[index].name
    cls = get_method(name)
    space = cls.HParams.search_space
    recipe = hashlib.sha256(json.dumps(hparams, sort_keys=True).encode()).hexdigest()[:8]
    seen = {json.dumps(hparams, sort_keys=True)}
    trials = [({"trial": 0, "recipe": recipe}, hparams)]
    for trial in range(1, suite.search.trials if space else 1):
        for attempt in range(DRAW_ATTEMPTS):
            drawn = draw_configuration(space, suite.search.seed, f"{name}:{recipe}", trial, attempt)
            try:
                config = cls.HParams.model_validate({**hparams, **drawn}).model_dump()
            except ValidationError as exc:
                where = f"methods[{index}] ({name}) search trial {trial}"
                raise explain(exc, cls.HParams, where) from None
            if json.dumps(config, sort_keys=True) not in seen:
                seen.add(json.dumps(config, sort_keys=True))
                trials.append(({"trial": trial, "recipe": recipe}, config))
                break
        else:
            break  # the space holds no configuration not run yet
    return trials


def _add(spec: RunSpec, index: int, name: str, seen: dict[str, int], specs: list) -> None:
    """Append `spec`, refusing a second method entry that resolves to the same runs."""
    first = seen.setdefault(spec.run_id, index)
    if first != index:
        raise ConfigError(
            f"methods[{index}] ({name}) resolves to the same recipe as methods[{first}]: the same "
            "runs twice; remove one, or give it other hparams"
        )
    specs.append(spec)


def numeric_engine_options(options: EngineOptions) -> NumericEngine | None:
    """The engine options that change a run's numbers, where they differ from the defaults.

    `amp: false` (fp32 where the default is bf16 autocast on CUDA) and `cpu_threads` (the order of
    a CPU's floating-point reductions) enter the run id, so runs that would compute different
    numbers never share an id or a leaderboard cell; defaults leave the id as it was.
    """
    default = EngineOptions()
    changed = {
        key: getattr(options, key)
        for key in ("amp", "cpu_threads")
        if getattr(options, key) != getattr(default, key)
    }
    return NumericEngine(**changed) if changed else None


def _check_labels(suite: Suite) -> None:
    """Two different datasets must not share a report label (their runs would share rows)."""
    owners: dict[str, tuple[int, str]] = {}
    for i, ds in enumerate(suite.datasets):
        entry = DatasetSpec.model_validate(ds.model_dump(exclude={"hparams"}))
        identity = json.dumps(dataset_identity(entry), sort_keys=True)
        label = dataset_label(entry)
        first, known = owners.setdefault(label, (i, identity))
        if known != identity:
            raise ConfigError(
                f"datasets[{i}] and datasets[{first}] are different data but both report as "
                f"'{label}'; give one a `label:`"
            )


def expected_recipes(specs: list[RunSpec]) -> dict[tuple[str, str, float | None, str], str]:
    """(dataset label, noise model, ratio, method) -> the suite's own resolved hparams (JSON), to
    tell runs of the paper recipe from runs whose recipe was overridden."""
    return {
        (dataset_label(s.dataset), s.noise.model, s.noise.ratio, s.method.name):
            json.dumps(s.method.hparams, sort_keys=True)
        for s in specs
    }  # fmt: skip
