"""Commands on the live kernel: ``apply`` (one-shot reconcile), ``show``, ``affinity`` and ``cleanup``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum
from typing import Annotated

import typer

from ipvsctl.affinity import (
    choices_json,
    choices_text,
    cluster_choices,
    find_pins,
    parse_pin_filter,
    pins_json,
    pins_text,
)
from ipvsctl.backend.base import IpvsTimeouts, KernelState, OperationFailure, change_timeouts
from ipvsctl.backend.sysctl import STARTUP_SYSCTLS, apply_sysctls, moves_keep_connections, startup_settings
from ipvsctl.cli.app import EXIT_ERROR, app, fail
from ipvsctl.cli.backends import open_backend, open_netfilter, read_netfilter
from ipvsctl.cli.common import (
    DEFAULT_INTERFACE,
    DEFAULT_MAX_INPUT_SIZE,
    AffinityScopeOpt,
    ClusterCidrOpt,
    Desired,
    ExternalCidrOpt,
    InterfaceOpt,
    IpvsTcpFinTimeoutOpt,
    IpvsTcpTimeoutOpt,
    IpvsUdpTimeoutOpt,
    KubeconfigOpt,
    LoadBalancerCidrOpt,
    ManifestsOpt,
    MasqueradeBitOpt,
    MaxInputSizeOpt,
    NetmaskV4Opt,
    NetmaskV6Opt,
    NodeIpOpt,
    NodeOpt,
    NodePortAddressesOpt,
    NodePortRangeOpt,
    NoNetfilterOpt,
    OptionalManifestsOpt,
    OptionalNodeOpt,
    OwnedCidrOpt,
    SchedulerOpt,
    StrictArpOpt,
    check_inputs,
    desired_and_ownership,
    load_desired,
    max_input_bytes,
    naming,
    netfilter_plan,
    ownership_from_flags,
    refusal_problems,
)
from ipvsctl.cli.traffic import read_with_traffic, stats_seconds
from ipvsctl.conntable import parse_connections
from ipvsctl.errors import InputError, IpvsctlError, UsageError
from ipvsctl.inputs import read_input
from ipvsctl.model import DeleteVirtualService, Operation
from ipvsctl.netfilter.ruleset import FAMILY, TABLE
from ipvsctl.options import (
    MASQUERADE_BIT_DEFAULT,
    POLICY_DEFAULTS,
    IpvsTimeoutFlags,
    NetfilterFlags,
    PolicyFlags,
    parse_node_ips,
    parse_port_range,
)
from ipvsctl.plan import Ownership
from ipvsctl.reconcile import Netfilter, SyncResult, sync
from ipvsctl.report import PlanContext, Problem, plan_json, plan_text
from ipvsctl.show import show_json, show_text
from ipvsctl.translate import Policy

__all__ = ["affinity", "apply", "cleanup", "show"]

TARGET = f"{FAMILY} {TABLE}"


class Format(StrEnum):
    """Output formats of the kernel commands."""

    TEXT = "text"
    JSON = "json"


OutputOpt = Annotated[Format, typer.Option("--output", "-o", help="Output format.")]
NoSysctlOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--no-sysctl",
        metavar="NAME",
        help="Do not set this start-up sysctl (repeatable): " + ", ".join(STARTUP_SYSCTLS),
    ),
]


@app.command()
def apply(
    *,
    manifests: ManifestsOpt = None,
    kubeconfig: KubeconfigOpt = None,
    node: NodeOpt,
    node_ip: NodeIpOpt = None,
    owned_cidr: OwnedCidrOpt = None,
    output: OutputOpt = Format.TEXT,
    scheduler: SchedulerOpt = POLICY_DEFAULTS.scheduler,
    netmask_v4: NetmaskV4Opt = POLICY_DEFAULTS.netmask_v4,
    netmask_v6: NetmaskV6Opt = POLICY_DEFAULTS.netmask_v6,
    affinity_scope: AffinityScopeOpt = POLICY_DEFAULTS.affinity_scope,
    node_port_range: NodePortRangeOpt = POLICY_DEFAULTS.node_port_range,
    external_ip_cidr: ExternalCidrOpt = None,
    load_balancer_ip_cidr: LoadBalancerCidrOpt = None,
    nodeport_addresses: NodePortAddressesOpt = None,
    interface: InterfaceOpt = DEFAULT_INTERFACE,
    no_sysctl: NoSysctlOpt = None,
    strict_arp: StrictArpOpt = False,
    ipvs_tcp_timeout: IpvsTcpTimeoutOpt = 0,
    ipvs_tcpfin_timeout: IpvsTcpFinTimeoutOpt = 0,
    ipvs_udp_timeout: IpvsUdpTimeoutOpt = 0,
    no_netfilter: NoNetfilterOpt = False,
    cluster_cidr: ClusterCidrOpt = None,
    masquerade_bit: MasqueradeBitOpt = MASQUERADE_BIT_DEFAULT,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE,
) -> None:
    """Reconcile this node's IPVS table and nftables table with the manifests once, and print what was done."""
    try:
        max_bytes = max_input_bytes(max_input_size)
        check_inputs([("--manifests", path) for path in manifests or []], max_bytes=max_bytes)
        policy = PolicyFlags(
            scheduler=scheduler,
            netmask_v4=netmask_v4,
            netmask_v6=netmask_v6,
            affinity_scope=affinity_scope,
            node_port_range=node_port_range,
            external_ip_cidrs=external_ip_cidr or [],
            load_balancer_ip_cidrs=load_balancer_ip_cidr or [],
            node_port_addresses=nodeport_addresses or [],
        ).policy()
        flags = IpvsTimeoutFlags(tcp=ipvs_tcp_timeout, tcp_fin=ipvs_tcpfin_timeout, udp=ipvs_udp_timeout).checked()
        timeouts = IpvsTimeouts(tcp=flags.tcp, tcp_fin=flags.tcp_fin, udp=flags.udp)
        desired, ownership = desired_and_ownership(
            manifests=manifests,
            kubeconfig=kubeconfig,
            node=node,
            node_ips=node_ip or [],
            owned_cidrs=owned_cidr or [],
            policy=policy,
            max_bytes=max_bytes,
        )
        sysctls = startup_settings(no_sysctl or [], strict_arp=strict_arp)
        netfilter = NetfilterFlags(
            enabled=not no_netfilter, cluster_cidrs=cluster_cidr or [], masquerade_bit=masquerade_bit
        ).checked()
        result = asyncio.run(
            _apply(
                desired,
                ownership=ownership,
                interface=interface,
                sysctls=sysctls,
                netfilter=netfilter,
                timeouts=timeouts,
            )
        )
    except IpvsctlError as error:
        fail(error)
    _print_applied(result, desired=desired, node=node, output=output)
    if result.failures or result.refused or desired.problems:
        raise typer.Exit(EXIT_ERROR)


