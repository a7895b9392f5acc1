"""Manifest loading: YAML/JSON files, directories and stdin → the views of the objects the proxy reads.

This module owns finding files, splitting documents, flattening ``List`` objects (as
``kubectl get svc,endpointslices,nodes -A -o yaml`` writes them), picking Services,
EndpointSlices and Nodes out of everything else, and refusing duplicates. A malformed
object is recorded in ``ManifestSet.errors`` and the rest still load; a file that cannot be
read or parsed raises ``ManifestError``, since what it held is unknown.

Limits (``ipvsctl.inputs``): regular files and ``-`` only, ``-`` at most once, each input at most
``max_bytes`` (64 MiB unless raised), all checked before anything is read. Readers:

- JSON (``.json`` files, and stdin that starts with ``{`` or ``[``): msgspec. The document is decoded once
  into plain values, which both the duplicate-key check (``kube/jsonkeys.py``: a key given twice in one
  object refuses the file, as in YAML and the apiserver's strict decoding) and the conversion of each object
  into the typed Structs of ``kube/wire.py`` (``kube/parse.py``) use. A document msgspec cannot decode
  into plain values (a number out of range, nesting past its limit, invalid JSON) is decoded object by
  object from its bytes instead, after the exact duplicate-key walk, so its errors are what they were: an
  integer too large for its field fails only its object, invalid JSON is named by its line.
- YAML: yaml-rs, with YAML 1.2 scalars (``1:20`` is text, not 80; ``yes``/``no``/``on``/``off`` are text;
  timestamps stay text), duplicate keys refused, alias expansion bounded by the size of the file. A run of
  more than 4300 digits makes the file unreadable (yaml-rs converts every integer it meets, in quadratic
  time); a shorter integer too large for its field fails only its object.
- Nesting: JSON up to msgspec's limit; YAML flow collections up to yaml-rs's 255 levels, and block nesting
  bounded by refusing lines indented more than 1000 columns (yaml-rs recurses per level and would crash
  the process past ~8,000). Lists nest at most 16 deep.
"""

from __future__ import annotations

import contextlib
import gc
import io
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

import msgspec

from ipvsctl.errors import InputError, ManifestError, ObjectError
from ipvsctl.inputs import DEFAULT_MAX_INPUT_BYTES, STDIN, check_path, read_input, read_stream, single_stdin
from ipvsctl.kube.jsonkeys import duplicate_key, exact_duplicate_key
from ipvsctl.kube.parse import PARSERS, RawObject
from ipvsctl.kube.views import EndpointSliceView, NodeView, ObjectRef, ServiceView
from ipvsctl.kube.yamlread import LazyList, PieceRefused, check_yaml, documents, whole_stream

__all__ = ["STDIN", "ManifestSet", "load_manifests"]

_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
_LIST_KINDS = frozenset({"List", "ServiceList", "EndpointSliceList", "NodeList"})
_MAX_LIST_NESTING = 16  # kubectl writes none
_NESTED_TOO_DEEPLY = "nested too deeply to read"


@dataclass(frozen=True, slots=True)
class ManifestSet:
    """The Services, EndpointSlices and Nodes found in manifests, and the objects that were refused."""

    services: tuple[ServiceView, ...] = ()
    slices: tuple[EndpointSliceView, ...] = ()
    nodes: tuple[NodeView, ...] = ()
    errors: tuple[ManifestError, ...] = ()


def load_manifests(
    paths: Sequence[str | Path],
    *,
    stdin: BinaryIO | TextIO | None = None,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
) -> ManifestSet:
    """Load every Service, EndpointSlice and Node from files, directories (recursively) or ``-`` (stdin).

    Raises ManifestError when a path is refused (missing, not a regular file, over ``max_bytes``, ``-``
    twice: all before anything is read) or a file cannot be read or parsed.
    """
    if isinstance(paths, str):
        raise TypeError("paths must be a sequence of paths, not one string")
    try:
        sources = _sources(paths, max_bytes=max_bytes)
    except InputError as error:
        raise ManifestError(error.message, source=error.source) from None
    collector = _Collector()
    with _no_collections():
        for source in sources:
            _load(source, collector, stdin=stdin, max_bytes=max_bytes)
    return collector.result()


