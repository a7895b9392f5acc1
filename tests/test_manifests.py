"""Tests of ipvsctl.kube.manifests: files, directories and stdin → a ManifestSet."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from ipvsctl.errors import ManifestError, ObjectError
from ipvsctl.kube.manifests import ManifestSet, load_manifests
from ipvsctl.kube.views import ObjectRef

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "cluster"

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  clusterIP: {ip}
  ports: [{{port: 80}}]
"""

NODE = """\
apiVersion: v1
kind: Node
metadata: {name: worker1}
status:
  addresses: [{type: InternalIP, address: 192.0.2.11}]
"""

SLICE = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 80}]
endpoints: [{addresses: [198.51.100.10], nodeName: worker1}]
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec: {replicas: 1}
"""


def service(name: str = "web", ip: str = "203.0.113.10") -> str:
    """A minimal Service manifest."""
    return SERVICE.format(name=name, ip=ip)


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (creating directories) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def names(manifests: ManifestSet) -> list[str]:
    """The names of all loaded objects, in load order: services, slices, nodes."""
    return (
        [s.ref.name for s in manifests.services]
        + [s.ref.name for s in manifests.slices]
        + [n.name for n in manifests.nodes]
    )


def test_multi_document_file(tmp_path: Path) -> None:
    """Every document of a multi-document YAML file loads, each into its kind."""
    path = write(tmp_path / "all.yaml", "---\n".join([service(), SLICE, NODE]))
    manifests = load_manifests([path])
    assert names(manifests) == ["web", "web-abc12", "worker1"]
    assert manifests.errors == ()


def test_null_documents_are_skipped(tmp_path: Path) -> None:
    """Empty documents (``---`` with nothing after) are skipped."""
    path = write(tmp_path / "a.yaml", "---\n---\n" + service() + "---\n")
    manifests = load_manifests([path])
    assert names(manifests) == ["web"]
    assert manifests.errors == ()


def test_list_items_are_flattened(tmp_path: Path) -> None:
    """A ``kind: List`` (``kubectl get -o yaml``) contributes each of its items."""
    items = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": n}, "spec": {"clusterIP": "203.0.113.10"}}
        for n in ("a", "b")
    ]
    path = write(tmp_path / "list.json", json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert names(load_manifests([path])) == ["a", "b"]


def test_typed_list_items_inherit_kind(tmp_path: Path) -> None:
    """Items of a ServiceList, which carry no kind of their own, load as Services."""
    text = "apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: web}\n  spec: {clusterIP: 203.0.113.10}\n"
    manifests = load_manifests([write(tmp_path / "svc.yaml", text)])
    assert names(manifests) == ["web"]
    assert manifests.errors == ()


def test_other_kinds_are_ignored(tmp_path: Path) -> None:
    """Deployments and other kinds are ignored without an error."""
    manifests = load_manifests([write(tmp_path / "a.yaml", DEPLOYMENT + "---\n" + service())])
    assert names(manifests) == ["web"]
    assert manifests.errors == ()


def test_same_kind_in_other_api_group_is_ignored(tmp_path: Path) -> None:
    """A Service of another API group (a Knative Service) is not a core Service and is ignored."""
    knative = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: fn}\nspec: {template: {}}\n"
    manifests = load_manifests([write(tmp_path / "fn.yaml", knative)])
    assert (manifests.services, manifests.errors) == ((), ())


def test_directory_is_read_recursively_in_order(tmp_path: Path) -> None:
    """A directory contributes its .yaml, .yml and .json files, recursively, in sorted order."""
    write(tmp_path / "b.yml", service("b"))
    write(tmp_path / "a" / "z.yaml", service("az"))
    write(tmp_path / "c.json", json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}))
    write(tmp_path / "d.txt", service("ignored"))
    write(tmp_path / "e.save", "-A -t 203.0.113.10:80 -s rr\n")
    assert names(load_manifests([tmp_path])) == ["az", "b", "n1"]


def test_stdin_is_read_for_dash() -> None:
    """The path ``-`` reads manifests from stdin."""
    manifests = load_manifests(["-"], stdin=io.StringIO(service()))
    assert names(manifests) == ["web"]


def test_json_on_stdin_is_read_as_json() -> None:
    """stdin that starts with ``{`` is JSON: tab indentation (which YAML refuses) is read."""
    text = '{\n\t"apiVersion": "v1", "kind": "Node",\n\t"metadata": {"name": "worker1"}\n}\n'
    manifests = load_manifests(["-"], stdin=io.BytesIO(text.encode()))
    assert (names(manifests), manifests.errors) == (["worker1"], ())


def test_unquoted_timestamp_stays_text(tmp_path: Path) -> None:
    """An unquoted creationTimestamp is kept as the text written, not turned into a datetime."""
    text = service().replace("metadata: {", "metadata: {creationTimestamp: 2024-05-07T09:21:02Z, ")
    (view,) = load_manifests([write(tmp_path / "a.yaml", text)]).services
    assert view.creation_timestamp == "2024-05-07T09:21:02Z"


def test_malformed_object_is_recorded_and_others_load(tmp_path: Path) -> None:
    """A malformed object becomes an error with its source, and the objects around it still load."""
    bad = service("bad").replace("[{port: 80}]", "[{port: http}]")
    path = write(tmp_path / "svc.yaml", "---\n".join([service("a"), bad, service("c")]))
    manifests = load_manifests([path])
    assert names(manifests) == ["a", "c"]
    (error,) = manifests.errors
    assert isinstance(error, ObjectError)
    assert (error.source, error.obj, error.field) == (str(path), "Service default/bad", "spec.ports[0].port")


def test_duplicate_object_keeps_the_first(tmp_path: Path) -> None:
    """A second object of the same kind and namespace/name is an error; the first one is kept."""
    first = write(tmp_path / "1.yaml", service(ip="203.0.113.10"))
    second = write(tmp_path / "2.yaml", service(ip="203.0.113.99"))
    manifests = load_manifests([first, second])
    assert [s.cluster_ips for s in manifests.services] == [("203.0.113.10",)]
    (error,) = manifests.errors
    assert (error.source, error.obj) == (str(second), "Service default/web")
    assert str(first) in error.message


def test_same_name_of_different_kinds_is_not_a_duplicate(tmp_path: Path) -> None:
    """A Service and a Node may share a name."""
    node = NODE.replace("worker1", "web")
    manifests = load_manifests([write(tmp_path / "a.yaml", service("web") + "---\n" + node)])
    assert (len(manifests.services), len(manifests.nodes), manifests.errors) == (1, 1, ())


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param("- apiVersion: v1\n  kind: Service\n", "", id="document-is-a-list"),
        pytest.param("apiVersion: v1\nmetadata: {name: web}\n", "kind", id="kind-missing"),
        pytest.param("apiVersion: v1\nkind: List\nitems: {a: 1}\n", "items", id="list-items-not-a-list"),
    ],
)
def test_document_that_is_not_an_object_is_recorded(tmp_path: Path, text: str, field: str) -> None:
    """A document that is not a Kubernetes object is an error naming the document; loading goes on."""
    path = write(tmp_path / "a.yaml", text + "---\n" + NODE)
    manifests = load_manifests([path])
    assert names(manifests) == ["worker1"]
    (error,) = manifests.errors
    assert (error.source, error.obj, error.field) == (str(path), "document 1", field)


def test_invalid_yaml_is_fatal_with_path_and_line(tmp_path: Path) -> None:
    """Invalid YAML raises ManifestError naming the file and the line."""
    path = write(tmp_path / "bad.yaml", service() + "  ports: [{port: 80\n")
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert caught.value.source == str(path)
    assert "invalid YAML at line" in caught.value.message


def test_invalid_json_is_fatal_with_line(tmp_path: Path) -> None:
    """Invalid JSON raises ManifestError naming the file and the line."""
    path = write(tmp_path / "bad.json", '{\n  "kind": "Service",\n  "metadata": }\n')
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert caught.value.source == str(path)
    assert "invalid JSON at line 3" in caught.value.message


def test_missing_path_is_fatal(tmp_path: Path) -> None:
    """A path that does not exist raises ManifestError naming it."""
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert caught.value.source == str(path)


def test_non_utf8_file_is_fatal(tmp_path: Path) -> None:
    """A file that is not UTF-8 text raises ManifestError naming it."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: Service\nmetadata: {name: caf\xe9}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert (caught.value.source, "not UTF-8" in caught.value.message) == (str(path), True)


def test_single_string_is_refused() -> None:
    """A single path string instead of a sequence of paths is a TypeError, not a walk over its characters."""
    with pytest.raises(TypeError):
        load_manifests("examples")


# --- the embedded example cluster -----------------------------------------------------------------


def test_example_cluster_loads_cleanly() -> None:
    """examples/cluster loads 3 Services, 3 EndpointSlices and 2 Nodes without errors."""
    manifests = load_manifests([EXAMPLES])
    assert (len(manifests.services), len(manifests.slices), len(manifests.nodes)) == (3, 3, 2)
    assert manifests.errors == ()


def test_example_slices_cover_every_service() -> None:
    """Each example Service has one slice, with ports named like the Service's."""
    manifests = load_manifests([EXAMPLES])
    ports = {s.ref.name: {p.name for p in s.ports} for s in manifests.services}
    assert {s.service_name: {p.name for p in s.ports} for s in manifests.slices} == ports


def test_example_pods_are_placed_on_the_nodes() -> None:
    """The example pods run one on worker1 and two on worker2, at the documented addresses."""
    manifests = load_manifests([EXAMPLES])
    nodes = {n.name: n.addresses for n in manifests.nodes}
    assert nodes == {"worker1": ("192.0.2.11",), "worker2": ("192.0.2.12",)}
    for endpoint_slice in manifests.slices:
        placement = {(e.address, e.node_name) for e in endpoint_slice.endpoints}
        assert placement == {("198.51.100.10", "worker1"), ("198.51.100.20", "worker2"), ("198.51.100.21", "worker2")}


def test_example_session_affinity_service() -> None:
    """sample-session-affinity is a LoadBalancer with ClientIP affinity for 10800 s on 8080 → nodePort 30080."""
    by_name = {s.ref: s for s in load_manifests([EXAMPLES]).services}
    view = by_name[ObjectRef("default", "sample-session-affinity")]
    assert (view.type, view.cluster_ips, view.load_balancer_ips) == (
        "LoadBalancer",
        ("203.0.113.10",),
        ("192.0.2.100",),
    )
    assert (view.session_affinity, view.affinity_timeout) == ("ClientIP", 10800)
    assert [(p.port, p.node_port) for p in view.ports] == [(8080, 30080)]


# --- hostile input --------------------------------------------------------------------------------


def service_json(port: str) -> str:
    """A Service web as JSON with ``port`` written verbatim as its port."""
    return (
        '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},'
        f' "spec": {{"clusterIP": "203.0.113.10", "ports": [{{"port": {port}}}]}}}}'
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("svc.json", service_json("9" * 5000)),
        ("svc.yaml", service().replace("port: 80", "port: " + "9" * 4000)),
        ("svc.yaml", service().replace("port: 80", "port: 1_" + "9" * 4000)),
        ("svc.yaml", service().replace("port: 80", "port: 0x" + "f" * 20000)),
    ],
    ids=["json", "yaml-decimal", "yaml-underscores", "yaml-hex"],
)
def test_huge_integer_field_is_an_object_error(tmp_path: Path, name: str, text: str) -> None:
    """A port written with thousands of digits is an error naming the Service and the field; the Node loads."""
    path = write(tmp_path / name, text)
    write(tmp_path / "node.yaml", NODE)
    manifests = load_manifests([path, tmp_path / "node.yaml"])
    assert names(manifests) == ["worker1"]
    (error,) = manifests.errors
    assert (error.source, error.obj, error.field) == (str(path), "Service default/web", "spec.ports[0].port")
    assert error.message.startswith("must be a port between 1 and 65535, got an integer of ")


