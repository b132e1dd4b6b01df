"""A bounded, strict YAML reader for study and run configs.

A config file is small, UTF-8 text, a mapping of mappings. Anything else (a binary file,
a Latin-1 file, a 50 MB file, a billion-laughs alias bomb, a 20,000-deep list, a key given
twice) is refused with one line naming the file, before it can use much time or memory.
Limits: size (HARNESS_MAX_CONFIG_BYTES, default 1 MB), nesting depth, and the number of
nodes that aliases may expand to.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness.errors import ConfigError

SIZE_ENV = "HARNESS_MAX_CONFIG_BYTES"
DEFAULT_MAX_BYTES = 1_000_000
MAX_DEPTH = 64  # a real config nests 4-5 levels
MAX_NODES = 100_000  # nodes after alias expansion; a real config has a few hundred


def max_bytes() -> int:
    raw = os.environ.get(SIZE_ENV, "")
    try:
        return int(raw) if raw else DEFAULT_MAX_BYTES
    except ValueError:
        raise ConfigError(f"{SIZE_ENV}={raw!r}: expected a number of bytes") from None


# libyaml when installed (about 10x faster); the pure-Python loader otherwise
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_tree(node: Node, source: str) -> None:
    """Walk the composed node graph (aliases are shared nodes, so they are walked as
    often as they would be expanded) and refuse it when too deep, too big, or when a
    mapping repeats a key."""
    seen = 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        cur, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError(f"{source}: more than {MAX_NODES:,} values after expanding "
                              "aliases; a config holds a few hundred")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}: line {cur.start_mark.line + 1}: nested more than "
                              f"{MAX_DEPTH} levels deep")
        if isinstance(cur, MappingNode):
            first: dict[Any, int] = {}
            for key, value in cur.value:
                if isinstance(key, ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if key.value in first:
                        raise ConfigError(f"{source}: duplicate key {key.value!r} on lines "
                                          f"{first[key.value]} and {line} (keep one)")
                    first[key.value] = line
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(cur, SequenceNode):
            stack.extend((item, depth + 1) for item in cur.value)


def _compose(text: str, source: str) -> Node | None:
    """Compose the document after a streaming pass (constant stack, stops early) has
    refused deep nesting and too many values, so the recursive composer never sees them."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)):
            nodes += 1
            if nodes > MAX_NODES:
                raise ConfigError(f"{source}: more than {MAX_NODES:,} values; "
                                  "a config holds a few hundred")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"{source}: line {event.start_mark.line + 1}: nested "
                                  f"more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.compose(text, Loader=_Loader)


def parse_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text under the limits; ConfigError (one line naming `source`) otherwise."""
    try:
        node = _compose(text, source)
        if node is None:
            return None
        _check_tree(node, source)
        constructor = yaml.constructor.SafeConstructor()
        return constructor.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(e, "problem", None) or e).splitlines()[0][:200]
        raise ConfigError(f"{source}:{where} unreadable YAML ({problem})") from None
    except RecursionError:  # belt and braces: the depth check should come first
        raise ConfigError(f"{source}: nested too deeply") from None


def read_config_text(path: Path) -> str:
    """The file's text if it is a readable, small, UTF-8 text file."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a YAML file")
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    limit = max_bytes()
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(data) > limit:
        raise ConfigError(f"{path}: larger than {limit:,} bytes; a config is a few KB "
                          f"(raise {SIZE_ENV} if this is intended)")
    if b"\x00" in data:
        raise ConfigError(f"{path}: a binary file, not YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[err.start]:02x}); "
                          "save the file as UTF-8") from None


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A config file as a mapping ({} when empty), read under the limits above."""
    p = Path(path)
    data = parse_yaml_text(read_config_text(p), str(p))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data
