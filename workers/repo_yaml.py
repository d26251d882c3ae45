"""The one loader for YAML files that come from a repository.

Every byte of a repository is untrusted, so its YAML files
(``environment.yml``, ``.binder.yml``, and any later ones) go through
:func:`load_repo_yaml`, never through ``yaml.safe_load``:

* the file is read within its size cap (:func:`read_repo_file`; the caps
  are ``workers/config_files.py``'s) before the text is parsed;
* anchors and aliases (``&x`` / ``*x``) are refused: they are how a few
  hundred bytes expand into gigabytes (the "billion laughs" bomb);
* nodes are counted and nesting depth is bounded while the document is
  composed, so no input makes the parser recurse or allocate without end;
* only plain data comes out: mappings with text keys (each key once),
  lists, text, numbers (integers of 64 bits), booleans and null. Dates
  stay text; ``!!binary``, ``!!set``, ``!!python/...`` and other tags are
  refused.

Errors are :class:`RepoYamlError` with one sentence naming the file and,
where known, the line; user text appears in it only shortened.

:func:`read_repo_file` reads any config file of a repository (YAML or not)
within the cap it is given; ``workers/config_files.py`` holds the caps.

This module imports nothing from binder-build (only PyYAML and the
standard library): it is also shipped into builds beside scripts that
read a repository's YAML there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import Resolver

#: Nodes (scalars, lists, mappings) in one document; real config files have hundreds.
MAX_NODES = 20_000
#: Lists and mappings inside each other.
MAX_DEPTH = 50
#: The integers a file may hold: 64 bits, as MongoDB stores them.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: Characters of user text quoted in an error.
QUOTE_CHARS = 60


class RepoYamlError(ValueError):
    """A repository YAML file was refused; ``str()`` is a sentence for the user."""


def shorten(text: object, limit: int = QUOTE_CHARS) -> str:
    """User text made safe to quote in a message: printable, one line, bounded."""
    value = text if isinstance(text, str) else type(text).__name__
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in value[: limit + 1])
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _line(node_or_mark: Any) -> str:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    line = getattr(mark, "line", None)
    return f" (line {line + 1})" if isinstance(line, int) else ""


try:  # libyaml parses several times faster; the tree is still composed here
    from yaml._yaml import CParser

    class _Base(Composer, CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)
except ImportError:  # pragma: no cover - PyYAML without libyaml
    _Base = yaml.SafeLoader  # type: ignore[misc,assignment]


class _Loader(_Base):
    """A safe loader that composes a bounded tree of plain data."""

    def __init__(self, stream: str, file_name: str) -> None:
        super().__init__(stream)
        self.file_name = file_name
        self.nodes = 0
        self.depth = 0

    def refuse(self, reason: str, where: Any = None) -> RepoYamlError:
        return RepoYamlError(f"{self.file_name}{_line(where)}: {reason}")

    # Composition: refuse aliases and anchors, count nodes, bound depth.

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise self.refuse("YAML aliases (*name) are not accepted; write the value out "
                              "in full.", event)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise self.refuse("YAML anchors (&name) are not accepted; write the value out "
                              "in full.", event)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.refuse(f"the file has more than {MAX_NODES} values; this farm "
                              "accepts no more.", event)
        nests = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
        if nests:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.refuse(f"lists and mappings are nested more than {MAX_DEPTH} "
                                  "deep.", event)
        try:
            return super().compose_node(parent, index)
        finally:
            if nests:
                self.depth -= 1

    # Construction: plain data only, text keys, each key once.

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.refuse("merge keys (<<) are not accepted; write the keys out.",
                                  key_node)
            if not isinstance(key_node, ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                raise self.refuse("every mapping key must be text (quote it if it looks "
                                  "like a number, a boolean or null).", key_node)
            if key_node.value in seen:
                raise self.refuse(f"the key {shorten(key_node.value)!s} appears twice in "
                                  "one mapping; keep one.", key_node)
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=True)

    def construct_bounded_int(self, node: Node) -> int:
        """An integer of 64 bits: Python turns no more than 4300 digits into an integer
        (or one into text), and MongoDB, where values of ``.binder.yml`` are kept,
        stores no larger one."""
        try:
            value = self.construct_yaml_int(node)  # type: ignore[arg-type]
        except ValueError:
            value = None
        if not isinstance(value, int) or not INT_MIN <= value <= INT_MAX:
            raise self.refuse("integers must fit in 64 bits; quote a longer number to "
                              "write it as text.", node)
        return value

    def construct_timestamp_as_text(self, node: Node) -> str:
        return str(self.construct_scalar(node))  # type: ignore[arg-type]

    def refuse_tag(self, node: Node) -> Any:
        raise self.refuse(f"the tag {shorten(node.tag)} is not accepted; use plain text, "
                          "numbers, booleans, lists and mappings.", node)


_Loader.yaml_constructors = {
    **SafeConstructor.yaml_constructors,
    "tag:yaml.org,2002:int": _Loader.construct_bounded_int,
    "tag:yaml.org,2002:timestamp": _Loader.construct_timestamp_as_text,
    **{f"tag:yaml.org,2002:{tag}": _Loader.refuse_tag for tag in ("binary", "set", "omap",
                                                                  "pairs")},
    None: _Loader.refuse_tag,
}


def check_repo_file_size(path: Path, file_name: str, max_bytes: int) -> None:
    """``RepoYamlError`` when the file at ``path`` is over ``max_bytes`` (it is not read)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise _too_large(file_name, size, max_bytes)


def read_repo_file(path: Path, file_name: str, max_bytes: int) -> bytes:
    """The bytes of a repository's file, refused above ``max_bytes`` before it is read:
    its size is looked up first, and at most ``max_bytes`` and one byte are read."""
    check_repo_file_size(path, file_name, max_bytes)
    with path.open("rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:  # grown since, or a file whose size the system does not tell
        raise _too_large(file_name, None, max_bytes)
    return data


def load_repo_yaml(text: str | bytes, file_name: str) -> Any:
    """The data in one YAML document from a repository, or ``RepoYamlError``.

    ``file_name`` names the file in messages (e.g. ``environment.yml``); the text
    was read within the file's cap (:func:`read_repo_file`).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    loader = _Loader(text, file_name)
    try:
        return loader.get_single_data()
    except RepoYamlError:
        raise
    except yaml.MarkedYAMLError as exc:
        problem = shorten(exc.problem or exc.context or "it cannot be parsed", 120)
        raise RepoYamlError(f"{file_name} is not valid YAML{_line(exc.problem_mark)}: "
                            f"{problem}.") from None
    except yaml.YAMLError:
        raise RepoYamlError(f"{file_name} is not valid YAML.") from None
    except RecursionError:
        raise RepoYamlError(f"{file_name} is nested too deeply.") from None
    finally:
        loader.dispose()


def _too_large(file_name: str, size: int | None, max_bytes: int) -> RepoYamlError:
    """The one sentence for a file over its cap (``size`` ``None``: not known)."""
    cap = _size(max_bytes)
    shown = _size(size) if size is not None else f"more than {cap}"
    if shown == cap:  # a few bytes over: rounded, the two would read the same
        shown, cap = f"{size} bytes", f"{max_bytes} bytes ({cap})"
    return RepoYamlError(f"{file_name} is {shown}; this farm reads config files of at most "
                         f"{cap}.")


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size} bytes"


__all__ = ["RepoYamlError", "check_repo_file_size", "load_repo_yaml", "read_repo_file",
           "shorten"]
