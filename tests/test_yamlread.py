"""kube/yamlread.py: a YAML stream read a piece at a time gives exactly what reading it whole gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings

from ipvsctl.errors import ManifestError
from ipvsctl.kube.manifests import load_manifests
from ipvsctl.kube.yamlread import MAX_WHOLE, LazyList, PieceRefused, check_yaml, documents, whole_stream
from tests.strategies import hostile_text

# As kubectl get -o yaml writes a List: items at column 0, the List's own keys after them.
KUBECTL_LIST = """\
apiVersion: v1
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: web
    namespace: default
  spec:
    clusterIP: 203.0.113.10
    ports:
    - port: 80
# a comment between items
- apiVersion: v1
  kind: Node
  metadata: {name: worker1}
  status:
    addresses:
    - {type: InternalIP, address: 192.0.2.11}

- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
  data:
    script: |
      - not an item
      items:
kind: List
metadata:
  resourceVersion: ""
---
apiVersion: v1
kind: Node
metadata: {name: worker2}
"""


def materialized(value: object) -> object:
    """A LazyList as the mapping it stands for (items in a list)."""
    if isinstance(value, LazyList):
        return {**value.head, "items": list(value.items)}
    return value


def piecewise(text: str) -> list[object] | None:
    """The documents read a piece at a time; None when a piece refuses to be read alone."""
    try:
        return [materialized(document) for document in documents(text)]
    except PieceRefused:
        return None


def whole(text: str) -> list[object] | None:
    """The documents read whole, null ones left out as the loader leaves them; None on an error."""
    try:
        return list(whole_stream(text, source="x.yaml", refused=PieceRefused("compared")))
    except ManifestError:
        return None


def without_nulls(loaded: list[object] | None) -> list[object] | None:
    return None if loaded is None else [document for document in loaded if document is not None]


def test_kubectl_list_is_read_item_by_item() -> None:
    """A List as kubectl writes it is read lazily, its items in order, and equals the stream read whole."""
    first = next(iter(documents(KUBECTL_LIST)))
    assert isinstance(first, LazyList)
    assert piecewise(KUBECTL_LIST) == whole(KUBECTL_LIST)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_text(KUBECTL_LIST))
def test_any_text_read_in_pieces_gives_what_it_gives_whole(text: str) -> None:
    """Whenever every piece parses alone, the documents are those of the whole stream (nulls aside)."""
    assume(text.encode("utf-8", errors="replace").decode("utf-8") == text)  # the loader reads only UTF-8
    try:
        check_yaml(text, source="x.yaml")
    except ManifestError:
        assume(False)  # refused before any reading, whichever way
    pieces = piecewise(text)
    if pieces is not None:
        try:
            same = without_nulls(pieces) == without_nulls(whole(text))
        except RecursionError:  # == itself recurses per level: values nested too deeply to compare here
            assume(False)
        assert same


@pytest.mark.parametrize(
    "text",
    [
        "kind: List\nmetadata:\n  resourceVersion: |\n---\nkind: Node\n",
        "items:\n- data: {}\n  script: |\n- kind: Node\n",
        "items:\n- kind: Node\nmetadata:\n  resourceVersion: |\n---\nkind: Node\n",
    ],
    ids=["document", "list-item", "list-head"],
)
def test_empty_block_scalar_before_more_of_the_stream_is_empty_text(text: str) -> None:
    """``key: |`` with no content, in a piece the stream continues, reads as "" in pieces as it does whole."""
    assert piecewise(text) == whole(text)


@pytest.mark.parametrize(
    "text",
    [
        "items:\n- &a {kind: Node, metadata: {name: n}}\n- *a\n",
        "%YAML 1.2\n---\nkind: Node\n",
        "kind: Node\n...\nkind: Service\n",
        "items:\n- a\nitems:\n- b\n",
    ],
    ids=["alias-across-items", "directive", "document-end", "items-twice"],
)
def test_what_cannot_be_read_in_pieces_is_refused(text: str) -> None:
    """An alias to another item, a directive, a document end marker or a second items key: read whole."""
    assert piecewise(text) is None


def test_alias_across_items_still_loads(tmp_path: Path) -> None:
    """A List whose item repeats another by alias loads, read whole."""
    path = tmp_path / "aliases.yaml"
    path.write_text("kind: List\nitems:\n- &n {apiVersion: v1, kind: Node, metadata: {name: worker1}}\n- *n\n")
    loaded = load_manifests([path])
    assert ([node.name for node in loaded.nodes], [e.message for e in loaded.errors]) == (
        ["worker1"],
        ["duplicate object; the one from " + str(path) + " is kept"],
    )


def test_error_in_a_later_item_names_its_line_in_the_file(tmp_path: Path) -> None:
    """A syntax error in the third item is reported at its line in the file, and nothing else loads."""
    path = tmp_path / "broken.yaml"
    path.write_text(KUBECTL_LIST.replace("  data:\n", "  data: [\n"))
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert caught.value.message.startswith("invalid YAML at line 2") or "line" in caught.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kind: Node\nmetadata: {name: a}\x00\n---\nkind: Service\n",
            "invalid YAML at line 2: a character YAML does not allow (U+0000)",
        ),
        ("a: b\x1b[2J\n", "invalid YAML at line 1: a character YAML does not allow (U+001B)"),
    ],
    ids=["nul", "escape"],
)
def test_characters_yaml_does_not_allow_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """A NUL (yaml-rs would stop reading there, silently) or another control character is refused by its line."""
    path = tmp_path / "controls.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert caught.value.message == message


def test_mapping_as_a_key_is_a_manifest_error(tmp_path: Path) -> None:
    """A key that is itself a mapping (Python cannot hash the value yaml-rs builds) is our error, not a TypeError."""
    path = tmp_path / "keys.yaml"
    path.write_text('{"":{"":""},{"":[{""}]}}\n')
    with pytest.raises(ManifestError, match="invalid YAML: TypeError"):
        load_manifests([path])


def big_list(items: int, *, extra: str = "") -> str:
    """A kubectl-style List of ``items`` Nodes, more than MAX_WHOLE bytes when ``items`` is large."""
    entry = "- apiVersion: v1\n  kind: Node\n  metadata:\n    name: node-{n}\n    labels: {{padding: {pad}}}\n"
    body = "".join(entry.format(n=n, pad="x" * 100) for n in range(items))
    return "apiVersion: v1\nitems:\n" + body + extra + "kind: List\nmetadata: {}\n"


def test_json_in_a_yaml_file_is_read_as_json(tmp_path: Path) -> None:
    """A .yaml file holding JSON (tabs and all, which YAML refuses as indentation) is read by the JSON reader."""
    path = tmp_path / "nodes.yaml"
    path.write_text(
        '{\n\t"apiVersion": "v1", "kind": "List",\n\t"items": [\n'
        '\t\t{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"}}\n\t]\n}\n'
    )
    loaded = load_manifests([path])
    assert ([node.name for node in loaded.nodes], loaded.errors) == (["w1"], ())


def test_large_flow_yaml_is_refused_not_read_whole(tmp_path: Path) -> None:
    """Flow-style YAML (not JSON) over 2 MiB in one document is refused: read whole it would cost 15x its size."""
    items = ", ".join(f"{{apiVersion: v1, kind: Node, metadata: {{name: n{n}}}}}" for n in range(50_000))
    path = tmp_path / "flow.yaml"
    path.write_text(f"{{apiVersion: v1, kind: List, items: [{items}]}}\n")
    assert path.stat().st_size > MAX_WHOLE
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert caught.value.message.startswith(
        f"cannot be read a document or List item at a time (a document or List item of more than {MAX_WHOLE} bytes)"
    )


def test_error_in_a_large_list_names_its_line_in_the_file(tmp_path: Path) -> None:
    """A syntax error in an item of a List over 2 MiB (not read whole) is reported at its line in the file."""
    text = big_list(20_000, extra="- apiVersion: v1\n  kind: [\n")
    path = tmp_path / "big.yaml"
    path.write_text(text)
    assert path.stat().st_size > MAX_WHOLE
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    line = text.count("\n", 0, text.index("  kind: [")) + 1
    assert caught.value.message == f"invalid YAML at line {line}: unclosed bracket '[' (column 9)"


def test_large_list_that_cannot_be_read_in_pieces_is_refused(tmp_path: Path) -> None:
    """An alias from one item to another in a List over 2 MiB: refused with the reason, not read whole."""
    text = big_list(20_000).replace(
        "- apiVersion: v1\n  kind: Node\n  metadata:\n    name: node-0\n",
        "- &first {apiVersion: v1, kind: Node, metadata: {name: node-0}}\n- *first\n",
        1,
    )
    path = tmp_path / "aliases.yaml"
    path.write_text(text)
    with pytest.raises(
        ManifestError,
        match=r"at a time \(an alias to an anchor in another document or List item\)",
    ):
        load_manifests([path])