async def _apply(
    desired: Desired,
    *,
    ownership: Ownership,
    interface: str,
    sysctls: Mapping[str, str],
    netfilter: NetfilterFlags,
    timeouts: IpvsTimeouts,
) -> SyncResult:
    # Both checked before anything changes: a refused interface, or no nft, leaves the node as it was.
    async with open_backend(interface=interface) as backend, open_netfilter(netfilter) as table:
        apply_sysctls(settings=sysctls)
        await change_timeouts(backend, timeouts)
        return await sync(
            backend,
            desired.translation.table,
            ownership=ownership,
            bind=desired.vip_addresses,
            netfilter=None if table is None else Netfilter(table, netfilter_plan(desired, netfilter)),
            cluster_moves=moves_keep_connections(),
        )


def _print_applied(result: SyncResult, *, desired: Desired, node: str, output: Format) -> None:
    translation = desired.translation
    failures = [Problem(str(f.operation.key), type(f.operation).__name__, f.message) for f in result.failures]
    refusals = refusal_problems(result.refused, translation)
    context = PlanContext(
        node=node, owners=translation.owners, pods=translation.pods, errors=[*desired.problems, *refusals, *failures]
    )
    filtering = result.netfilter
    if output is Format.JSON:
        document = plan_json(result.operations, context)
        document["schema"] = "ipvsctl.apply/v1"
        document["attempts"] = result.attempts
        document["netfilter"] = (
            None
            if filtering is None
            else {
                "added": filtering.added,
                "deleted": filtering.deleted,
                "rewritten": filtering.rewritten,
            }
        )
        typer.echo(json.dumps(document, indent=2))
        return
    text = plan_text(result.operations, context).replace("changes pending", "changes applied")
    typer.echo(text, nl=False)
    if filtering is not None:
        written = ", table written whole" if filtering.rewritten else ""
        typer.echo(f"nftables {TARGET}: {filtering.added} elements added, {filtering.deleted} deleted{written}")
    for problem in context.errors:
        typer.echo(f"error: {problem}", err=True)


