"""How a server setting is declared, once: its flag, environment variable, help, unit and range.

A `Settings` field carries its `Option` in the field's metadata (`declared`, `nested`); the CLI turns the
options into ``tidings server``'s flags and ``--help``, and the README's configuration table is written from
them. This module is plain data: it knows no command-line library.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Kind = Literal["text", "integer", "number", "bytes", "seconds", "flag", "names", "directory", "file", "workers"]
"""What a value is: ``bytes`` are byte counts (``4KiB`` accepted), ``seconds`` durations, ``names`` repeatable
words (the variable takes them space-separated), ``workers`` a count or ``auto``."""

_NUMERIC = ("integer", "number", "bytes", "seconds")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_OPTION_KEY = "option"
_NESTED_KEY = "nested"


@dataclass(frozen=True, slots=True)
class Option:
    """One setting as the command line and the documentation see it.

    ``help`` may use Markdown code spans and links (the README shows them; ``--help`` shows plain text).
    ``minimum`` / ``above`` / ``maximum`` bound the value wherever it comes from; ``flag_minimum`` is a
    higher floor for the flag only (an embedding test may go below it). ``at_least`` names the setting this
    one may not be smaller than. ``shown_default`` says what the default means when the value cannot
    (``None``: unlimited, computed, ...). ``name``, ``within`` and the defaults are filled in from the field.
    """

    flag: str
    help: str
    kind: Kind = "text"
    metavar: str | None = None
    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    flag_minimum: float | None = None
    at_least: str | None = None
    choices: tuple[str, ...] = ()
    shown_default: str | None = None
    off_flag: str | None = None
    hidden: bool = False
    name: str = ""
    within: str | None = None
    default: Any = None
    default_factory: Callable[[], Any] | None = None

    @property
    def variable(self) -> str:
        """The environment variable: ``TIDINGS_`` and the flag in capitals (``--max-caches``:
        ``TIDINGS_MAX_CACHES``)."""
        return "TIDINGS_" + self.flag.removeprefix("--").replace("-", "_").upper()

    @property
    def plain_help(self) -> str:
        """``help`` without Markdown: links become their text, code spans lose their backticks."""
        return plain(self.help)

    def default_text(self) -> str:
        """The default as a reader should see it: ``1MiB`` for sizes, ``10`` (seconds) for durations."""
        if self.shown_default is not None:
            return self.shown_default
        value = self.default
        if self.kind == "flag":
            return "off"
        if value is None or value == ():
            return "none"
        if self.kind == "bytes":
            return human_size(value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def problem(self, value: object) -> str | None:
        """Why ``value`` is out of this option's range, or None."""
        if self.choices and value not in self.choices:
            return f"must be {' or '.join(self.choices)}, not {value!r}"
        if self.kind not in _NUMERIC or not isinstance(value, int | float) or self._in_range(value):
            return None
        if self.maximum is not None:
            return f"must be {self.minimum or 0:g} to {self.maximum:g}"
        if self.kind in ("number", "seconds"):
            if self.above == 0:
                return "must be positive and finite"
            return "must be finite" if self.minimum is None else f"must be {self.minimum:g} or more, and finite"
        return "must not be negative" if self.minimum == 0 else f"must be at least {self.minimum:g}"

    def _in_range(self, value: float) -> bool:
        if math.isnan(value) or (self.kind in ("number", "seconds") and math.isinf(value)):
            return False
        if self.minimum is not None and value < self.minimum:
            return False
        if self.above is not None and value <= self.above:
            return False
        return self.maximum is None or value <= self.maximum

    def check(self, value: object) -> None:
        """Raise `InvalidSetting` if ``value`` is out of range."""
        problem = self.problem(value)
        if problem is not None:
            raise InvalidSetting(self, problem)


class InvalidSetting(ValueError):
    """A setting's value out of its declared range. ``message`` names the flag (what the CLI prints); ``str()``
    adds the setting's name, for code that built `Settings` itself."""

    def __init__(self, option: Option, reason: str) -> None:
        self.option = option
        self.message = f"{option.flag} {reason}"
        super().__init__(f"{self.message} (setting {option.name})")


def declared(default: T, option: Option) -> T:
    """A dataclass field with ``default``, declared on the command line and in the docs by ``option``."""
    return field(default=default, metadata={_OPTION_KEY: option})


def declared_factory(factory: Callable[[], T], option: Option) -> T:
    """`declared`, with a default computed per instance."""
    return field(default_factory=factory, metadata={_OPTION_KEY: option})


def nested(factory: Callable[[], T], **options: Option) -> T:
    """A dataclass field holding a value (such as `Limits`) whose own fields are declared by ``options``."""
    return field(default_factory=factory, metadata={_NESTED_KEY: options})


def options_of(settings_type: type) -> tuple[Option, ...]:
    """Every option declared on the fields of ``settings_type``, in field order, with names and defaults."""
    return tuple(_options(settings_type))


def _options(settings_type: type) -> Iterator[Option]:
    for settings_field in dataclasses.fields(settings_type):
        factory = settings_field.default_factory
        made = None if factory is dataclasses.MISSING else factory
        default = settings_field.default if made is None else made()
        option = settings_field.metadata.get(_OPTION_KEY)
        if option is not None:
            yield dataclasses.replace(option, name=settings_field.name, default=default, default_factory=made)
        inner: Mapping[str, Option] = settings_field.metadata.get(_NESTED_KEY, {})
        for name, nested_option in inner.items():
            yield dataclasses.replace(
                nested_option, name=name, within=settings_field.name, default=getattr(default, name)
            )


def plain(markdown: str) -> str:
    """``markdown`` as plain text: links become their text, code spans lose their backticks."""
    return _LINK.sub(r"\1", markdown).replace("`", "")


def human_size(count: int) -> str:
    """``4096`` as ``4KiB``, ``1048576`` as ``1MiB``; a count that is no whole KiB stays a number."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count and count % size == 0:
            return f"{count // size}{unit}"
    return str(count)
