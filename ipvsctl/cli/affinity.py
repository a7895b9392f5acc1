"""``ipvsctl affinity``: where clients are pinned on this node, and the cluster-wide choice."""

from __future__ import annotations

import json
import sys
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
from ipvsctl.cli.app import app, fail
from ipvsctl.cli.common import (
    DEFAULT_INTERFACE,
    DEFAULT_MAX_INPUT_SIZE,
    InterfaceOpt,
    KubeconfigOpt,
    MaxInputSizeOpt,
    NodeIpOpt,
    OptionalManifestsOpt,
    OptionalNodeOpt,
    check_inputs,
    max_input_bytes,
    naming,
    run_async,
)
from ipvsctl.cli.live import Format, OutputOpt, optional_desired, read_kernel
from ipvsctl.conntable import parse_connections
from ipvsctl.errors import InputError, IpvsctlError, UsageError
from ipvsctl.inputs import read_input

__all__ = ["affinity"]


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
        desired = optional_desired(
            manifests=manifests, kubeconfig=kubeconfig, node=node, node_ip=node_ip or [], max_bytes=max_bytes
        )
        try:
            text = read_input(conn_file, max_bytes=max_bytes, stdin=sys.stdin.buffer)
        except InputError as error:
            raise UsageError(f"cannot read {error.source}: {error.message}", flag="--conn-file") from None
        # parse_connections names the line of a byte that is not UTF-8
        connections = parse_connections(text, source=conn_file)
        state = run_async(read_kernel(interface=interface))
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