def _load(source: str, collector: _Collector, *, stdin: BinaryIO | TextIO | None, max_bytes: int) -> None:
    """Add one input's documents. YAML is read a piece at a time; should a piece not parse on its own, what it
    added is taken back and the stream is read whole (which names the line of a real error)."""
    data = _read(source, stdin=stdin, max_bytes=max_bytes)
    if source.lower().endswith(".json") or _is_json(data):
        collector.add(_json_document(data, source=source), source=source, where="document 1")
        return
    text = _text(data, source=source)
    del data  # only the text is needed from here on
    check_yaml(text, source=source)
    mark = collector.mark()
    try:
        for index, document in enumerate(documents(text), start=1):
            collector.add(document, source=source, where=f"document {index}")
    except PieceRefused as refused:
        collector.rollback(mark)
        for index, document in enumerate(whole_stream(text, source=source, refused=refused), start=1):
            collector.add(document, source=source, where=f"document {index}")


def _json_document(data: bytes | bytearray, *, source: str) -> object:
    """A JSON input's document, refused when an object repeats a key (msgspec keeps the last; the apiserver's
    strict decoding refuses them): its plain values, decoded once for the check and every object's conversion,
    or its bytes (``msgspec.Raw``) when msgspec cannot decode it into plain values, for the per-object path
    whose errors say what is wrong (an integer out of range fails only its object)."""
    try:
        document: object = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        duplicate, document = exact_duplicate_key(data), msgspec.Raw(data)
    else:
        duplicate = duplicate_key(data, decoded=document)
    if duplicate is not None:
        raise ManifestError(f"duplicate {duplicate}", source=source)
    return document


@contextlib.contextmanager
def _no_collections() -> Iterator[None]:
    """No garbage collection while objects are read, and none of them scanned by later ones.

    Reading makes no cycles, and the collector's passes over the tens of thousands of objects a large list
    makes cost as much as reading them. The views live as long as the command that loaded them, so they
    are moved out of every later collection (``gc.freeze``; they are still freed when their last reference
    goes) instead of being scanned, all of them at once, as soon as collections start again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _sources(paths: Sequence[str | Path], *, max_bytes: int) -> list[str]:
    """The files to read, in order, each checked: directories expand to their manifest files, sorted."""
    single_stdin([("--manifests", str(given)) for given in paths])
    sources: list[str] = []
    for given in paths:
        if str(given) == STDIN:
            sources.append(STDIN)
            continue
        checked = check_path(str(given), max_bytes=max_bytes, directory_ok=True)
        if not checked.is_dir:
            sources.append(checked.path)
            continue
        found = sorted(p for p in Path(given).rglob("*") if p.suffix.lower() in _SUFFIXES and not p.is_dir())
        sources.extend(check_path(str(p), max_bytes=max_bytes).path for p in found)
    return sources


def _read(source: str, *, stdin: BinaryIO | TextIO | None, max_bytes: int) -> bytes | bytearray:
    try:
        if source != STDIN:
            return read_input(source, max_bytes=max_bytes)
        stream = stdin if stdin is not None else sys.stdin
        if isinstance(stream, io.TextIOBase):
            binary = getattr(stream, "buffer", None)
            if binary is None:  # a text stream that holds no bytes (a StringIO)
                return _text_stream(stream, max_bytes=max_bytes)  # type: ignore[arg-type]
            stream = binary
        return read_stream(stream, max_bytes=max_bytes, source=STDIN)  # type: ignore[arg-type]
    except InputError as error:
        raise ManifestError(error.message, source=error.source) from None


def _is_json(data: bytes | bytearray) -> bool:
    """Whether YAML (or stdin) is JSON, which msgspec reads at a seventh of yaml-rs's memory: JSON is YAML."""
    if _JSON_START.match(data) is None:
        return False
    try:
        msgspec.json.decode(data, type=msgspec.Raw)  # checks the syntax without building anything
    except msgspec.DecodeError:
        return False
    except RecursionError:  # JSON nested too deeply: the JSON reader says so
        return True
    return True


