"""Manifest loading: YAML/JSON files, directories and stdin → the views of the objects the proxy reads.

This module owns finding files, splitting documents, flattening ``List`` objects (as
``kubectl get svc,endpointslices,nodes -A -o yaml`` writes them), picking Services,
EndpointSlices and Nodes out of everything else, and refusing duplicates. A malformed
object is recorded in ``ManifestSet.errors`` and the rest still load; a file that cannot be
read or parsed raises ``ManifestError``, since what it held is unknown: that includes text that is not
UTF-8, nesting deeper than the parsers can follow, and a scalar its explicit YAML tag cannot read.
An integer literal too long to convert is loaded as an ``OversizedInteger``, so only the object whose
field holds it fails. Lists nest at most 16 deep, and a List repeated by a YAML alias is read once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import yaml

from ipvsctl.errors import ManifestError, ObjectError
from ipvsctl.kube.parse import OversizedInteger, parse_endpoint_slice, parse_node, parse_service
from ipvsctl.kube.views import EndpointSliceView, NodeView, ObjectRef, ServiceView

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: same results, slower
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = ["STDIN", "ManifestSet", "load_manifests"]

STDIN = "-"
_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
_LIST_KINDS = frozenset({"List", "ServiceList", "EndpointSliceList", "NodeList"})
_MAX_LIST_NESTING = 16  # kubectl writes none; each level costs two stack frames
# Longer integer literals are not converted: int() refuses more than 4300 digits, and YAML's hex and base-60
# forms build numbers of any size. A Kubernetes integer needs at most 20 characters (34 in YAML's binary).
_MAX_INTEGER_TEXT = 64
_NESTED_TOO_DEEPLY = "nested too deeply to read"

_View = ServiceView | EndpointSliceView | NodeView
# kind → (API group, parser); an object of the same kind in another group (a Knative Service) is not ours.
_PARSERS: Mapping[str, tuple[str, Callable[[Mapping[str, object]], _View | None]]] = {
    "Service": ("", parse_service),
    "EndpointSlice": ("discovery.k8s.io", parse_endpoint_slice),
    "Node": ("", parse_node),
}


class _ManifestLoader(_SafeLoader):
    """Safe loader that keeps unquoted timestamps as the strings the API wrote, not datetimes.

    A scalar its tag cannot read (``!!int "²"``, ``!!bool "maybe"``) is a YAML error at its line, where
    PyYAML's constructors raise ValueError, KeyError or IndexError.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, LookupError, TypeError) as error:
            problem = f"cannot read the {node.tag.rpartition(':')[2]} value ({type(error).__name__})"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from error


def _timestamp_as_text(loader: _ManifestLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(cast("yaml.ScalarNode", node)))


def _bounded_yaml_integer(loader: _ManifestLoader, node: yaml.Node) -> int | OversizedInteger:
    text = str(loader.construct_scalar(cast("yaml.ScalarNode", node)))
    if len(text) > _MAX_INTEGER_TEXT:
        return OversizedInteger(len(text))
    return loader.construct_yaml_int(cast("yaml.ScalarNode", node))


def _bounded_json_integer(text: str) -> int | OversizedInteger:
    if len(text) > _MAX_INTEGER_TEXT:
        return OversizedInteger(len(text.removeprefix("-")))
    return int(text)


_ManifestLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)
_ManifestLoader.add_constructor("tag:yaml.org,2002:int", _bounded_yaml_integer)


@dataclass(frozen=True, slots=True)
class ManifestSet:
    """The Services, EndpointSlices and Nodes found in manifests, and the objects that were refused."""

    services: tuple[ServiceView, ...] = ()
    slices: tuple[EndpointSliceView, ...] = ()
    nodes: tuple[NodeView, ...] = ()
    errors: tuple[ManifestError, ...] = ()


def load_manifests(paths: Sequence[str | Path], *, stdin: TextIO | None = None) -> ManifestSet:
    """Load every Service, EndpointSlice and Node from files, directories (recursively) or ``-`` (stdin).

    Raises ManifestError when a path does not exist or a file cannot be read or parsed.
    """
    if isinstance(paths, str):
        raise TypeError("paths must be a sequence of paths, not one string")
    collector = _Collector()
    for source in _sources(paths):
        text = _read_stdin(stdin or sys.stdin) if source == STDIN else _read(Path(source))
        for index, document in enumerate(_documents(text, source=source), start=1):
            collector.add(document, source=source, where=f"document {index}")
    return collector.result()


def _sources(paths: Sequence[str | Path]) -> list[str]:
    """The files to read, in order: directories expand to their manifest files, sorted."""
    sources: list[str] = []
    for given in paths:
        if str(given) == STDIN:
            sources.append(STDIN)
            continue
        path = Path(given)
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.suffix.lower() in _SUFFIXES and p.is_file())
            sources.extend(str(p) for p in sorted(found))
        elif path.exists():
            sources.append(str(path))
        else:
            raise ManifestError("no such file or directory", source=str(path))
    return sources


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}", source=str(path)) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        where = f"line {line} (byte 0x{data[exc.start]:02x} at column {column})"
        raise ManifestError(f"not UTF-8 text at {where}", source=str(path)) from exc


def _read_stdin(stream: TextIO) -> str:
    """Stdin's text, strictly UTF-8: also where Python decodes it with surrogateescape (the C locale)."""
    try:
        text = stream.read()
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})", source=STDIN) from exc
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        column = exc.start - text.rfind("\n", 0, exc.start)
        raise ManifestError(f"not UTF-8 text at line {line} (column {column})", source=STDIN) from exc
    return text


