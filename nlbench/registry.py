"""One registry type for every kind of named part: methods, datasets, noise models, networks,
views, augmentation recipes and protocols. Each kind is a `Registry`, so each answers an unknown name the
same way (the name, the nearest known one, every known one) and refuses a name taken twice.

This module is the base layer beside `errors`: it imports nothing else of nlbench.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from nlbench.errors import ConfigError, NlbenchError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> parts of one `kind`, in registration order (the order `list` prints)."""

    def __init__(
        self, kind: str, error: type[NlbenchError] = ConfigError, listing: str = ""
    ) -> None:
        """`listing` ends the unknown-name line with where to see them all (e.g. `list`)."""
        self.kind, self.error, self.listing = kind, error, listing
        self._parts: dict[str, T] = {}

    def add(self, name: str, part: T) -> T:
        """Register `part` under `name`; registering the same part again is a no-op, another
        part under a taken name an error (a plugin must not replace a built-in silently)."""
        taken = self._parts.get(name)
        if taken is not None and taken is not part:
            origin = getattr(taken, "__qualname__", None)
            by = f" by {taken.__module__}.{origin}" if origin else ""
            raise self.error(f"{self.kind} name '{name}' is already registered{by}")
        self._parts[name] = part
        return part

    def lookup(self, name: str) -> T:
        """The part named `name`, or the registry's one-line error with a did-you-mean."""
        if name not in self._parts:
            listing = f" ({self.listing})" if self.listing else ""
            raise self.error(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self._parts)}; "
                f"known: {', '.join(self._parts)}{listing}"
            )
        return self._parts[name]

    def get(self, name: str) -> T | None:
        return self._parts.get(name)

    def remove(self, name: str) -> None:
        self._parts.pop(name, None)

    def items(self) -> list[tuple[str, T]]:
        return list(self._parts.items())

    def values(self) -> list[T]:
        return list(self._parts.values())

    def __contains__(self, name: object) -> bool:
        return name in self._parts

    def __getitem__(self, name: str) -> T:
        return self.lookup(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def options_model(func: Callable[..., Any], name: str) -> type[BaseModel]:
    """A pydantic model of `func`'s keyword-only parameters (their annotations, `Annotated`
    constraints included, and defaults): the options a dataset loader or noise model takes,
    validated by one system, strictly (a YAML `yes` is no number, "5" no integer)."""
    hints = typing.get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            default = ... if param.default is inspect.Parameter.empty else param.default
            hint = hints.get(param.name, Any)
            if typing.get_origin(_bare(hint)) in (tuple, list):  # YAML gives lists for both
                hint = Annotated[hint, Field(strict=False)]
            fields[param.name] = (hint, default)
    return create_model(f"{name}_options", __base__=_Options, **fields)


def _bare(hint: Any) -> Any:
    """The type under `Annotated[...]`."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def validate_options(
    model: type[BaseModel],
    kind: str,
    name: str,
    options: dict[str, Any],
    error: type[NlbenchError] = ConfigError,
) -> dict[str, Any]:
    """`options` checked against the part's options model: the given keys with their validated
    values (the part's own defaults stay its own), or one line naming the option at fault."""
    try:
        checked = model.model_validate(options)
    except ValidationError as exc:
        raise error(first_error(exc, kind, name, list(model.model_fields))) from None
    return {key: getattr(checked, key) for key in options}


def first_sentence(doc: str | None) -> str:
    """A docstring's first sentence on one line (what `list` prints): the first paragraph up to
    its first full stop followed by a space, so a sentence wrapped in the source is not cut."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    head, stop, _ = paragraph.partition(". ")
    return head + stop.strip()


def first_error(error: ValidationError, kind: str, name: str, known: list[str]) -> str:
    """One line for the first problem pydantic found in a part's options."""
    first = error.errors()[0]
    option = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return (
            f"{kind} '{name}' has no option '{option}'{did_you_mean(option, known)}; valid "
            f"options: {', '.join(known) or 'none'}"
        )
    message = first["msg"].removeprefix("Value error, ")
    return f"{kind} '{name}' option {option}={first.get('input')!r}: {message}"