def _text_stream(stream: TextIO, *, max_bytes: int) -> bytes:
    """A text stream's characters (one that holds no bytes, such as a StringIO) as UTF-8."""
    text = stream.read(max_bytes + 1)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: Python's surrogateescape of bytes that are not UTF-8
        line = text.count("\n", 0, exc.start) + 1
        column = exc.start - text.rfind("\n", 0, exc.start)
        raise ManifestError(f"not UTF-8 text at line {line} (column {column})", source=STDIN) from exc
    if len(data) > max_bytes:
        raise ManifestError(f"holds more than the limit of {max_bytes} bytes; not read", source=STDIN)
    return data


def _text(data: bytes | bytearray, *, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        where = f"line {line} (byte 0x{data[exc.start]:02x} at column {column})"
        raise ManifestError(f"not UTF-8 text at {where}", source=source) from exc


_JSON_START = re.compile(rb"[ \t\r\n]*[{\[]")
_BYTE_OFFSET = re.compile(r"\(byte (\d+)\)")


def _json_line(error: msgspec.DecodeError, document: object) -> str:
    """`` at line N`` for msgspec's "(byte N)", when the document is JSON bytes."""
    offset = _BYTE_OFFSET.search(str(error))
    if offset is None or not isinstance(document, msgspec.Raw):
        return ""
    line = bytes(document).count(b"\n", 0, int(offset[1])) + 1
    return f" at line {line}"


@dataclass(slots=True)
class _ListWalk:
    """How deep the Lists of one document being flattened are."""

    depth: int = 0


class _Head(msgspec.Struct, rename="camel", gc=False):
    """What a JSON object needs to be dispatched: its kind and apiVersion, of any type."""

    kind: object = None
    api_version: object = None


class _ListBody(msgspec.Struct, gc=False):
    """The items of a JSON List, each still its bytes."""

    items: list[msgspec.Raw] | None = None


_HEAD = msgspec.json.Decoder(_Head)
_LIST_BODY = msgspec.json.Decoder(_ListBody)


def _head(document: object) -> tuple[object, object] | str:
    """``(kind, apiVersion)`` of a document, or what it is instead of an object."""
    if type(document) is dict:  # a JSON object, the usual item (isinstance of Mapping is an ABC check)
        return document.get("kind"), document.get("apiVersion")
    if isinstance(document, msgspec.Raw):
        try:
            head = _HEAD.decode(document)
        except msgspec.ValidationError:  # not an object: say what it is
            return _json_kind(document)
        return head.kind, head.api_version
    if isinstance(document, LazyList):
        document = document.head
    if not isinstance(document, Mapping):
        return type(document).__name__
    return document.get("kind"), document.get("apiVersion")


def _json_kind(document: msgspec.Raw) -> str:
    return type(msgspec.json.decode(document)).__name__  # not an object: small, or a list to say so of


def _items(document: object) -> tuple[Iterable[object] | None, bool]:
    """A List's items (None when absent), and whether ``items`` is a list at all."""
    if isinstance(document, LazyList):
        return document.items, True
    if isinstance(document, msgspec.Raw):
        try:
            return _LIST_BODY.decode(document).items, True
        except msgspec.ValidationError:
            return None, False
    assert isinstance(document, Mapping)
    items = document.get("items")
    return items, items is None or isinstance(items, list)


@dataclass(slots=True)
class _Collector:
    """Accumulates views and errors across documents; remembers where each object was first seen."""

    services: list[ServiceView] = field(default_factory=list)
    slices: list[EndpointSliceView] = field(default_factory=list)
    nodes: list[NodeView] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)
    # (kind, namespace, name): strings hash in C, where an ObjectRef's hash is a Python call (20,000 a List)
    first_seen: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def result(self) -> ManifestSet:
        return ManifestSet(tuple(self.services), tuple(self.slices), tuple(self.nodes), tuple(self.errors))

    def mark(self) -> tuple[int, ...]:
        """How much has been collected: what ``rollback`` returns to."""
        return len(self.services), len(self.slices), len(self.nodes), len(self.errors), len(self.first_seen)

    def rollback(self, mark: tuple[int, ...]) -> None:
        """Forget everything collected since ``mark``."""
        services, slices, nodes, errors, seen = mark
        del self.services[services:], self.slices[slices:], self.nodes[nodes:], self.errors[errors:]
        for key in list(self.first_seen)[seen:]:
            del self.first_seen[key]

    def add(self, document: object, *, source: str, where: str) -> None:
        """Add one document: an object, a List of objects (Lists nest), or null."""
        try:
            self._add(document, source=source, where=where, walk=_ListWalk(), inherited=None)
        except msgspec.DecodeError as exc:
            raise ManifestError(f"invalid JSON{_json_line(exc, document)}: {exc}", source=source) from exc
        except RecursionError as exc:
            raise ManifestError(_NESTED_TOO_DEEPLY, source=source) from exc

    def _add(
        self, document: object, *, source: str, where: str, walk: _ListWalk, inherited: tuple[str, object] | None
    ) -> None:
        if document is None:
            return
        head = _head(document)
        if head == "NoneType":  # a null JSON document or item
            return
        if isinstance(head, str):
            self.errors.append(ObjectError(f"must be an object, got {head}", source=source, obj=where))
            return
        kind, api_version = head
        if kind is None and inherited is not None:  # items of an API list response carry no kind of their own
            kind, api_version = inherited[0], api_version if api_version is not None else inherited[1]
        if not isinstance(kind, str) or not kind:
            self.errors.append(ObjectError("is required", source=source, obj=where, field="kind"))
            return
        if kind in _LIST_KINDS:
            self._add_list(document, kind=kind, api_version=api_version, source=source, where=where, walk=walk)
        elif kind in PARSERS:
            self._add_object(document, kind=kind, api_version=api_version, source=source)

    def _add_list(
        self, document: object, *, kind: str, api_version: object, source: str, where: str, walk: _ListWalk
    ) -> None:
        if walk.depth == _MAX_LIST_NESTING:
            self.errors.append(ObjectError(f"Lists nested deeper than {_MAX_LIST_NESTING}", source=source, obj=where))
            return
        items, is_list = _items(document)
        if not is_list:
            self.errors.append(ObjectError("must be a list", source=source, obj=where, field="items"))
            return
        inherited = (kind.removesuffix("List"), api_version) if kind != "List" else None
        walk.depth += 1
        for index, item in enumerate(items or ()):
            if type(items) is list:  # each item let go once read: the decoded document shrinks as the views grow
                items[index] = None
            self._add(item, source=source, where=f"{where} items[{index}]", walk=walk, inherited=inherited)
        walk.depth -= 1

    def _add_object(self, document: object, *, kind: str, api_version: object, source: str) -> None:
        group, parse = PARSERS[kind]
        # An object of the same kind in another API group (a Knative Service) is not ours.
        if isinstance(api_version, str) and api_version.rpartition("/")[0] != group:
            return
        raw: RawObject = memoryview(document) if isinstance(document, msgspec.Raw) else document  # type: ignore[assignment]
        try:
            view = parse(raw)
        except ObjectError as exc:
            self.errors.append(ObjectError(exc.message, source=source, obj=exc.obj, field=exc.field))
            return
        if view is None:
            return
        ref = ObjectRef("", view.name) if isinstance(view, NodeView) else view.ref
        key = (kind, ref.namespace, ref.name)
        first = self.first_seen.get(key)
        if first is not None:
            self.errors.append(
                ObjectError(f"duplicate object; the one from {first} is kept", source=source, obj=f"{kind} {ref}")
            )
            return
        self.first_seen[key] = source
        if isinstance(view, ServiceView):
            self.services.append(view)
        elif isinstance(view, EndpointSliceView):
            self.slices.append(view)
        else:
            self.nodes.append(view)
