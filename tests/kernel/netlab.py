"""Network namespaces, a small routed topology and tiny identity servers for tests in the kernel lab VM.

Servers and clients run as threads of the test process: a thread switches into a namespace with setns(2),
opens its socket there and switches back (a socket stays in the namespace it was created in). That avoids
starting a Python interpreter per server or request, which costs seconds under emulation.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import http.client
import itertools
import os
import socket
import socketserver
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
COMMAND_TIMEOUT = 60.0
SERVER_LIFETIME = 900.0  # servers stop by themselves even if a test never closes them
MAX_REQUESTS = 10_000  # per client call and per UDP server

# Addresses: documentation ranges only.
CLIENT_NET = ("192.0.2.1/24", "2001:db8:c::1/64")  # node side of the client link
CLIENT_ADDR = ("192.0.2.2", "2001:db8:c::2")
SERVER_NET = ("198.51.100.1/24", "2001:db8:5::1/64")  # node side of the servers' bridge
VIP = ("203.0.113.10", "2001:db8:f::10")
MAX_SERVERS = 50

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ_FLAGS = "16sH22x"  # struct ifreq (40 bytes on x86_64) holding ifr_flags

_libc = ctypes.CDLL(None, use_errno=True)
_serial = itertools.count(1)


class CommandError(AssertionError):
    """A command run for a test failed; the message carries its output."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def run_command(
    argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run `argv`; with `check`, raise CommandError (with stdout and stderr) on a non-zero exit."""
    done = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise CommandError(
            f"{' '.join(argv)} exited {done.returncode}\nstdout: {done.stdout.strip()}\nstderr: {done.stderr.strip()}"
        )
    return done


@dataclass(frozen=True, slots=True)
class Netns:
    """A named network namespace (a file under /run/netns) with its own IPVS table."""

    name: str

    @property
    def path(self) -> Path:
        """The bind-mounted namespace file."""
        return NETNS_DIR / self.name

    def run(
        self, *argv: str, input: str | None = None, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace through `ip netns exec`."""
        return run_command(["ip", "netns", "exec", self.name, *argv], input=input, check=check, timeout=timeout)

    def ip(self, *args: str, input: str | None = None) -> str:
        """Run `ip -n NAME ARGS...` and return its stdout."""
        return run_command(["ip", "-n", self.name, *args], input=input).stdout

    def ipvsadm(self, *args: str, input: str | None = None) -> str:
        """Run ipvsadm in the namespace and return its stdout."""
        return self.run("ipvsadm", *args, input=input).stdout

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Switch the calling thread (only) into the namespace; sockets opened meanwhile stay in it."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(self.path, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(own)

    def sysctl(self, key: str, value: str | None = None) -> str:
        """Set (when `value` is given) and return a sysctl of this namespace, e.g. `net.ipv4.vs.conntrack`."""
        path = Path("/proc/sys", *key.split("."))
        with self.entered():  # /proc/sys/net follows the namespace of the thread that opens it
            if value is not None:
                path.write_text(value)
            return path.read_text().strip()

    def proc_net(self, name: str) -> str:
        """Return /proc/net/NAME as this namespace sees it, e.g. `ip_vs_conn`."""
        with self.entered():
            return Path("/proc/thread-self/net", name).read_text()