def test_yaml_integer_past_python_limit_is_a_manifest_error(tmp_path: Path) -> None:
    """A run of more than 4300 digits in YAML (yaml-rs converts integers in quadratic time) is refused unread."""
    path = write(tmp_path / "svc.yaml", service().replace("port: 80", "port: " + "9" * 5000))
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert (caught.value.source, caught.value.message) == (
        str(path),
        "a number of more than 4300 digits at line 6: not read",
    )


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("1:20", "must be an integer, got string"),
        ("yes", "must be an integer, got string"),
    ],
    ids=["base-60", "yes"],
)
def test_yaml_scalars_follow_yaml_1_2(tmp_path: Path, written: str, message: str) -> None:
    """``port: 1:20`` is text, not 80 (YAML 1.1's base 60), and ``yes`` is text, not true: the Service is refused."""
    path = write(tmp_path / "svc.yaml", service().replace("port: 80", f"port: {written}"))
    (error,) = load_manifests([path]).errors
    assert (error.field, error.message) == ("spec.ports[0].port", message)


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n"])
def test_yaml_1_1_booleans_are_text(tmp_path: Path, word: str) -> None:
    """A label value ``yes``/``no``/``on``/``off`` is the string itself, not a boolean that would refuse the Service."""
    path = write(tmp_path / "svc.yaml", service().replace("metadata: {", f"metadata: {{labels: {{a: {word}}}, "))
    manifests = load_manifests([path])
    assert (manifests.errors, dict(manifests.services[0].labels)) == ((), {"a": word})


