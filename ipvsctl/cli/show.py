"""``ipvsctl show``: the live IPVS table with Kubernetes names, owners, traffic and the nftables half."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ipvsctl.cli.app import app, fail
from ipvsctl.cli.backends import read_netfilter
from ipvsctl.cli.common import (
    DEFAULT_INTERFACE,
    DEFAULT_MAX_INPUT_SIZE,
    InterfaceOpt,
    KubeconfigOpt,
    MaxInputSizeOpt,
    NodeIpOpt,
    NodePortRangeOpt,
    NoNetfilterOpt,
    OptionalManifestsOpt,
    OptionalNodeOpt,
    OwnedCidrOpt,
    check_inputs,
    max_input_bytes,
    naming,
    ownership_from_flags,
    run_async,
)
from ipvsctl.cli.live import Format, OutputOpt, optional_desired
from ipvsctl.cli.traffic import read_with_traffic, stats_seconds
from ipvsctl.errors import IpvsctlError
from ipvsctl.options import (
    POLICY_DEFAULTS,
    NetfilterFlags,
    parse_node_ips,
    parse_port_range,
)
from ipvsctl.show import show_json, show_text

__all__ = ["show"]


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
        desired = optional_desired(
            manifests=manifests, kubeconfig=kubeconfig, node=node, node_ip=node_ip or [], max_bytes=max_bytes
        )
        node_ips = desired.node.addresses if desired else parse_node_ips(node_ip or [])
        ownership = ownership_from_flags(
            node_ips=node_ips, owned_cidrs=owned_cidr or [], node_port_range=parse_port_range(node_port_range)
        )
        interval = stats_seconds(stats_interval) if stats else None
        state, traffic = run_async(read_with_traffic(interface=interface, interval=interval))
        filtering = run_async(read_netfilter(NetfilterFlags(enabled=not no_netfilter)))
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
