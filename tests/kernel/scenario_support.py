"""Scenario helpers for kernel tests that drive the real `ipvsctl` CLI: manifests, the CLI, ipvsadm, clients, servers.

Manifests are Kubernetes objects as plain JSON (one `List` document per file). The CLI runs in the node's
namespace through `ip netns exec` (a fresh interpreter each time: about 8-9 s under emulation, so tests share
applies where they can). `ipvsadm -Sn` and `ipvsadm -Lnc` are the oracles. The keep-alive server answers HTTP/1.1
on one connection many times and can hold a request until the test opens its gate (an in-flight request that
outlives any number of CLI runs, without guessing a sleep).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.netlab import CommandError, Netns, Reply, start_serving, stop_serving

IPVSCTL = str(Path(sys.prefix) / "bin" / "ipvsctl")  # the venv running pytest holds the CLI
INTERFACE = "ipvsctl0"  # not the topology's ipvs0, which already holds its own VIPs
NODE_NAME = "node-a"
OTHER_NODE = "node-b"
NODE_IP = "192.0.2.1"  # the node's side of the client link: an address of the node namespace
NODE_IP6 = "2001:db8:c::1"
HOLD_LIMIT = 60.0  # a held request is answered after this long even if the test never opens the gate
SESSION_TIMEOUT = 60.0  # idle keep-alive connections close after this long, on both ends
MAX_HEADER_LINES = 100

Manifest = dict[str, Any]  # a Kubernetes object as JSON
Json = dict[str, Any]


def require_ipvs() -> None:
    """Skip where the kernel has no IPVS or we are not root (for fixtures set up before the autouse check)."""
    if not Path("/proc/net/ip_vs").exists():
        pytest.skip("needs real IPVS (no /proc/net/ip_vs): run inside the kernel lab")
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces: run inside the kernel lab")


# --- manifests ------------------------------------------------------------------------------------


def node(name: str, *addresses: str) -> Manifest:
    """A Node with InternalIP addresses."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": address} for address in addresses]},
    }


def service(
    name: str,
    *,
    cluster_ips: Sequence[str],
    port: int = 80,
    protocol: str = "TCP",
    port_name: str = "http",
    node_port: int | None = None,
    affinity_timeout: int | None = None,
    annotations: Mapping[str, str] | None = None,
    external_traffic_policy: str | None = None,
) -> Manifest:
    """A Service with one port; `affinity_timeout` makes it ClientIP-affine, `node_port` a NodePort Service."""
    service_port: dict[str, Any] = {"name": port_name, "port": port, "protocol": protocol}
    spec: dict[str, Any] = {
        "type": "ClusterIP" if node_port is None else "NodePort",
        "clusterIP": cluster_ips[0],
        "clusterIPs": list(cluster_ips),
        "ports": [service_port],
    }
    if node_port is not None:
        service_port["nodePort"] = node_port
    if affinity_timeout is not None:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity_timeout}}
    if external_traffic_policy is not None:
        spec["externalTrafficPolicy"] = external_traffic_policy
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": dict(annotations or {})},
        "spec": spec,
    }