def test_duplicate_key_is_a_manifest_error(tmp_path: Path) -> None:
    """A key given twice in one mapping (the apiserver's strict decoding refuses it) makes the file unreadable."""
    path = write(tmp_path / "svc.yaml", service().replace("  ports:", "  clusterIP: 203.0.113.11\n  ports:"))
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert (caught.value.source, caught.value.message) == (
        str(path),
        "invalid YAML: duplicate mapping key: 'clusterIP'",
    )


def test_huge_integer_in_a_field_not_read_is_ignored(tmp_path: Path) -> None:
    """A huge integer where the proxy reads nothing (another kind, an unknown field) disturbs nothing."""
    other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {}\nsize: " + "9" * 4000 + "\n"
    text = service().replace("spec:\n", "spec:\n  replicas: " + "9" * 4000 + "\n")
    manifests = load_manifests([write(tmp_path / "a.yaml", other + "---\n" + text)])
    assert (names(manifests), manifests.errors) == (["web"], ())


DEEP = "nested too deeply to read"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000, DEEP),
        ("deep.json", '{"a":' * 100_000 + "1" + "}" * 100_000, DEEP),
        ("deep.yaml", "a: " + "[" * 100_000 + "]" * 100_000, f"invalid YAML at line 1: {DEEP} (column 259)"),
        ("deep.yaml", "[" * 100_000 + "]" * 100_000, DEEP),
        (
            "deep.yaml",
            "".join("  " * depth + "a:\n" for depth in range(2000)) + "  " * 2000 + "b\n",
            f"{DEEP}: line 502 is indented more than 1000 columns",
        ),
        ("deep.yaml", "- " * 20_000 + "x\n", f"{DEEP}: line 1 is indented more than 1000 columns"),
    ],
    ids=["json-lists", "json-objects", "yaml-flow", "json-in-yaml", "yaml-block", "yaml-compact-sequences"],
)
def test_deeply_nested_file_is_a_manifest_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    """A file nested too deeply to read raises ManifestError naming it (yaml-rs would crash past ~8,000 levels)."""
    path = write(tmp_path / name, text)
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert (caught.value.source, caught.value.message) == (str(path), message)