@app.command()
def show(
    *,
    manifests: OptionalManifestsOpt = None,
    kubeconfig: KubeconfigOpt = None,
    node: OptionalNodeOpt = None,
    node_ip: NodeIpOpt = None,
    owned_cidr: OwnedCidrOpt = None,
    node_port_range: NodePortRangeOpt = POLICY_DEFAULTS.node_port_range,
    interface: InterfaceOpt = DEFAULT_INTERFACE,
    no_netfilter: NoNetfilterOpt = False,
    output: OutputOpt = Format.TEXT,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE,
    stats: Annotated[
        bool,
        typer.Option("--stats", help="Also IPVS's counters per Service and Pod, with rates between two stats dumps."),
    ] = False,
    stats_interval: Annotated[
        float,
        typer.Option("--stats-interval", metavar="SECONDS", help="Time between the two stats dumps of --stats."),
    ] = 1.0,
) -> None:
    """The agent's part of the kernel: VIPs, real servers, connections, draining servers, and what its nftables
    table does to each VIP."""
    try:
        max_bytes = max_input_bytes(max_input_size)
        check_inputs([("--manifests", path) for path in manifests or []], max_bytes=max_bytes)
        desired = _optional_desired(
            manifests=manifests, kubeconfig=kubeconfig, node=node, node_ip=node_ip or [], max_bytes=max_bytes
        )
        node_ips = desired.node.addresses if desired else parse_node_ips(node_ip or [])
        ownership = ownership_from_flags(
            node_ips=node_ips, owned_cidrs=owned_cidr or [], node_port_range=parse_port_range(node_port_range)
        )
        interval = stats_seconds(stats_interval) if stats else None
        state, traffic = asyncio.run(read_with_traffic(interface=interface, interval=interval))
        filtering = asyncio.run(read_netfilter(NetfilterFlags(enabled=not no_netfilter)))
    except IpvsctlError as error:
        fail(error)
    owned = ownership.with_addresses(state.bound_addresses)
    owners, pods = naming(desired)
    if output is Format.JSON:
        document = show_json(state, owned=owned.owns, owners=owners, pods=pods, netfilter=filtering, traffic=traffic)
        typer.echo(json.dumps(document, indent=2))
    else:
        text = show_text(state, owned=owned.owns, owners=owners, pods=pods, netfilter=filtering, traffic=traffic)
        typer.echo(text, nl=False)


def _optional_desired(
    *, manifests: list[str] | None, kubeconfig: str | None, node: str | None, node_ip: list[str], max_bytes: int
) -> Desired | None:
    if not manifests and kubeconfig is None:
        return None
    if node is None:
        raise UsageError(
            "is required with --manifests or --kubeconfig (names come from this node's view)", flag="--node"
        )
    # Only names are wanted here: every externalIP and ingress IP may name a VIP.
    return load_desired(
        manifests=manifests, kubeconfig=kubeconfig, node=node, node_ips=node_ip, policy=Policy(), max_bytes=max_bytes
    )


async def _read(*, interface: str) -> KernelState:
    async with open_backend(interface=interface) as backend:
        return await backend.read()


@app.command()
def affinity(
    *,
    client: Annotated[str | None, typer.Option("--client", metavar="IP", help="Where is this client pinned?")] = None,
    vip: Annotated[str | None, typer.Option("--vip", metavar="IP:PORT", help="Only this virtual service.")] = None,
    service: Annotated[
        str | None,
        typer.Option("--service", metavar="NS/NAME", help="Only this Service (needs --manifests or --kubeconfig)."),
    ] = None,
    manifests: OptionalManifestsOpt = None,
    kubeconfig: KubeconfigOpt = None,
    node: OptionalNodeOpt = None,
    node_ip: NodeIpOpt = None,
    conn_file: Annotated[
        str, typer.Option("--conn-file", metavar="FILE", help="The kernel's connection table (- for stdin).")
    ] = "/proc/net/ip_vs_conn",
    interface: InterfaceOpt = DEFAULT_INTERFACE,
    output: OutputOpt = Format.TEXT,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE,
) -> None:
    """The persistence table: which client network is pinned to which real server, and for how long."""
    try:
        where = parse_pin_filter(client=client, vip=vip, service=service)
        if service is not None and not manifests and kubeconfig is None:
            raise UsageError("needs --manifests or --kubeconfig to know the Service's VIPs", flag="--service")
        max_bytes = max_input_bytes(max_input_size)
        given = [("--manifests", path) for path in manifests or []]
        check_inputs([*given, ("--conn-file", conn_file)], max_bytes=max_bytes)
        desired = _optional_desired(
            manifests=manifests, kubeconfig=kubeconfig, node=node, node_ip=node_ip or [], max_bytes=max_bytes
        )
        try:
            text = read_input(conn_file, max_bytes=max_bytes, stdin=sys.stdin.buffer)
        except InputError as error:
            raise UsageError(f"cannot read {error.source}: {error.message}", flag="--conn-file") from None
        # parse_connections names the line of a byte that is not UTF-8
        connections = parse_connections(text, source=conn_file)
        state = asyncio.run(_read(interface=interface))
    except IpvsctlError as error:
        fail(error)
    owners, pods = naming(desired)
    pins = find_pins(connections, table=state.table, owners=owners, pods=pods, where=where)
    choices = (
        []
        if where.client is None
        else cluster_choices(state.table, client=where.client, owners=owners, pods=pods, where=where)
    )
    if output is Format.JSON:
        document = pins_json(pins)
        if where.client is not None:
            document["clusterChoices"] = choices_json(choices)
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(pins_text(pins) + choices_text(choices), nl=False)


