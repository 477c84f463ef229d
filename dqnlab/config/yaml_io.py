"""Reading and writing YAML safely: the loader every config file and `--set` value goes through,
and the dumper of config.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dqnlab.core.errors import ConfigError, preview


class RefusedYaml(Exception):
    """Marks a ConfigError for text that is not YAML at all (as opposed to YAML we refuse)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, made safe for files from anywhere and strict about mistakes.

    YAML 1.1 reads 5e4 or 1e-3 (no dot) as strings; users mean numbers, as with --set.

    Aliases (``*name``) are refused: a 700-byte file of nested aliases expands to gigabytes
    ("billion laughs"), and no dqnlab config needs one. Duplicate keys are refused: PyYAML keeps
    the last silently, so the first, which the user may be looking at, would not apply."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(event.anchor, event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise _DuplicateKey(key, key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _AliasRefused(Exception):
    def __init__(self, anchor: str, mark: Any):
        super().__init__(anchor)
        self.anchor, self.mark = anchor, mark


class _DuplicateKey(Exception):
    def __init__(self, key: Any, mark: Any):
        super().__init__(key)
        self.key, self.mark = key, mark


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML `text` with _Loader; a ConfigError naming `source` and the line for any problem
    (its __cause__ is a RefusedYaml when the text is not YAML at all)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except _AliasRefused as exc:
        raise ConfigError(
            f"{source}{_where(exc.mark)}: YAML aliases (*{exc.anchor[:40]}) are not "
            "allowed in dqnlab configs; write the value out"
        ) from None
    except _DuplicateKey as exc:
        raise ConfigError(f"{source}{_where(exc.mark)}: duplicate key {preview(exc.key, 60)}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"YAML syntax error in {source}{_where(mark)}: {str(problem)[:200]}") from RefusedYaml()
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        # int('1' * 5000) (Python's limit on digits), an unhashable key, lists nested thousands deep
        raise ConfigError(
            f"{source}: cannot read this YAML ({str(exc).split(';')[0][:100] or type(exc).__name__})"
        ) from None


MAX_YAML_BYTES = 10**7
"""Largest config file read: a config is a few kB, and parsing YAML costs many times the text."""


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with the line number of any syntax error."""
    p = Path(path)
    try:
        with open(p, "rb") as f:  # a bounded read: the path may be /dev/zero or a pipe
            raw = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"config file {p} is larger than {MAX_YAML_BYTES // 10**6} MB; a config is a few kB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {p}: not UTF-8 text (byte {exc.start})") from None
    data = load_yaml_text(text, str(p))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys to values")
    return data


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a value seen twice in full: the loader refuses aliases, even in dqnlab's own files."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: dict[str, Any]) -> str:
    """`data` as YAML, every value written out in full (no aliases: the loader refuses them)."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False)


def yaml_inline(value: Any) -> str:
    """`value` as YAML on one line (flow style: `[128, 128]`, `{}`, `null`, `'off'`), as it reads back."""
    text = yaml.dump(value, Dumper=_NoAliasDumper, default_flow_style=True, width=10**9, sort_keys=False)
    return text.removesuffix("\n...\n").strip()