def nested_lists(depth: int, item: Mapping[str, object]) -> Mapping[str, object]:
    """``item`` inside ``depth`` Lists, each the only item of the one around it."""
    document = item
    for _ in range(depth):
        document = {"apiVersion": "v1", "kind": "List", "items": [document]}
    return document


def test_list_nested_once_is_flattened(tmp_path: Path) -> None:
    """A List inside a List contributes its items, as kubectl flattens it."""
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker1"}}
    manifests = load_manifests([write(tmp_path / "lists.json", json.dumps(nested_lists(2, node)))])
    assert (names(manifests), manifests.errors) == (["worker1"], ())


@pytest.mark.parametrize("depth", [17, 100], ids=["just-too-deep", "a-hundred"])
def test_list_nested_too_deeply_is_an_object_error(tmp_path: Path, depth: int) -> None:
    """Lists nested beyond 16 are an error naming the document; the file's other documents load."""
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker1"}}
    lists = json.dumps(nested_lists(depth, {**node, "metadata": {"name": "deep"}}))
    path = write(tmp_path / "lists.yaml", lists + "\n---\n" + json.dumps(node))
    manifests = load_manifests([path])
    assert names(manifests) == ["worker1"]
    (error,) = manifests.errors
    assert (error.source, error.obj.split()[:2]) == (str(path), ["document", "1"])
    assert error.message == "Lists nested deeper than 16"


