"""The bounded strict YAML loader: what it refuses, and that ordinary YAML still loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.yaml_load import MAX_DEPTH, MAX_NODES, load_yaml_mapping, parse_yaml_text


def test_ordinary_yaml_loads_as_pyyaml_does() -> None:
    text = ("name: x\nbase: &b\n  model: {name: mlp, width: 8}\n  train: {epochs: 2}\n"
            "other:\n  <<: *b\n  train: {epochs: 3}\nlist: [1, 2.5, true, null, 'a']\n")
    assert parse_yaml_text(text, "f") == yaml.safe_load(text)


def test_nested_duplicate_key_names_both_lines() -> None:
    text = "base:\n  train:\n    epochs: 2\n    lr: 1\n    epochs: 3\n"
    with pytest.raises(ConfigError, match=r"^f: duplicate key 'epochs' on lines 3 and 5"):
        parse_yaml_text(text, "f")


def test_same_key_in_two_mappings_is_fine() -> None:
    assert parse_yaml_text("a: {k: 1}\nb: {k: 2}\n", "f") == {"a": {"k": 1}, "b": {"k": 2}}


def test_depth_limit_is_exact() -> None:
    def nested(depth: int) -> str:  # `depth` nested flow sequences
        return "[" * depth + "]" * depth

    assert parse_yaml_text(nested(MAX_DEPTH), "f") is not None
    with pytest.raises(ConfigError, match=f"nested more than {MAX_DEPTH} levels"):
        parse_yaml_text(nested(MAX_DEPTH + 1), "f")


def test_alias_expansion_is_counted_per_use() -> None:
    # root, 2 keys, a's list and its 10 scalars, b's list: 15 nodes; each use of *a walks 11
    k_ok = (MAX_NODES - 15) // 11
    ok = "a: &a [" + ", ".join(["x"] * 10) + "]\nb: [" + ", ".join(["*a"] * k_ok) + "]\n"
    assert len(parse_yaml_text(ok, "f")["b"]) == k_ok
    too_many = ok.replace("b: [", "b: [*a, *a, ")
    with pytest.raises(ConfigError, match="after expanding aliases"):
        parse_yaml_text(too_many, "f")


def test_size_limit_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("".join(f"k{i:02d}: 1\n" for i in range(25)))  # 175 bytes
    assert len(load_yaml_mapping(path)) == 25
    monkeypatch.setenv("HARNESS_MAX_CONFIG_BYTES", "175")
    assert len(load_yaml_mapping(path)) == 25
    monkeypatch.setenv("HARNESS_MAX_CONFIG_BYTES", "174")
    with pytest.raises(ConfigError, match="larger than 174 bytes"):
        load_yaml_mapping(path)
    monkeypatch.setenv("HARNESS_MAX_CONFIG_BYTES", "lots")
    with pytest.raises(ConfigError, match="HARNESS_MAX_CONFIG_BYTES='lots'"):
        load_yaml_mapping(path)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"a: 1\nb: 2\nc: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"c.yaml: line 3: not UTF-8 text \(byte 0xe9\)"):
        load_yaml_mapping(path)


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        load_yaml_mapping(tmp_path)