def _set_up(interface: str) -> None:
    """Set IFF_UP on `interface` of the calling thread's namespace (an ioctl: no process to start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(IFREQ_FLAGS, interface.encode(), 0)
        flags = struct.unpack(IFREQ_FLAGS, fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(IFREQ_FLAGS, interface.encode(), flags | IFF_UP))


def create_netns(roles: Sequence[str]) -> list[Netns]:
    """Create one namespace per role (named after it, unique in this process), each with `lo` up."""
    created = [Netns(f"t{os.getpid()}-{next(_serial)}-{role}") for role in roles]
    try:
        run_command(["ip", "-batch", "-"], input="".join(f"netns add {netns.name}\n" for netns in created))
        for netns in created:
            # Without lo up there is no IPv4 local table and IPVS rejects IPv4 real servers (EINVAL).
            with netns.entered():
                _set_up("lo")
    except BaseException:
        delete_netns(created)
        raise
    return created


def delete_netns(namespaces: Sequence[Netns]) -> None:
    """Delete the namespaces; the kernel drops each IPVS table once nothing holds its namespace any more."""
    present = [netns for netns in namespaces if netns.path.exists()]
    if present:
        run_command(["ip", "-force", "-batch", "-"], input="".join(f"netns delete {netns.name}\n" for netns in present))


@dataclass(frozen=True, slots=True)
class Host:
    """A namespace playing one machine of a topology, with its addresses."""

    netns: Netns
    name: str
    ipv4: str
    ipv6: str


@dataclass(frozen=True, slots=True)
class Topology:
    """Client ⇄ node ⇄ servers: the node routes between them and holds the VIPs (on dummy `ipvs0`).

    client 192.0.2.2 / 2001:db8:c::2 on the node's `to-client` (192.0.2.1, 2001:db8:c::1);
    servers 198.51.100.11.. / 2001:db8:5::11.. on the node's bridge `servers` (198.51.100.1, 2001:db8:5::1);
    VIPs 203.0.113.10 and 2001:db8:f::10. Every host's default route points at the node.
    """

    node: Netns
    client: Host
    servers: tuple[Host, ...]
    vip: str = VIP[0]
    vip6: str = VIP[1]


def _batch(netns: Netns, commands: Sequence[str]) -> None:
    netns.ip("-batch", "-", input="".join(f"{command}\n" for command in commands))


def build_topology(new_netns: Callable[[Sequence[str]], list[Netns]], *, servers: int) -> Topology:
    """Build a Topology with `servers` server hosts; namespaces come from `new_netns` (which owns cleanup)."""
    if not 1 <= servers <= MAX_SERVERS:
        raise ValueError(f"servers must be within 1..{MAX_SERVERS}, got {servers}")
    names = [f"server{i}" for i in range(1, servers + 1)]
    node, client_netns, *server_netns = new_netns(["node", "client", *names])
    client = Host(client_netns, "client", *CLIENT_ADDR)
    hosts = tuple(
        Host(netns, name, f"198.51.100.{10 + i}", f"2001:db8:5::{10 + i}")
        for i, (netns, name) in enumerate(zip(server_netns, names, strict=True), start=1)
    )
    node_commands = [
        f"link add to-client type veth peer name eth0 netns {client.netns.name}",
        f"addr add {CLIENT_NET[0]} dev to-client",
        f"addr add {CLIENT_NET[1]} dev to-client nodad",
        "link set to-client up",
        "link add servers type bridge",
        f"addr add {SERVER_NET[0]} dev servers",
        f"addr add {SERVER_NET[1]} dev servers nodad",
        "link set servers up",
        "link add ipvs0 type dummy",
        f"addr add {VIP[0]}/32 dev ipvs0",
        f"addr add {VIP[1]}/128 dev ipvs0 nodad",
        "link set ipvs0 up",
    ]
    for index, host in enumerate(hosts, start=1):
        node_commands += [
            f"link add to-s{index} type veth peer name eth0 netns {host.netns.name}",
            f"link set to-s{index} master servers",
            f"link set to-s{index} up",
        ]
    _batch(node, node_commands)
    node.sysctl("net.ipv4.ip_forward", "1")
    node.sysctl("net.ipv6.conf.all.forwarding", "1")
    gateways = [(client, CLIENT_NET)] + [(host, SERVER_NET) for host in hosts]
    for host, (net4, net6) in gateways:
        gateway4, _, prefix4 = net4.partition("/")
        gateway6, _, prefix6 = net6.partition("/")
        _batch(
            host.netns,
            [
                f"addr add {host.ipv4}/{prefix4} dev eth0",
                f"addr add {host.ipv6}/{prefix6} dev eth0 nodad",
                "link set eth0 up",
                f"route add default via {gateway4}",
                f"route add ::/0 via {gateway6}",
            ],
        )
    return Topology(node=node, client=client, servers=hosts)


@dataclass(frozen=True, slots=True)
class Reply:
    """What a test server answered: its identity and the client address it saw."""

    server: str
    client: str


def _plain(address: str) -> str:
    """Return an IPv4 address seen by a dual-stack socket without its `::ffff:` prefix."""
    return address.removeprefix("::ffff:")


def _dual_stack_udp_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
    except BaseException:
        sock.close()
        raise
    return sock


class _IdentityHTTPServer(socketserver.ThreadingTCPServer):
    """Dual-stack threading TCP server; not http.server.HTTPServer, which resolves its own name (DNS)."""

    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, identity: str) -> None:
        self.identity = identity
        super().__init__(("::", port), _IdentityHandler)

    def server_bind(self) -> None:
        """Accept IPv4 too (as mapped addresses) before binding."""
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _IdentityHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = 10.0

    def do_GET(self) -> None:
        """Answer with the server's identity; tell the client address in a header."""
        assert isinstance(self.server, _IdentityHTTPServer)
        body = f"{self.server.identity}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Client-Address", _plain(self.client_address[0]))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the console is the test's."""