def endpoint_slice(
    service_name: str,
    *,
    endpoints: Mapping[str, str],
    target_port: int,
    protocol: str = "TCP",
    port_name: str = "http",
    address_type: str = "IPv4",
) -> Manifest:
    """A discovery.k8s.io/v1 EndpointSlice of a Service; `endpoints` maps each (ready) address to its node."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-{address_type.lower()}",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": address_type,
        "ports": [{"name": port_name, "port": target_port, "protocol": protocol}],
        "endpoints": [
            {"addresses": [address], "conditions": {"ready": True}, "nodeName": node_name}
            for address, node_name in endpoints.items()
        ],
    }


def object_key(manifest: Manifest) -> str:
    """`Kind/name`: how a scenario names the objects it replaces."""
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


# --- the CLI --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Agent:
    """`ipvsctl` on one node: its namespace, its manifests file (rewritten on every change) and its name."""

    netns: Netns
    manifests: Path
    objects: dict[str, Manifest]
    node_name: str = NODE_NAME
    interface: str = INTERFACE

    @classmethod
    def create(cls, netns: Netns, manifests: Path, objects: Sequence[Manifest]) -> Agent:
        """An agent whose manifests file holds `objects`."""
        agent = cls(netns, manifests, {})
        agent.replace(*objects)
        return agent

    def replace(self, *objects: Manifest) -> None:
        """Add or replace objects (by kind and name) and rewrite the manifests file."""
        for manifest in objects:
            self.objects[object_key(manifest)] = manifest
        document = {"apiVersion": "v1", "kind": "List", "items": list(self.objects.values())}
        self.manifests.write_text(json.dumps(document, indent=1))

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `ipvsctl ARGS...` in the node's namespace."""
        return self.netns.run(IPVSCTL, *args, check=check)

    def _scope(self) -> tuple[str, ...]:
        return ("-f", str(self.manifests), "--node", self.node_name, "--interface", self.interface)

    def apply(self, *args: str) -> Json:
        """`ipvsctl apply ARGS... -o json`; its plan document (CommandError when it exits non-zero)."""
        return _json(self.run("apply", *self._scope(), *args, "-o", "json"))

    def diff(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`ipvsctl diff ARGS...` against the live kernel; any exit code."""
        return self.run("diff", *self._scope(), *args, check=False)

    def show(self) -> Json:
        """`ipvsctl show -o json`, named by the manifests."""
        return _json(self.run("show", *self._scope(), "-o", "json"))

    def affinity(self, *args: str) -> Json:
        """`ipvsctl affinity ARGS... -o json`, named by the manifests."""
        return _json(self.run("affinity", *args, *self._scope(), "-o", "json"))

    def cleanup(self, *args: str) -> Json:
        """`ipvsctl cleanup ARGS... -o json`."""
        return _json(self.run("cleanup", *args, "--interface", self.interface, "-o", "json"))


def _json(done: subprocess.CompletedProcess[str]) -> Json:
    document = json.loads(done.stdout)
    assert isinstance(document, dict), done.stdout
    return document


def give_node_addresses(netns: Netns) -> None:
    """Put the node IPs on a dummy `eth0` of a bare namespace, as a node's own addresses."""
    netns.ip(
        "-batch",
        "-",
        input=(
            "link add eth0 type dummy\n"
            f"addr add {NODE_IP}/24 dev eth0\n"
            f"addr add {NODE_IP6}/64 dev eth0 nodad\n"
            "link set eth0 up\n"
        ),
    )


# --- ipvsadm as the oracle ------------------------------------------------------------------------


def saved_rules(netns: Netns) -> list[str]:
    """`ipvsadm -Sn` as sorted lines: the table, independent of the kernel's hash order."""
    return sorted(line.strip() for line in netns.ipvsadm("-Sn").splitlines() if line.strip())


def service_rule(netns: Netns, endpoint: str) -> list[str]:
    """The `-A` rule of one virtual service (`-t VIP:PORT` style endpoint) as words; [] when absent."""
    for line in netns.ipvsadm("-Sn").splitlines():
        words = line.split()
        if words[:1] == ["-A"] and words[2:3] == [endpoint]:
            return words
    return []


@dataclass(frozen=True, slots=True)
class ConnEntry:
    """One line of `ipvsadm -Lnc`: a connection, or a persistence template (client port 0)."""

    protocol: str
    expires: int  # seconds
    state: str
    client: str
    client_port: int
    virtual: str
    virtual_port: int
    real: str
    real_port: int

    @property
    def is_template(self) -> bool:
        """Templates are the only entries with client port 0 in a Kubernetes table."""
        return self.client_port == 0

    @property
    def identity(self) -> tuple[str, str, int, str, int, str, int]:
        """What names the connection (everything but its timer and state)."""
        return (
            self.protocol,
            self.client,
            self.client_port,
            self.virtual,
            self.virtual_port,
            self.real,
            self.real_port,
        )


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _seconds(text: str) -> int:
    """`MM:SS` (minutes may exceed 59) as seconds."""
    total = 0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return total


def connection_entries(netns: Netns) -> list[ConnEntry]:
    """`ipvsadm -Lnc` parsed: `pro expire state source virtual destination` after two header lines."""
    entries = []
    for line in netns.ipvsadm("-Lnc").splitlines()[2:]:
        words = line.split()
        if len(words) != 6:
            raise CommandError(f"unexpected ipvsadm -Lnc line: {line!r}")
        protocol, expires, state, source, virtual, destination = words
        client, client_port = _host_port(source)
        vip, vport = _host_port(virtual)
        real, real_port = _host_port(destination)
        entries.append(ConnEntry(protocol, _seconds(expires), state, client, client_port, vip, vport, real, real_port))
    return entries


def wait_until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.5) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        if condition():
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return False


# --- clients --------------------------------------------------------------------------------------


