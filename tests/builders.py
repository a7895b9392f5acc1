"""Small factories for Kubernetes views in tests: only the fields a test cares about are named."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ipvsctl.kube.views import (
    EndpointSliceView,
    EndpointView,
    LoadBalancerIngressView,
    ObjectRef,
    ServicePortView,
    ServiceView,
    SlicePortView,
)
from ipvsctl.model import Protocol


def svc(
    name: str = "web",
    *,
    namespace: str = "default",
    type: str = "ClusterIP",
    cluster_ips: Sequence[str] = ("203.0.113.10",),
    ports: Sequence[ServicePortView] | None = None,
    external_ips: Sequence[str] = (),
    load_balancer_ips: Sequence[str] = (),
    ip_modes: Sequence[str] = (),
    ip_families: Sequence[str] = (),
    traffic_distribution: str = "",
    affinity: str = "None",
    timeout: int | None = None,
    etp: str = "Cluster",
    itp: str = "Cluster",
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    created: str = "2026-01-01T00:00:00Z",
) -> ServiceView:
    """A Service view with one TCP port 80 unless told otherwise; ``ip_modes`` pair with ``load_balancer_ips``."""
    return ServiceView(
        ref=ObjectRef(namespace, name),
        uid=f"uid-{namespace}-{name}",
        creation_timestamp=created,
        type=type,
        cluster_ips=tuple(cluster_ips),
        ports=tuple(ports) if ports is not None else (port(),),
        external_ips=tuple(external_ips),
        load_balancer_ingress=tuple(
            LoadBalancerIngressView(ip, ip_mode=ip_modes[n] if n < len(ip_modes) else "", index=n)
            for n, ip in enumerate(load_balancer_ips)
        ),
        ip_families=tuple(ip_families),
        traffic_distribution=traffic_distribution,
        session_affinity=affinity,
        affinity_timeout=timeout,
        external_traffic_policy=etp,
        internal_traffic_policy=itp,
        labels=dict(labels or {}),
        annotations=dict(annotations or {}),
    )


def port(
    number: int = 80, *, name: str = "http", protocol: Protocol = Protocol.TCP, node_port: int | None = None
) -> ServicePortView:
    """A Service port."""
    return ServicePortView(name=name, protocol=protocol, port=number, node_port=node_port)


def ep(
    address: str,
    *,
    node: str = "worker1",
    ready: bool = True,
    serving: bool | None = None,
    terminating: bool = False,
    pod: str | None = None,
    zones: Sequence[str] = (),
    nodes: Sequence[str] = (),
) -> EndpointView:
    """An endpoint; ``serving`` defaults to ``ready`` as the API does; ``zones`` / ``nodes`` are its hints."""
    return EndpointView(
        address=address,
        ready=ready,
        serving=ready if serving is None else serving,
        terminating=terminating,
        node_name=node,
        target=ObjectRef("default", pod) if pod else None,
        zone_hints=tuple(zones),
        node_hints=tuple(nodes),
    )


def eps(
    *endpoints: EndpointView,
    service: str = "web",
    namespace: str = "default",
    name: str | None = None,
    ports: Sequence[SlicePortView] | None = None,
    address_type: str = "IPv4",
) -> EndpointSliceView:
    """An EndpointSlice of a Service, target port 8080 named ``http`` unless told otherwise."""
    return EndpointSliceView(
        ref=ObjectRef(namespace, name or f"{service}-{address_type.lower()}"),
        service_name=service,
        address_type=address_type,
        ports=tuple(ports) if ports is not None else (SlicePortView("http", Protocol.TCP, 8080),),
        endpoints=tuple(endpoints),
    )
