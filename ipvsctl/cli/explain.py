"""``ipvsctl explain``: what this node does with one client's traffic to one VIP:port, and why.

Reads the live kernel (IPVS table and counts, ``/proc/net/ip_vs_conn``, the nftables table), or offline a
saved table (``--current-save``), a saved connection table (``--conn-file``) and nftables listing
(``--current-nftables``); the cluster from ``--manifests`` or ``--kubeconfig``. Exit codes: 0 a virtual
service matches, 1 none matches, 2 error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated

import typer

from ipvsctl.backend.base import KernelState
from ipvsctl.claims import presumed_held
from ipvsctl.cli.app import EXIT_CHANGES, EXIT_IN_SYNC, app, fail
from ipvsctl.cli.backends import open_backend, read_netfilter
from ipvsctl.cli.common import (
    DEFAULT_INTERFACE,
    DEFAULT_MAX_INPUT_SIZE,
    AffinityScopeOpt,
    ClusterCidrOpt,
    Desired,
    ExternalCidrOpt,
    InterfaceOpt,
    KubeconfigOpt,
    LoadBalancerCidrOpt,
    ManifestsOpt,
    MaxInputSizeOpt,
    NetmaskV4Opt,
    NetmaskV6Opt,
    NodeIpOpt,
    NodeOpt,
    NodePortAddressesOpt,
    NodePortRangeOpt,
    NoNetfilterOpt,
    OwnedCidrOpt,
    SchedulerOpt,
    check_inputs,
    load_objects,
    max_input_bytes,
    netfilter_plan,
    node_context,
    ownership_from_flags,
    run_async,
)
from ipvsctl.cli.saved import read_nftables, read_save
from ipvsctl.conntable import Connection, parse_connections
from ipvsctl.errors import InputError, IpvsctlError, UsageError
from ipvsctl.explain import ClusterInput, KernelInput, NetfilterInput, explain, explanation_json, explanation_text
from ipvsctl.inputs import read_input
from ipvsctl.model import Protocol, ServiceKey, canonical_ip
from ipvsctl.options import POLICY_DEFAULTS, NetfilterFlags, PolicyFlags, parse_node_ips, parse_port
from ipvsctl.translate import group_slices, translate

__all__ = ["explain_command", "parse_target"]

EXIT_FOUND, EXIT_NO_MATCH = EXIT_IN_SYNC, EXIT_CHANGES  # 0 and 1, as every command's exit codes
LIVE_CONN_FILE = "/proc/net/ip_vs_conn"


class ExplainFormat(StrEnum):
    """Output formats of ``explain``."""

    TEXT = "text"
    JSON = "json"


class ProtocolChoice(StrEnum):
    """``--proto`` values."""

    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"


def parse_target(text: str, *, protocol: Protocol) -> ServiceKey:
    """``--to VIP:PORT`` (IPv6 as ``[VIP]:PORT``) → the virtual service key asked about."""
    host, port_text = "", ""
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if bracket and rest.startswith(":"):
            host, port_text = inside, rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    if not host:
        raise UsageError(f"{text!r} is not VIP:PORT or [IPv6]:PORT", flag="--to")
    try:
        address = canonical_ip(host)
    except ValueError:
        raise UsageError(f"{host!r} is not an IP address", flag="--to") from None
    return ServiceKey(protocol, address, parse_port(port_text, flag="--to"))


def _parse_client(text: str, *, target: ServiceKey) -> str:
    try:
        client = canonical_ip(text)
    except ValueError:
        raise UsageError(f"{text!r} is not an IP address", flag="--client") from None
    if (":" in client) != (target.family == 6):
        raise UsageError(f"{client} is not of the family of {target.address} (IPVS never mixes them)", flag="--client")
    return client


@app.command(name="explain")
def explain_command(
    *,
    client: Annotated[str, typer.Option("--client", metavar="IP", help="The client's address.")],
    to: Annotated[str, typer.Option("--to", metavar="VIP:PORT", help="Where it connects ([IPv6]:PORT).")],
    proto: Annotated[ProtocolChoice, typer.Option("--proto", help="Its protocol.")] = ProtocolChoice.TCP,
    manifests: ManifestsOpt = None,
    kubeconfig: KubeconfigOpt = None,
    node: NodeOpt,
    node_ip: NodeIpOpt = None,
    current_save: Annotated[
        str | None,
        typer.Option(
            "--current-save",
            metavar="FILE",
            help="The node's table as `ipvsadm -Sn` output (file, or - for stdin); default: the live kernel.",
        ),
    ] = None,
    bound_address: Annotated[
        list[str] | None,
        typer.Option(
            "--bound-address",
            metavar="IP",
            help="With --current-save: an address on the agent's interface (repeatable), as for diff.",
        ),
    ] = None,
    conn_file: Annotated[
        str | None,
        typer.Option(
            "--conn-file",
            metavar="FILE",
            help=f"The connection table (`cat {LIVE_CONN_FILE}`; - for stdin); default: {LIVE_CONN_FILE} live, "
            "none with --current-save (pins then unknown).",
        ),
    ] = None,
    current_nftables: Annotated[
        str | None,
        typer.Option(
            "--current-nftables",
            metavar="FILE",
            help="With --current-save: `nft -j list table inet ipvsctl`; without it the table the agent "
            "would write is used.",
        ),
    ] = None,
    owned_cidr: OwnedCidrOpt = None,
    output: Annotated[ExplainFormat, typer.Option("--output", "-o", help="Output format.")] = ExplainFormat.TEXT,
    scheduler: SchedulerOpt = POLICY_DEFAULTS.scheduler,
    netmask_v4: NetmaskV4Opt = POLICY_DEFAULTS.netmask_v4,
    netmask_v6: NetmaskV6Opt = POLICY_DEFAULTS.netmask_v6,
    node_port_range: NodePortRangeOpt = POLICY_DEFAULTS.node_port_range,
    external_ip_cidr: ExternalCidrOpt = None,
    load_balancer_ip_cidr: LoadBalancerCidrOpt = None,
    nodeport_addresses: NodePortAddressesOpt = None,
    affinity_scope: AffinityScopeOpt = POLICY_DEFAULTS.affinity_scope,
    interface: InterfaceOpt = DEFAULT_INTERFACE,
    no_netfilter: NoNetfilterOpt = False,
    cluster_cidr: ClusterCidrOpt = None,
    max_input_size: MaxInputSizeOpt = DEFAULT_MAX_INPUT_SIZE,
) -> None:
    """Explain what this node does with CLIENT's traffic to VIP:PORT: the virtual service and its Service, every
    real server and left-out endpoint, the pin or the scheduler, and nftables. Exit 0 a virtual service
    matches, 1 none, 2 error."""
    try:
        target = parse_target(to, protocol=Protocol(proto.value))
        address = _parse_client(client, target=target)
        max_bytes = max_input_bytes(max_input_size)
        if not manifests and kubeconfig is None:  # said before a missing /proc/net/ip_vs_conn is
            raise UsageError("is required (or --kubeconfig to read the cluster)", flag="--manifests")
        if current_save is None and bound_address:
            raise UsageError("only with --current-save: the live interface says what it holds", flag="--bound-address")
        if current_save is None and current_nftables is not None:
            raise UsageError("only with --current-save: the live table is read", flag="--current-nftables")
        conn_path = LIVE_CONN_FILE if current_save is None and conn_file is None else conn_file
        given = [("--manifests", path) for path in manifests or []]
        given += [(flag, path) for flag, path in _files(current_save, conn_path, current_nftables) if path]
        check_inputs(given, max_bytes=max_bytes)
        netfilter = NetfilterFlags(enabled=not no_netfilter, cluster_cidrs=cluster_cidr or []).checked()
        policy = PolicyFlags(
            scheduler=scheduler,
            netmask_v4=netmask_v4,
            netmask_v6=netmask_v6,
            node_port_range=node_port_range,
            external_ip_cidrs=external_ip_cidr or [],
            load_balancer_ip_cidrs=load_balancer_ip_cidr or [],
            node_port_addresses=nodeport_addresses or [],
            affinity_scope=affinity_scope,
        ).policy()
        loaded = load_objects(manifests=manifests, kubeconfig=kubeconfig, node=node, max_bytes=max_bytes)
        context = node_context(loaded, node=node, node_ips=node_ip or [])
        translation = translate(loaded.services, loaded.slices, node=context, policy=policy)
        cluster = ClusterInput(
            node=context,
            translation=translation,
            services={view.ref: view for view in loaded.services},
            slices=group_slices(loaded.slices),
        )
        ownership = ownership_from_flags(
            node_ips=context.addresses, owned_cidrs=owned_cidr or [], node_port_range=policy.node_port_range
        )
        connections = None if conn_path is None else _read_connections(conn_path, max_bytes=max_bytes)
        desired = Desired(node=context, translation=translation, problems=())
        if current_save is None:
            state = run_async(_read_kernel(interface=interface))
            owned = ownership.with_addresses(state.bound_addresses)
            kernel = KernelInput(state.table, owned.owns, counts=state.connections, connections=connections)
            found = run_async(read_netfilter(netfilter))
            filtering = (
                None
                if found is None
                else NetfilterInput("kernel", found.elements, found.present, tuple(netfilter.cluster_cidrs))
            )
        else:
            table = read_save(current_save, max_bytes=max_bytes)
            held = (
                parse_node_ips(bound_address, flag="--bound-address")
                if bound_address
                else presumed_held(table.services, translation.table.services)
            )
            owned = ownership.with_addresses(held)
            kernel = KernelInput(table, owned.owns, counts=None, connections=connections)
            filtering = _offline_netfilter(current_nftables, desired, netfilter, max_bytes=max_bytes)
    except IpvsctlError as error:
        fail(error)
    answer = explain(client=address, target=target, kernel=kernel, cluster=cluster, netfilter=filtering)
    if output is ExplainFormat.JSON:
        typer.echo(json.dumps(explanation_json(answer), indent=2))
    else:
        typer.echo(explanation_text(answer), nl=False)
    raise typer.Exit(EXIT_FOUND if answer.found else EXIT_NO_MATCH)


def _files(current_save: str | None, conn_file: str | None, nftables: str | None) -> list[tuple[str, str | None]]:
    return [("--current-save", current_save), ("--conn-file", conn_file), ("--current-nftables", nftables)]


def _read_connections(path: str, *, max_bytes: int) -> Sequence[Connection]:
    try:
        data = read_input(path, max_bytes=max_bytes, stdin=sys.stdin.buffer)
    except InputError as error:
        raise UsageError(f"cannot read {error.source}: {error.message}", flag="--conn-file") from None
    # parse_connections names the line of a byte that is not UTF-8
    return parse_connections(data, source="<stdin>" if path == "-" else path)


def _offline_netfilter(
    path: str | None, desired: Desired, flags: NetfilterFlags, *, max_bytes: int
) -> NetfilterInput | None:
    if not flags.enabled:
        return None
    cidrs = tuple(flags.cluster_cidrs)
    if path is not None:
        elements = read_nftables(path, max_bytes=max_bytes)
        return NetfilterInput("file", elements.current, elements.present, cidrs)
    wanted = netfilter_plan(desired, flags)
    wanted.refresh(None)
    return NetfilterInput("desired", frozenset(wanted.elements()), None, cidrs)


async def _read_kernel(*, interface: str) -> KernelState:
    async with open_backend(interface=interface) as backend:
        return await backend.read()