def start_serving(server: socketserver.BaseServer, *, name: str) -> threading.Thread:
    """Run a socketserver's loop in a daemon thread named ``name``."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True)
    thread.start()
    return thread


def stop_serving(server: socketserver.TCPServer, thread: threading.Thread) -> None:
    """Stop a server started by ``start_serving`` and close its listening socket (bounded waits)."""
    stopping = threading.Thread(target=server.shutdown, name=f"{thread.name}-shutdown", daemon=True)
    stopping.start()
    with contextlib.suppress(OSError):  # wakes serve_forever now rather than at its next poll
        server.socket.shutdown(socket.SHUT_RDWR)
    stopping.join(timeout=10)
    thread.join(timeout=10)
    server.server_close()


class HttpServer:
    """An HTTP server in a namespace, on every address of it (IPv4 and IPv6), answering with its identity."""

    def __init__(self, netns: Netns, *, identity: str, port: int = 80) -> None:
        with netns.entered():
            self._server = _IdentityHTTPServer(port, identity)
        self._thread = start_serving(self._server, name=f"http-{identity}")
        self._stopper = threading.Timer(SERVER_LIFETIME, self._server.shutdown)
        self._stopper.daemon = True
        self._stopper.start()

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._stopper.cancel()
        stop_serving(self._server, self._thread)


class UdpEchoServer:
    """A UDP server in a namespace answering each datagram with `IDENTITY CLIENT ` and the datagram."""

    def __init__(self, netns: Netns, *, identity: str, port: int) -> None:
        with netns.entered():
            self._socket = _dual_stack_udp_socket(port)
        self._socket.settimeout(0.2)
        self._identity = identity
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"udp-{identity}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        deadline = time.monotonic() + SERVER_LIFETIME
        answered = 0
        while not self._stop.is_set() and answered < MAX_REQUESTS and time.monotonic() < deadline:
            try:
                data, peer = self._socket.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            if self._stop.is_set():
                return
            self._socket.sendto(f"{self._identity} {_plain(peer[0])} ".encode() + data, peer)
            answered += 1

    def close(self) -> None:
        """Stop serving and close the socket."""
        self._stop.set()
        with contextlib.suppress(OSError):  # wakes recvfrom now (Linux does, despite ENOTCONN)
            self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)
        self._socket.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def http_get(
    client: Netns, host: str, *, port: int = 80, count: int = 1, timeout: float = 5.0, path: str = "/"
) -> list[Reply]:
    """GET `path` from `host` `count` times from `client`, each on a new connection; return the replies."""
    if not 1 <= count <= MAX_REQUESTS:
        raise ValueError(f"count must be within 1..{MAX_REQUESTS}")
    deadline = time.monotonic() + timeout * count
    replies = []
    with client.entered():
        for _ in range(count):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} requests to {host}:{port} took over {timeout * count:.0f} s")
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                connection.request("GET", path, headers={"Connection": "close"})
                response = connection.getresponse()
                body = response.read().decode()
                if response.status != 200:
                    raise CommandError(f"GET {host}:{port}{path} answered {response.status}: {body}")
                replies.append(Reply(server=body.strip(), client=response.getheader("X-Client-Address", "")))
            finally:
                connection.close()
    return replies


def udp_ask(
    client: Netns, host: str, *, port: int, count: int = 1, timeout: float = 5.0, payload: bytes = b"ping"
) -> list[Reply]:
    """Send `payload` to `host` `count` times from `client`, each from a new socket; return the replies."""
    if not 1 <= count <= MAX_REQUESTS:
        raise ValueError(f"count must be within 1..{MAX_REQUESTS}")
    deadline = time.monotonic() + timeout * count
    replies = []
    with client.entered():
        for sequence in range(count):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} datagrams to {host}:{port} took over {timeout * count:.0f} s")
            with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
                sock.settimeout(timeout)
                sock.connect((host, port))
                sent = payload + b" %d" % sequence
                sock.send(sent)
                server, seen, echoed = sock.recv(65535).split(b" ", 2)
                if echoed != sent:
                    raise CommandError(f"UDP {host}:{port} echoed {echoed!r} for {sent!r}")
                replies.append(Reply(server=server.decode(), client=seen.decode()))
    return replies


class Lab:
    """A test's namespaces and servers: whatever it creates is torn down after the test, last first."""

    def __init__(self, cleanup: contextlib.ExitStack) -> None:
        self._cleanup = cleanup
        self._namespaces: list[Netns] = []
        cleanup.callback(self._delete_namespaces)  # first in, so last out: after the servers in them

    def _delete_namespaces(self) -> None:
        delete_netns(self._namespaces)

    def _new_netns(self, roles: Sequence[str]) -> list[Netns]:
        created = create_netns(roles)
        self._namespaces += created
        return created

    def netns(self, role: str = "test") -> Netns:
        """Create a fresh namespace with `lo` up (and so an empty IPVS table of its own)."""
        return self._new_netns([role])[0]

    def topology(self, *, servers: int = 3) -> Topology:
        """Create client, node and `servers` server namespaces, wired and routed (see Topology)."""
        return build_topology(self._new_netns, servers=servers)

    def serve_http(self, netns: Netns, *, identity: str, port: int = 80) -> HttpServer:
        """Start an HTTP server in `netns` that answers with `identity`."""
        server = HttpServer(netns, identity=identity, port=port)
        self._cleanup.callback(server.close)
        return server

    def serve_udp_echo(self, netns: Netns, *, identity: str, port: int) -> UdpEchoServer:
        """Start a UDP echo server in `netns` that prefixes each answer with `identity`."""
        server = UdpEchoServer(netns, identity=identity, port=port)
        self._cleanup.callback(server.close)
        return server
