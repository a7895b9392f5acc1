"""Tests of ipvsctl.kube.jsonkeys and its use by load_manifests: duplicate JSON keys are refused."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.errors import ManifestError
from ipvsctl.kube.jsonkeys import duplicate_key, exact_duplicate_key
from ipvsctl.kube.manifests import load_manifests


def _found(text: str) -> str | None:
    """What the quick test (on msgspec's decoding, as load_manifests makes it) and the walk say of ``text``."""
    data = text.encode()
    return duplicate_key(data, decoded=msgspec.json.decode(data))


SERVICE = (
    '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},'
    ' "spec": {"clusterIP": "203.0.113.10", "ports": [{"port": 80%s}]}}'
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1, "a": 2}', 'key "a" in $'),
        ('{"items": [{"spec": {"port": 1, "port" : 2}}]}', 'key "port" in $.items[0].spec'),
        ('{"x": "\\u0022:", "a": 1, "a": 2}', 'key "a" in $'),
        ('{"k": {"a": 1}, "k": {"a": 1}}', 'key "k" in $'),
        ('{"x": "\\u003a", "a": 1, "a": 2}', 'key "a" in $'),
        ('{"a": 1, "b": "\\u003A", "a": "\\u003a"}', 'key "a" in $'),
        ('{\n    "a"\n    :\t1,\r\n    "a" :2}', 'key "a" in $'),
    ],
    ids=[
        "top-level",
        "nested-with-space-before-colon",
        "unicode-escaped-quote-elsewhere",
        "equal-values",
        "escaped-colon-elsewhere",
        "escaped-colons-make-up-for-the-dropped-key",
        "whitespace-around-colons",
    ],
)
def test_duplicate_is_named_with_its_path(text: str, expected: str) -> None:
    """A duplicate key is found and named with the JSON path of the object that holds it twice."""
    assert _found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": {"a": 1}}',
        '{"a": "\\":", "b": "\\":"}',
        '{"x": "\\u0022:", "a": 1}',
        '{"x": "\\u003a:", "a": "::"}',
        '{"a" : 1, "b"\n:\n2}',
        "[]",
    ],
    ids=[
        "same-key-other-objects",
        "escaped-quote-colon-in-strings",
        "unicode-escape",
        "escaped-colon",
        "spaces",
        "array",
    ],
)
def test_no_duplicate(text: str) -> None:
    """Documents without duplicate keys give None."""
    assert _found(text) is None


def test_the_walk_leaves_invalid_json_to_the_decoder() -> None:
    """The exact walk says None of text that is not JSON: the decoder then says what is wrong."""
    assert exact_duplicate_key(b"[1, 2") is None


_keys = st.text(alphabet='ab":\\\u00e9 ', max_size=3)
_json = st.recursive(
    st.none() | st.integers() | st.text(alphabet='ab":\\ ', max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(_keys, inner), max_size=3),
    max_leaves=12,
)


@dataclass(frozen=True, slots=True)
class _Style:
    """How a document is written: non-ASCII escaped, whitespace around colons, colons in strings as ``\\u003a``."""

    ascii_only: bool
    space: str
    escape_colons: bool

    def string(self, value: object) -> str:
        text = json.dumps(value, ensure_ascii=self.ascii_only)
        return text.replace(":", "\\u003a") if self.escape_colons and isinstance(value, str) else text


_styles = st.builds(_Style, st.booleans(), st.sampled_from(["", " ", "\n\t", " \r\n "]), st.booleans())


def _dump(value: object, *, style: _Style) -> str:
    """JSON of ``value``, where a list of pairs is an object whose keys may repeat."""
    if isinstance(value, list) and value and all(isinstance(item, tuple) for item in value):
        pairs = (f"{style.string(key)}{style.space}:{style.space}{_dump(item, style=style)}" for key, item in value)
        return "{" + ",".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(item, style=style) for item in value) + "]"
    return style.string(value)


def _has_duplicate(value: object) -> bool:
    if isinstance(value, list) and value and all(isinstance(item, tuple) for item in value):
        keys = [key for key, _ in value]
        return len(set(keys)) < len(keys) or any(_has_duplicate(item) for _, item in value)
    if isinstance(value, list):
        return any(_has_duplicate(item) for item in value)
    return False


@given(_json, _styles)
def test_found_exactly_when_some_object_repeats_a_key(value: object, style: _Style) -> None:
    """Any document, however written and escaped: a duplicate is reported exactly when some object repeats a key."""
    assert (_found(_dump(value, style=style)) is not None) == _has_duplicate(value)


def test_load_refuses_a_file_with_a_duplicate_key(tmp_path: Path) -> None:
    """load_manifests refuses JSON with a duplicate key, naming the file, the key and where it is."""
    path = tmp_path / "web.json"
    path.write_text(SERVICE % ', "port": 81')
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert caught.value.source == str(path)
    assert 'duplicate key "port" in $.spec.ports[0]' in caught.value.message


def test_load_accepts_the_same_file_without_it(tmp_path: Path) -> None:
    """The same Service without the repeated key loads."""
    path = tmp_path / "web.json"
    path.write_text(SERVICE % "")
    assert [service.ref.name for service in load_manifests([path]).services] == ["web"]


def test_load_refuses_a_duplicate_where_msgspec_reads_objects_from_bytes(tmp_path: Path) -> None:
    """A List that only the per-object path reads (an integer out of range) is still checked for duplicates."""
    huge = SERVICE.replace('"web"', '"huge"') % (', "nodePort": ' + "9" * 5000)
    path = tmp_path / "list.json"
    twice = SERVICE % ', "name": "a", "name": "b"'
    path.write_text(f'{{"kind": "List", "items": [{huge}, {twice}]}}')
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert 'duplicate key "name" in $.items[1].spec.ports[0]' in caught.value.message


def test_load_keeps_the_others_when_one_integer_is_out_of_range(tmp_path: Path) -> None:
    """Without duplicates, that List loads as before: the object with the huge integer alone is refused."""
    huge = SERVICE.replace('"web"', '"huge"') % (', "nodePort": ' + "9" * 5000)
    path = tmp_path / "list.json"
    plain = SERVICE % ""
    path.write_text(f'{{"kind": "List", "items": [{huge}, {plain}]}}')
    loaded = load_manifests([path])
    assert [service.ref.name for service in loaded.services] == ["web"]
    assert [error.field for error in loaded.errors] == ["spec.ports[0].nodePort"]
