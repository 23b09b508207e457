"""Config fields that are also command-line flags: declared once, on the dataclass field.

A field of a config dataclass carries its flag in its metadata (``field(metadata=flag(...))``):
the field gives the name, type and default, the :class:`Flag` the spellings, help text and group.
From those declarations :func:`add_flags` builds the argparse options, :func:`config_from_args`
the config, and :func:`markdown_table` the flag reference in ``docs/serve-flags.md``, so adding a
setting is one edit. Nested config dataclasses (a field whose default is a dataclass) are walked
recursively.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass(frozen=True)
    ... class Demo:
    ...     port: int = field(
    ...         default=80, metadata=flag("--port", parse=int, help="port", group="net")
    ...     )
    >>> parser = argparse.ArgumentParser()
    >>> _ = add_flags(parser, Demo)
    >>> config_from_args(Demo, parser.parse_args(["--port", "81"]))
    Demo(port=81)
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

_KEY = "flag"
T = TypeVar("T")


@dataclass(frozen=True)
class Flag:
    """How one config field is spelled and explained on the command line.

    Attributes:
        names: The option strings, short ones first (``("-scw", "--sc_window")``).
        help: One sentence for ``--help`` and the docs table (no default: it is added).
        group: The ``--help`` section and docs table the flag is listed under.
        parse: Turns the text into the field's value (argparse ``type``); raise
            ``argparse.ArgumentTypeError`` (or ``ValueError``) on bad text.
        choices: The accepted texts, when they are a fixed set.
        metavar: The value's name in ``--help`` and the docs table.
        default_text: The default as a person should read it, when the field's value does not
            say it (``0`` meaning "3 x max batch", ``None`` meaning "off").
    """

    names: tuple[str, ...]
    help: str
    group: str
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    default_text: str | None = None


def flag(
    *names: str,
    help: str,
    group: str,
    parse: Callable[[str], Any] | None = None,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    default_text: str | None = None,
) -> Mapping[str, Flag]:
    """Field metadata declaring the field a flag (see :class:`Flag` for the arguments)."""
    return {_KEY: Flag(names, help, group, parse, choices, metavar, default_text)}


@dataclass(frozen=True)
class Setting:
    """A declared flag and where its value goes: ``path`` is the field names from the root."""

    path: tuple[str, ...]
    flag: Flag
    default: Any

    @property
    def dest(self) -> str:
        """The argparse destination: the field's name (unique across the nested configs)."""
        return self.path[-1]

    @property
    def default_text(self) -> str:
        if self.flag.default_text is not None:
            return self.flag.default_text
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, tuple):
            return ",".join(str(v) for v in self.default)
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return "off" if self.default is None else str(self.default)


def settings(config_type: type[Any]) -> Iterator[Setting]:
    """Every declared flag of ``config_type`` and its nested configs, in field order."""
    yield from _walk(config_type, ())


def _walk(config_type: type[Any], prefix: tuple[str, ...]) -> Iterator[Setting]:
    for item in dataclasses.fields(config_type):
        default = _default(item)
        declared = item.metadata.get(_KEY)
        if isinstance(declared, Flag):
            yield Setting((*prefix, item.name), declared, default)
        elif dataclasses.is_dataclass(default) and not isinstance(default, type):
            yield from _walk(type(default), (*prefix, item.name))


def _default(item: dataclasses.Field[Any]) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return None


def grouped(config_type: type[Any], order: Sequence[str] = ()) -> dict[str, list[Setting]]:
    """The declared flags by group: the groups in ``order`` first, then as they come."""
    by_group: dict[str, list[Setting]] = {name: [] for name in order}
    for setting in settings(config_type):
        by_group.setdefault(setting.flag.group, []).append(setting)
    return {name: members for name, members in by_group.items() if members}