def _documents(text: str, *, source: str) -> list[object]:
    """The documents of a file: one for JSON, any number for YAML (null ones included)."""
    if source.lower().endswith(".json"):
        # JSON's own parser: YAML rejects the tab indentation JSON allows.
        try:
            return [json.loads(text, parse_int=_bounded_json_integer)]
        except json.JSONDecodeError as exc:
            raise ManifestError(f"invalid JSON at line {exc.lineno}: {exc.msg}", source=source) from exc
        except RecursionError as exc:  # json's decoder recurses once per level of nesting
            raise ManifestError(_NESTED_TOO_DEEPLY, source=source) from exc
    try:
        return list(yaml.load_all(text, Loader=_ManifestLoader))
    except RecursionError as exc:  # PyYAML's pure-Python composer (libyaml stops at 1000 levels itself)
        raise ManifestError(_NESTED_TOO_DEEPLY, source=source) from exc
    except yaml.MarkedYAMLError as exc:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark is not None else ""
        raise ManifestError(f"invalid YAML{line}: {exc.problem or exc}", source=source) from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}", source=source) from exc


@dataclass(slots=True)
class _ListWalk:
    """The Lists of one document being flattened: how deep, and which were read already (by identity).

    YAML aliases make one List the item of several, or of itself; each is read once, so nesting and
    repetition cannot multiply the work (aliases do not cross documents, so neither does this).
    """

    depth: int = 0
    seen: set[int] = field(default_factory=set)

    def enter(self, document: Mapping[str, object]) -> str:
        """Enter a List: "" when it may be read, else why not."""
        if self.depth == _MAX_LIST_NESTING:
            return f"Lists nested deeper than {_MAX_LIST_NESTING}"
        if id(document) in self.seen:
            return "the same List again (a YAML alias): read once"
        self.seen.add(id(document))
        self.depth += 1
        return ""

    def leave(self) -> None:
        """Leave the List entered last."""
        self.depth -= 1


@dataclass(slots=True)
class _Collector:
    """Accumulates views and errors across documents; remembers where each object was first seen."""

    services: list[ServiceView] = field(default_factory=list)
    slices: list[EndpointSliceView] = field(default_factory=list)
    nodes: list[NodeView] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)
    first_seen: dict[tuple[str, ObjectRef], str] = field(default_factory=dict)

    def result(self) -> ManifestSet:
        return ManifestSet(tuple(self.services), tuple(self.slices), tuple(self.nodes), tuple(self.errors))

    def add(self, document: object, *, source: str, where: str) -> None:
        """Add one document: an object, a List of objects (Lists nest), or null."""
        self._add(document, source=source, where=where, walk=_ListWalk())

    def _add(self, document: object, *, source: str, where: str, walk: _ListWalk) -> None:
        if document is None:
            return
        if not isinstance(document, Mapping):
            self.errors.append(
                ObjectError(f"must be an object, got {type(document).__name__}", source=source, obj=where)
            )
            return
        kind = document.get("kind")
        if not isinstance(kind, str) or not kind:
            self.errors.append(ObjectError("is required", source=source, obj=where, field="kind"))
            return
        if kind in _LIST_KINDS:
            self._add_list(document, kind=kind, source=source, where=where, walk=walk)
        elif kind in _PARSERS:
            self._add_object(document, kind=kind, source=source)

    def _add_list(self, document: Mapping[str, object], *, kind: str, source: str, where: str, walk: _ListWalk) -> None:
        refusal = walk.enter(document)
        if refusal:
            self.errors.append(ObjectError(refusal, source=source, obj=where))
            return
        items = document.get("items")
        if items is None:
            walk.leave()
            return
        if not isinstance(items, list):
            self.errors.append(ObjectError("must be a list", source=source, obj=where, field="items"))
            walk.leave()
            return
        # Items of an API list response (ServiceList, ...) carry no kind or apiVersion of their own.
        inherited = {"kind": kind.removesuffix("List"), "apiVersion": document.get("apiVersion")}
        for index, item in enumerate(items):
            if kind != "List" and isinstance(item, Mapping) and "kind" not in item:
                item = {**inherited, **item}  # noqa: PLW2901 (the item, completed)
            self._add(item, source=source, where=f"{where} items[{index}]", walk=walk)
        walk.leave()

    def _add_object(self, document: Mapping[str, object], *, kind: str, source: str) -> None:
        group, parse = _PARSERS[kind]
        api_version = document.get("apiVersion")
        if isinstance(api_version, str) and api_version.rpartition("/")[0] != group:
            return
        try:
            view = parse(document)
        except ObjectError as exc:
            self.errors.append(ObjectError(exc.message, source=source, obj=exc.obj, field=exc.field))
            return
        if view is None:
            return
        ref = ObjectRef("", view.name) if isinstance(view, NodeView) else view.ref
        first = self.first_seen.get((kind, ref))
        if first is not None:
            self.errors.append(
                ObjectError(f"duplicate object; the one from {first} is kept", source=source, obj=f"{kind} {ref}")
            )
            return
        self.first_seen[kind, ref] = source
        if isinstance(view, ServiceView):
            self.services.append(view)
        elif isinstance(view, EndpointSliceView):
            self.slices.append(view)
        else:
            self.nodes.append(view)
