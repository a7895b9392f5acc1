"""ipvsctl affinity --client: the cluster-wide choice of each cluster-scope virtual service (pure part)."""

from __future__ import annotations

from ipvsctl.affinity import ClusterChoice, choices_json, choices_text, cluster_choices, parse_pin_filter
from ipvsctl.affinity_scope import CLUSTER_FLAGS, lookup_table
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import Persistence, Protocol, RealServer, RealServerKey, ServiceKey, Table, VirtualService

KEY = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
KEY6 = ServiceKey(Protocol.TCP, "2001:db8:f::10", 80)
REALS = tuple(RealServer(f"198.51.100.{last}", 8080) for last in range(11, 16))
WEB = ObjectRef("default", "web")


def scoped(key: ServiceKey = KEY, reals: tuple[RealServer, ...] = REALS) -> VirtualService:
    """A cluster-scope virtual service."""
    return VirtualService(key, scheduler="mh", sched_flags=CLUSTER_FLAGS, persistence=Persistence(60, 32), reals=reals)


def test_the_choice_is_the_tables() -> None:
    """The cluster-wide choice is the Maglev table's, named by Service and pod."""
    pods = {real.address: ObjectRef("default", f"web-{n}") for n, real in enumerate(REALS)}
    (choice,) = cluster_choices(Table.of([scoped()]), client="192.0.2.7", owners={KEY: WEB}, pods=pods)
    expected = lookup_table(scoped()).choose("192.0.2.7")

    assert expected is not None
    assert choice == ClusterChoice(KEY, WEB, "192.0.2.7", expected.key, pods[expected.address])


def test_services_of_another_scope_or_family_have_no_choice() -> None:
    """Only cluster-scope virtual services of the client's family answer."""
    plain = VirtualService(ServiceKey(Protocol.TCP, "203.0.113.11", 80), persistence=Persistence(60, 32), reals=REALS)
    v6 = scoped(KEY6, (RealServer("2001:db8:5::11", 8080),))

    assert [c.virtual_service for c in cluster_choices(Table.of([scoped(), plain, v6]), client="192.0.2.7")] == [KEY]


def test_the_vip_filter_applies() -> None:
    """--vip keeps the choices of that virtual service only."""
    other = scoped(ServiceKey(Protocol.TCP, "203.0.113.11", 80))
    where = parse_pin_filter(client="192.0.2.7", vip="203.0.113.11:80")

    assert [
        c.virtual_service for c in cluster_choices(Table.of([scoped(), other]), client="192.0.2.7", where=where)
    ] == [other.key]


def test_no_available_server_is_said() -> None:
    """With every server drained the choice is none, in text and JSON."""
    (choice,) = cluster_choices(Table.of([scoped(reals=(REALS[0].with_weight(0),))]), client="192.0.2.7")

    assert choice.real_server is None
    assert "none available" in choices_text([choice])
    assert choices_json([choice])[0]["realServer"] is None


def test_text_and_json_name_the_server() -> None:
    """The text table and the JSON entry carry the server and the Service."""
    choice = ClusterChoice(KEY, WEB, "192.0.2.7", RealServerKey("198.51.100.12", 8080), None)

    assert "198.51.100.12:8080" in choices_text([choice])
    assert choices_json([choice]) == [
        {
            "service": {"namespace": "default", "name": "web"},
            "virtualService": {"protocol": "tcp", "address": "203.0.113.10", "port": 80},
            "client": "192.0.2.7",
            "realServer": {"address": "198.51.100.12", "port": 8080},
            "pod": None,
        }
    ]