def add_flags(
    parser: argparse.ArgumentParser, config_type: type[Any], *, order: Sequence[str] = ()
) -> dict[str, argparse._ArgumentGroup]:
    """Add every declared flag to ``parser``, one argument group per :attr:`Flag.group`.

    Returns:
        The argument groups by name, for options that are not config fields.
    """
    groups: dict[str, argparse._ArgumentGroup] = {}
    seen: set[str] = set()
    for setting in (s for members in grouped(config_type, order).values() for s in members):
        if setting.dest in seen:  # a programming error: two configs share a field name
            raise ValueError(f"two declared flags store into {setting.dest!r}")
        seen.add(setting.dest)
        declared = setting.flag
        group = groups.get(declared.group)
        if group is None:
            group = groups[declared.group] = parser.add_argument_group(declared.group)
        group.add_argument(
            *declared.names,
            dest=setting.dest,
            type=declared.parse or str,
            choices=declared.choices,
            default=setting.default,
            metavar=declared.metavar or (None if declared.choices else _metavar(declared.names)),
            help=f"{declared.help} (default: {setting.default_text})".replace("%", "%%"),
        )
    return groups


def _metavar(names: tuple[str, ...]) -> str:
    """What argparse would show without ``dest``: the first long spelling, upper-cased."""
    long = next((n for n in names if n.startswith("--")), names[0])
    return long.lstrip("-").replace("-", "_").upper()


def config_from_args(config_type: type[T], args: argparse.Namespace) -> T:
    """Build ``config_type`` (and its nested configs) from the parsed flags.

    Raises:
        Whatever the configs' own validation raises.
    """
    config: T = _build(config_type, args)
    return config


def _build(config_type: type[Any], args: argparse.Namespace) -> Any:
    values: dict[str, Any] = {}
    for item in dataclasses.fields(config_type):
        if not item.init:
            continue
        if isinstance(item.metadata.get(_KEY), Flag):
            values[item.name] = getattr(args, item.name)
            continue
        default = _default(item)
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            values[item.name] = _build(type(default), args)
    return config_type(**values)


def markdown_table(config_type: type[Any], *, order: Sequence[str] = ()) -> str:
    """The flags as Markdown: one ``flag | meaning | default`` table per group."""
    lines: list[str] = []
    for group, members in grouped(config_type, order).items():
        lines += [f"### {group[0].upper()}{group[1:]}", "", "| flag | meaning | default |"]
        lines.append("| --- | --- | --- |")
        for setting in members:
            lines.append(
                f"| {_spelling(setting.flag)} | {_cell(setting.flag.help)} | "
                f"{_cell(setting.default_text)} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _spelling(declared: Flag) -> str:
    value = declared.metavar or ("|".join(declared.choices) if declared.choices else None)
    names = ", ".join(f"`{name}`" for name in declared.names)
    return _cell(names if value is None else f"{names} `{value}`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# Value parsers for declared flags: argparse reports their ArgumentTypeError as a usage error.


def size_wxh(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` to (width, height).

    >>> size_wxh("224x160")
    (224, 160)
    """
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


_BYTE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def byte_size(text: str) -> int:
    """``512M``, ``2G``, ``1.5G`` or plain bytes (binary units; a trailing ``B``/``iB`` is fine).

    >>> byte_size("1.5G") == 3 * 2**29
    True
    """
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = cleaned[-1:] if cleaned[-1:] in _BYTE_UNITS else ""
    try:
        value = float(cleaned[: len(cleaned) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 512M or 2G, got {text!r}"
        ) from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"a size must be positive and finite, got {text!r}")
    return int(value * _BYTE_UNITS[unit])


def floats(text: str) -> tuple[float, ...]:
    """Comma-separated numbers.

    >>> floats("0.5,0.25")
    (0.5, 0.25)
    """
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def labels_or_none(text: str) -> tuple[str, ...]:
    """Comma-separated label names, or ``none`` for no label.

    >>> labels_or_none("static,snow")
    ('static', 'snow')
    >>> labels_or_none("none")
    ()
    """
    if text.strip().lower() == "none":
        return ()
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated labels or none, got {text!r}")
    return names


def on_off(text: str) -> bool:
    """``on`` or ``off`` to a bool."""
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def host_port(text: str) -> str:
    """``HOST:PORT`` checked by :func:`client.host_port.parse_host_port`, kept as written."""
    from client.host_port import parse_host_port

    try:
        parse_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