def test_list_that_contains_itself_reads_as_null(tmp_path: Path) -> None:
    """A YAML alias making a List its own item is null to yaml-rs: nothing is read from it, the rest loads."""
    text = "&top {apiVersion: v1, kind: List, items: [*top]}\n---\n" + NODE
    manifests = load_manifests([write(tmp_path / "loop.yaml", text)])
    assert (names(manifests), manifests.errors) == (["worker1"], ())


def test_aliases_expanding_past_the_file_size_are_a_manifest_error(tmp_path: Path) -> None:
    """Aliases that repeat a List ten times at each of six levels (a million Services) are refused, not expanded."""
    levels = ["- &l0 {apiVersion: v1, kind: List, items: [" + service_json("80") + "]}"]
    levels += [f"- &l{n} {{kind: List, items: [{', '.join([f'*l{n - 1}'] * 10)}]}}" for n in range(1, 7)]
    text = "apiVersion: v1\nkind: List\nitems:\n" + "\n".join(levels) + "\n"
    path = write(tmp_path / "bomb.yaml", text)
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert caught.value.message.startswith("invalid YAML: alias replay limit exceeded")


@pytest.mark.parametrize(
    "value",
    ['!!int "²"', '!!int ""', '!!int "0x"', '!!float "x"', '!!bool "maybe"'],
    ids=["int-superscript", "int-empty", "int-no-hex-digits", "float-word", "bool-word"],
)
def test_bad_explicitly_tagged_scalar_is_a_manifest_error_with_line(tmp_path: Path, value: str) -> None:
    """A scalar its explicit tag cannot read raises ManifestError naming the file and line, not ValueError."""
    path = write(tmp_path / "tagged.yaml", service().replace("port: 80", f"port: {value}"))
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert caught.value.source == str(path)
    assert caught.value.message.startswith("invalid YAML at line 6: ")


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    """The error for a file that is not UTF-8 names the line and the byte."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: Service\nmetadata: {name: caf\xe9}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifests([path])
    assert caught.value.message == "not UTF-8 text at line 2 (byte 0xe9 at column 21)"


@pytest.mark.parametrize(
    "stdin",
    [
        io.TextIOWrapper(io.BytesIO(b"kind: Service\nmetadata: {name: caf\xe9}\n"), encoding="utf-8"),
        io.StringIO("kind: Service\nmetadata: {name: caf\udce9}\n"),
    ],
    ids=["strict-decoding", "surrogate-escaped"],
)
def test_non_utf8_stdin_is_a_manifest_error(stdin: io.TextIOBase) -> None:
    """Stdin that is not UTF-8 (strictly decoded, or smuggled in as surrogates) raises ManifestError for -."""
    with pytest.raises(ManifestError) as caught:
        load_manifests(["-"], stdin=stdin)  # type: ignore[arg-type]
    assert (caught.value.source, caught.value.message.startswith("not UTF-8 text")) == ("-", True)
