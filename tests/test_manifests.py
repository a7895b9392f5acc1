"""Tests of ipvsctl.kube.manifests: files, directories and stdin → a ManifestSet."""

from __future__ import annotations

import io
import json
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
