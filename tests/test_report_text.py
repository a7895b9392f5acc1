"""The text plan (``report.plan_text``): every kind of change, each on its line under its Service, and the summary."""

from __future__ import annotations

from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Operation,
    Persistence,
    Protocol,
    RealServer,
    ServiceKey,
    VirtualService,
)
from ipvsctl.report import PlanContext, plan_text

WEB = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
DNS = ServiceKey(Protocol.UDP, "2001:db8::10", 53)
STALE = ServiceKey(Protocol.TCP, "192.0.2.99", 443)
MARK = ServiceKey.fwmark(7, family=6)
POD_REAL = RealServer("198.51.100.10", 8080)
OTHER_REAL = RealServer("198.51.100.11", 8080, weight=3)
DNS_REAL = RealServer("2001:db8::20", 53)
CONTEXT = PlanContext(
    node="worker1",
    owners={WEB: ObjectRef("default", "web"), DNS: ObjectRef("kube-system", "dns"), MARK: ObjectRef("a", "mark")},
    pods={POD_REAL.address: ObjectRef("default", "web-0")},
)
OPERATIONS: list[Operation] = [
    AddVirtualService(VirtualService(DNS, scheduler="sh")),
    AddRealServer(DNS, DNS_REAL),
    EditVirtualService(
        VirtualService(WEB, persistence=Persistence(10800, 24)), previous=VirtualService(WEB, scheduler="wlc")
    ),
    AddRealServer(WEB, POD_REAL),
    EditRealServer(WEB, OTHER_REAL.with_weight(0), previous=OTHER_REAL, drain=True),
    EditRealServer(WEB, POD_REAL.with_weight(2), previous=POD_REAL),
    DeleteRealServer(STALE, RealServer("192.0.2.50", 443)),
    DeleteVirtualService(VirtualService(STALE)),
    AddVirtualService(VirtualService(MARK)),
]


def test_plan_text_writes_each_kind_of_change_under_its_service() -> None:
    """Each change is one line under its owner's title (titles sorted, the unowned last), then the counts."""
    assert plan_text(OPERATIONS, CONTEXT).splitlines() == [
        "Service a/mark",
        "  + add    service fwmark:7/v6  (scheduler rr)",
        "Service default/web",
        "  ~ edit   service tcp/203.0.113.10:80  (scheduler wlc -> scheduler rr, persistent 10800s /24)",
        "  + add    real    tcp/203.0.113.10:80 -> 198.51.100.10:8080 masq weight 1  [pod default/web-0]",
        "  ~ drain  real    tcp/203.0.113.10:80 -> 198.51.100.11:8080  (198.51.100.11:8080 masq weight 3 -> "
        "198.51.100.11:8080 masq weight 0)",
        "  ~ edit   real    tcp/203.0.113.10:80 -> 198.51.100.10:8080  (198.51.100.10:8080 masq weight 1 -> "
        "198.51.100.10:8080 masq weight 2)  [pod default/web-0]",
        "Service kube-system/dns",
        "  + add    service udp/[2001:db8::10]:53  (scheduler sh)",
        "  + add    real    udp/[2001:db8::10]:53 -> [2001:db8::20]:53 masq weight 1",
        "(no Service: stale or unowned by the manifests)",
        "  - delete real    tcp/192.0.2.99:443 -> 192.0.2.50:443 masq weight 1",
        "  - delete service tcp/192.0.2.99:443  (scheduler rr)",
        "node worker1: 9 changes pending (4 add, 2 edit, 1 drain, 2 delete)",
    ]


def test_plan_text_of_no_change_says_in_sync() -> None:
    """An empty plan is the in-sync line alone."""
    assert plan_text([], CONTEXT) == "node worker1: in sync\n"