@app.command()
def cleanup(
    *,
    node_ip: NodeIpOpt = None,
    node: OptionalNodeOpt = None,
    manifests: OptionalManifestsOpt = None,
    kubeconfig: KubeconfigOpt = None,
    node_port_range: NodePortRangeOpt = POLICY_DEFAULTS.node_port_range,
    owned_cidr: OwnedCidrOpt = None,
    interface: InterfaceOpt = DEFAULT_INTERFACE,
    no_netfilter: NoNetfilterOpt = False,
    output: OutputOpt = Format.TEXT,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE,
) -> None:
    """Remove what the agent owns (services on its interface's VIPs and node ports, the interface, and its nftables
    table ``inet ipvsctl``; never any other table).

    Node IPs (for NodePort entries) come from --node-ip, or from the Node object named by --node in
    --manifests or the cluster (--kubeconfig); without any of them, from this host's interfaces (every
    global address but the agent's interface's).
    """
    try:
        max_bytes = max_input_bytes(max_input_size)
        check_inputs([("--manifests", path) for path in manifests or []], max_bytes=max_bytes)
        desired = _optional_desired(
            manifests=manifests, kubeconfig=kubeconfig, node=node, node_ip=node_ip or [], max_bytes=max_bytes
        )
        node_ips = desired.node.addresses if desired else parse_node_ips(node_ip or [])
        ownership = ownership_from_flags(
            node_ips=node_ips, owned_cidrs=owned_cidr or [], node_port_range=parse_port_range(node_port_range)
        )
        netfilter = NetfilterFlags(enabled=not no_netfilter)
        operations, failures, removed, table_removed = asyncio.run(
            _cleanup(ownership=ownership, interface=interface, netfilter=netfilter, host_node_ports=not node_ips)
        )
    except IpvsctlError as error:
        fail(error)
    context = PlanContext(node="(this node)", errors=[Problem(str(f.operation.key), "", f.message) for f in failures])
    if output is Format.JSON:
        document = plan_json(operations, context)
        document["interface"] = {"name": interface, "deleted": removed}
        document["netfilter"] = None if table_removed is None else {"table": TARGET, "deleted": table_removed}
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(plan_text(operations, context).replace("changes pending", "changes applied"), nl=False)
        typer.echo(f"interface {interface}: {'deleted' if removed else 'absent, nothing to delete'}")
        if table_removed is not None:
            typer.echo(f"nftables {TARGET}: {'deleted' if table_removed else 'absent, nothing to delete'}")
    if failures:
        raise typer.Exit(EXIT_ERROR)


async def _cleanup(
    *, ownership: Ownership, interface: str, netfilter: NetfilterFlags, host_node_ports: bool
) -> tuple[list[Operation], list[OperationFailure], bool, bool | None]:
    """Delete what the agent owns, then its interface (only a dummy: open_backend refused any other kind), then
    its nftables table; whether the interface and the table (None: not asked) were there.

    With ``host_node_ports`` (no node IP given), NodePorts are those on this host's own addresses."""
    async with open_backend(interface=interface) as backend:
        state = await backend.read()
        owned = ownership.with_addresses(state.bound_addresses)
        if host_node_ports:
            owned = replace(owned, node_addresses=owned.node_addresses | await backend.host_addresses())
        operations: list[Operation] = [
            DeleteVirtualService(service.settings()) for service in state.table if owned.owns(service.key)
        ]
        report = await backend.apply(operations)
        removed = await backend.remove_interface()
    table_removed = None
    if netfilter.enabled:
        async with open_netfilter(netfilter) as table:
            table_removed = None if table is None else await table.remove()
    return operations, list(report.failures), removed, table_removed
