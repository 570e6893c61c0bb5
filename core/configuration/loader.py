"""Read the YAML files of a configuration folder into one validated ``Config``.

Every error names the file, the line and the field, e.g.::

    config/hotlines.yaml:14: hotlines[0].menu.options.7: unknown program 'forsaa'

The loader keeps the position of every node while turning YAML into plain
data, then maps pydantic's error locations back to those positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .model import Config

Location = tuple[Any, ...]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_field(loc: Location) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


# Values one file may hold once its aliases are expanded: the demo's largest
# holds a few hundred; "billion laughs" aliases would hold billions.
MAX_VALUES = 100_000
# Nesting deeper than this is no configuration (and Python's stack would end first).
MAX_DEPTH = 100


def _compose(text: str):
    """The YAML node tree: libyaml's parser when PyYAML has it (several times
    faster, which a classic-AGI process pays on every call), else the pure
    one. Anything libyaml refuses is parsed again by the pure parser, so a
    broken file is reported with the same message and line either way."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.compose(text, Loader=fast)
        except (yaml.YAMLError, RecursionError):
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


class _TooLarge(Exception):
    def __init__(self, line: int, message: str):
        self.line, self.message = line, message


class _Reader:
    """Turns YAML nodes into plain data while recording where each came from."""

    def __init__(self) -> None:
        self.marks: dict[Location, tuple[str, int]] = {}
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")
        self._values = 0

    def read_file(self, path: Path, shown_as: str) -> dict[str, Any]:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self.problems.append(Problem(shown_as, 1, "(file)", str(exc)))
            return {}
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[:exc.start].count(b"\n") + 1
            self.problems.append(Problem(shown_as, line, "(encoding)", f"not UTF-8: {exc.reason} "
                                         f"(byte 0x{raw[exc.start]:02x})"))
            return {}
        try:
            node = _compose(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            self.problems.append(Problem(shown_as, line, "(syntax)", str(exc.problem or exc)))
            return {}
        except yaml.reader.ReaderError as exc:   # a control character, before any token
            line = text[:exc.position].count("\n") + 1
            self.problems.append(Problem(shown_as, line, "(syntax)", f"character #x{exc.character:04x} "
                                         "is not allowed in YAML"))
            return {}
        except RecursionError:
            self.problems.append(Problem(shown_as, _too_deep(text), "(syntax)",
                                         f"nested more than {MAX_DEPTH} levels deep"))
            return {}
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.problems.append(
                Problem(shown_as, node.start_mark.line + 1, "(top level)", "must be a mapping of sections")
            )
            return {}
        self._values = 0
        try:
            return self._convert(node, (), shown_as, ())
        except _TooLarge as exc:
            self.problems.append(Problem(shown_as, exc.line, "(syntax)", exc.message))
            return {}

    def _convert(self, node: yaml.Node, loc: Location, file: str, inside: tuple[yaml.Node, ...]) -> Any:
        # Aliases make the nodes a graph: one that contains itself, or that
        # multiplies (aliases of aliases), is refused rather than followed.
        line = node.start_mark.line + 1
        if any(node is outer for outer in inside):
            raise _TooLarge(line, "an alias refers to a value that contains it")
        if len(inside) > MAX_DEPTH:
            raise _TooLarge(line, f"nested more than {MAX_DEPTH} levels deep")
        self._values += 1
        if self._values > MAX_VALUES:
            raise _TooLarge(line, f"more than {MAX_VALUES} values once its aliases are expanded")
        inside = (*inside, node)
        self.marks[loc] = (file, line)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(
                        Problem(file, key_node.start_mark.line + 1, format_field(loc), "keys must be plain words")
                    )
                    continue
                # Keys stay strings: a menu key written as 1 is the digit "1".
                key = str(self._constructor.construct_scalar(key_node))
                if key in out:
                    self.problems.append(
                        Problem(file, key_node.start_mark.line + 1, format_field(loc + (key,)), "duplicate key")
                    )
                    continue
                self.marks[loc + (key,)] = (file, key_node.start_mark.line + 1)
                out[key] = self._convert(value_node, loc + (key,), file, inside)
                self.marks[loc + (key,)] = (file, key_node.start_mark.line + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(item, loc + (i,), file, inside) for i, item in enumerate(node.value)]
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:   # a tag the safe loader does not know (!!python/...)
            self.problems.append(Problem(file, line, format_field(loc), str(exc.problem or exc)))
        except ValueError as exc:
            if node.tag == "tag:yaml.org,2002:timestamp":
                # A scalar YAML reads as a date but no calendar has (2026-02-30):
                # kept as text, so the model says why it is wrong, at its line.
                return node.value
            # An integer of thousands of digits, and the like.
            self.problems.append(Problem(file, line, format_field(loc), f"not a value YAML can read: {exc}"))
        return None

    def where(self, loc: Location) -> tuple[str, int]:
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.marks:
                return self.marks[loc[:end]]
        return ("?", 0)


def _too_deep(text: str) -> int:
    """The line where ``text`` nests more than MAX_DEPTH levels (YAML's
    scanner keeps no stack: it can read what the composer could not)."""
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken,
                                  yaml.BlockSequenceStartToken, yaml.BlockMappingStartToken)):
                depth += 1
                if depth > MAX_DEPTH:
                    return token.start_mark.line + 1
            elif isinstance(token, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)):
                depth -= 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return mark.line + 1 if mark else 1
    return 1


def load_config(folder: str | Path) -> Config:
    """Load every ``*.yaml`` file of ``folder``; each holds top-level sections."""
    folder = Path(folder)
    reader = _Reader()
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    if not files:
        raise ConfigError([Problem(str(folder), 0, "(folder)", "no *.yaml configuration files found")])
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for path in files:
        shown_as = _display_path(path)
        data = reader.read_file(path, shown_as)
        for section, value in data.items():
            if section in merged:
                file, line = reader.marks[(section,)]
                reader.problems.append(
                    Problem(shown_as, line, section, f"section already defined in {origin[section]}")
                )
                continue
            merged[section] = value
            origin[section] = shown_as
    if reader.problems:
        raise ConfigError(reader.problems)
    # A section missing from every file is reported against the folder.
    reader.marks[()] = (_display_path(folder), 0)
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        problems = []
        errors = exc.errors()
        locs = [tuple(e["loc"]) for e in errors]
        for err in errors:
            loc = tuple(err["loc"])
            # "too short" on a list whose item failed is a follow-on error.
            if err["type"] == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locs):
                continue
            file, line = reader.where(loc)
            problems.append(Problem(file, line, format_field(loc), _message(err)))
        raise ConfigError(problems) from None
    cross = config.cross_reference_errors()
    if cross:
        problems = []
        for loc, message in cross:
            file, line = reader.where(loc)
            problems.append(Problem(file, line, format_field(loc), message))
        raise ConfigError(problems)
    return config


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (check its spelling)"
    if err["type"] == "missing":
        return "required field is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