def http_get_from(
    client: Netns, host: str, *, source: str, port: int = 80, count: int = 1, timeout: float = 5.0
) -> list[Reply]:
    """GET / from `host` `count` times from `client`, from the local address `source`, each on a new connection."""
    if not 1 <= count <= 1000:
        raise ValueError("count must be within 1..1000")
    replies = []
    with client.entered():
        for _ in range(count):
            connection = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0))
            try:
                connection.request("GET", "/", headers={"Connection": "close"})
                response = connection.getresponse()
                body = response.read().decode()
                if response.status != 200:
                    raise CommandError(f"GET {host}:{port} from {source} answered {response.status}: {body}")
                replies.append(Reply(server=body.strip(), client=response.getheader("X-Client-Address", "")))
            finally:
                connection.close()
    return replies


class HttpSession:
    """One TCP connection from a client namespace carrying many HTTP/1.1 requests (it never reconnects)."""

    def __init__(self, client: Netns, host: str, *, port: int = 80, timeout: float = SESSION_TIMEOUT) -> None:
        with client.entered():  # the socket stays in the client's namespace
            self._socket = socket.create_connection((host, port), timeout=timeout)
        self._reader = self._socket.makefile("rb")
        self._host = host

    @property
    def local_port(self) -> int:
        """The client port: how `ipvsadm -Lnc` names this connection."""
        port = self._socket.getsockname()[1]
        assert isinstance(port, int)
        return port

    def send(self, path: str = "/") -> None:
        """Send one GET without waiting for its answer."""
        self._socket.sendall(f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\n\r\n".encode())

    def receive(self) -> str:
        """Read one 200 answer and return its body (the server's identity)."""
        status = self._reader.readline().decode()
        if not status:
            raise CommandError(f"{self._host}: connection closed before an answer")
        length = 0
        for _ in range(MAX_HEADER_LINES):
            header = self._reader.readline().decode().strip()
            if not header:
                break
            name, _, value = header.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = self._reader.read(length).decode()
        if status.split()[1:2] != ["200"]:
            raise CommandError(f"{self._host} answered {status.strip()}: {body}")
        return body.strip()

    def ask(self, path: str = "/") -> str:
        """One request and its answer on this connection."""
        self.send(path)
        return self.receive()

    def abort(self) -> None:
        """Close with a RST: IPVS moves the entry to CLOSE (10 s) rather than TIME_WAIT (2 min)."""
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._reader.close()
        self._socket.close()


# --- servers --------------------------------------------------------------------------------------


class Gate:
    """Holds `/hold` requests until opened: a request in flight for as long as a test needs."""

    def __init__(self) -> None:
        self.entered = threading.Event()  # a request reached the gate
        self._open = threading.Event()

    def hold(self) -> None:
        """Wait (bounded) until the gate opens."""
        self.entered.set()
        self._open.wait(HOLD_LIMIT)

    def open(self) -> None:
        """Let held requests through, and later ones pass at once."""
        self._open.set()

    def close(self) -> None:
        """Make the next `/hold` wait again."""
        self.entered.clear()
        self._open.clear()


class _SessionServer(socketserver.ThreadingTCPServer):
    """Dual-stack threading TCP server (socketserver: http.server's would resolve its own name)."""

    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, identity: str, gate: Gate) -> None:
        self.identity = identity
        self.gate = gate
        super().__init__(("::", port), _SessionHandler)

    def server_bind(self) -> None:
        """Accept IPv4 too (as mapped addresses)."""
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet: clients that reset their connection on purpose are not errors."""


class _SessionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: many requests per connection
    timeout = SESSION_TIMEOUT

    def do_GET(self) -> None:
        """Answer with the server's identity, after the gate for `/hold`."""
        assert isinstance(self.server, _SessionServer)
        if self.path == "/hold":
            self.server.gate.hold()
        body = f"{self.server.identity}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the console is the test's."""


class KeepAliveServer:
    """An HTTP/1.1 keep-alive server in a namespace answering with its identity; `/hold` waits for `gate`."""

    def __init__(self, netns: Netns, *, identity: str, port: int, gate: Gate) -> None:
        with netns.entered():
            self._server = _SessionServer(port, identity, gate)
        self._gate = gate
        self._thread = start_serving(self._server, name=f"keepalive-{identity}")

    def close(self) -> None:
        """Release held requests, stop serving and close the listening socket."""
        self._gate.open()
        stop_serving(self._server, self._thread)
