"""A bounded YAML reader for configuration files.

``yaml.safe_load`` runs no code, but aliases let a few hundred bytes stand for a document of
billions of nodes (an "alias bomb": each level repeats the anchor of the level below), which ends
in a ``MemoryError`` (or the machine swapping) as soon as something walks the result, e.g. when a
merged config is copied or written out. :func:`load_yaml` composes the document (aliases stay
shared, nothing is expanded), counts the nodes it would expand to and its nesting depth, refuses
recursive aliases, and only then builds the Python objects: a one-line ``ValueError`` naming the
file instead of a traceback.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_NODES = 100_000
"""Most nodes a configuration may expand to (the shipped presets have about 100)."""

MAX_DEPTH = 50
"""Deepest nesting of mappings and sequences a configuration may have."""


def load_yaml(text: str, where: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> Any:
    """``yaml.safe_load(text)``, refused with a ``ValueError`` naming ``where`` when the document
    would expand to more than ``max_nodes`` nodes, nests deeper than ``max_depth`` or holds a
    recursive alias. Malformed YAML raises ``yaml.YAMLError`` as ``safe_load`` does."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, where, max_nodes, max_depth)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_size(root: yaml.Node, where: str, max_nodes: int, max_depth: int) -> None:
    """Expanded node count of ``root`` by dynamic programming over the shared (aliased) nodes,
    depth-first without recursion; ``ValueError`` past the limits or on a cycle."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            if size[key] > max_nodes:
                raise ValueError(
                    f"{where}: the YAML expands to more than {max_nodes} nodes through its "
                    "aliases (an alias bomb?); a configuration needs far fewer"
                )
            continue
        if key in size:
            continue
        if key in on_path:
            raise ValueError(f"{where}: the YAML holds a recursive alias (a node contains itself)")
        on_path.add(key)
        if len(on_path) > max_depth:
            raise ValueError(f"{where}: the YAML nests deeper than {max_depth} levels")
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
