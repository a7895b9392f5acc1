#!/usr/bin/env python3
"""Kernel lab: boots Debian's kernel under QEMU (TCG) on the host's root and runs one command inside.

The guest sees the host root read-only over 9p and a read-write 9p share (the results directory, mounted at
the same path as on the host) where the command's exit code lands. The console streams to stdout.

Exit codes: the guest command's own; 77 QEMU is not installed (callers may skip); 124 timeout; 125 the lab
itself failed (no kernel, or the guest never reported an exit code).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import lzma
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import BinaryIO, NoReturn

EXIT_NO_QEMU = 77
EXIT_TIMEOUT = 124
EXIT_LAB_FAILED = 125

QEMU = "qemu-system-x86_64"
BUSYBOX = Path("/bin/busybox")
LAB_DIR = Path(__file__).resolve().parent
DEFAULT_RESULTS = LAB_DIR / "results"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ipvsctl" / "lab"
# What the initrd needs to mount the host root; modules.dep supplies the rest of the load order.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
XZ_MAGIC = b"\xfd7zXZ\x00"
EXIT_CODE_FILE = "exit-code"
GUEST_SCRIPT = "guest.sh"
CONSOLE_LOG = "console.log"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# QEMU's user-mode network (slirp) as the guest sees it, used only for --forward: the guest is GUEST_ADDRESS
# on eth0, and a connection to FORWARD_ADDRESS:PORT reaches 127.0.0.1:PORT on the host through lab/forward.py.
GUEST_ADDRESS = "10.0.2.15/24"
FORWARD_ADDRESS = "10.0.2.100"
FORWARD_HELPER = LAB_DIR / "forward.py"


class LabError(Exception):
    """The lab cannot run; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Kernel:
    """A Debian kernel package unpacked (dpkg -x) and depmod-ed under `root`."""

    root: Path
    version: str

    @property
    def image(self) -> Path:
        """The bootable bzImage."""
        return self.root / "boot" / f"vmlinuz-{self.version}"

    @property
    def modules(self) -> Path:
        """The directory modprobe -d and modules.dep resolve against."""
        return self.root / "lib" / "modules" / self.version


def find_kernel(cache: Path) -> Kernel:
    """Return the kernel lab/setup.sh unpacked into the cache (its `current` link)."""
    current = cache / "current"
    root = current.resolve()
    if not (root / ".complete").is_file():
        raise LabError(f"no kernel unpacked under {current}: run `bash lab/setup.sh` first")
    kernel = Kernel(root=root, version=root.name)
    for needed in (kernel.image, kernel.modules / "modules.dep"):
        if not needed.is_file():
            raise LabError(f"{needed} is missing: remove {root} and run `bash lab/setup.sh` again")
    return kernel


def bootable_image(kernel: Kernel) -> Path:
    """Return the kernel as an uncompressed ELF (QEMU boots it through PVH), else the bzImage.

    The bzImage decompresses itself under emulation in about 3 s per boot; done once here (about 1 s) and
    cached beside it, the boot skips that.
    """
    elf = kernel.root / "boot" / f"vmlinux-{kernel.version}"
    if elf.is_file():
        return elf
    image = kernel.image.read_bytes()
    start = image.find(XZ_MAGIC)
    if start < 0:
        return kernel.image
    try:
        decompressed = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(image[start:])
    except lzma.LZMAError:
        return kernel.image
    if not decompressed.startswith(b"\x7fELF"):
        return kernel.image
    partial = elf.with_name(f"{elf.name}.{os.getpid()}.partial")
    partial.write_bytes(decompressed)
    partial.replace(elf)
    return elf


def module_load_order(kernel: Kernel, targets: Iterable[str]) -> list[Path]:
    """Return the module files for `targets` with every dependency before its users."""
    paths: dict[str, Path] = {}
    deps: dict[str, list[str]] = {}
    for line in (kernel.modules / "modules.dep").read_text().splitlines():
        module, _, requires = line.partition(":")
        name = Path(module).name.removesuffix(".ko")
        paths[name] = kernel.modules / module
        deps[name] = [Path(dep).name.removesuffix(".ko") for dep in requires.split()]
    order: list[str] = []

    def visit(name: str, depth: int) -> None:
        if depth > 50:
            raise LabError(f"module dependency cycle through {name}")
        if name in order:
            return
        if name not in paths:
            raise LabError(f"kernel {kernel.version} has no module {name}")
        # modules.dep lists the deepest dependencies last.
        for dep in reversed(deps[name]):
            visit(dep, depth + 1)
        order.append(name)

    for target in targets:
        visit(target, 0)
    return [paths[name] for name in order]


class Newc:
    """A cpio archive in the kernel's initramfs ("newc") format, built in memory."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ino = 0

    def _entry(self, name: str, *, mode: int, body: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self._ino += 1
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, 1, 0, len(body), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        self._data += b"070701" + b"".join(b"%08X" % field for field in fields) + encoded
        self._data += b"\0" * (-len(self._data) % 4) + body
        self._data += b"\0" * (-len(self._data) % 4)

    def directory(self, name: str) -> None:
        """Add a directory."""
        self._entry(name, mode=0o040755)

    def file(self, name: str, body: bytes, *, executable: bool = False) -> None:
        """Add a regular file."""
        self._entry(name, mode=0o100755 if executable else 0o100644, body=body)

    def char_device(self, name: str, major: int, minor: int) -> None:
        """Add a character device node."""
        self._entry(name, mode=0o020600, rdev=(major, minor))

    def finish(self) -> bytes:
        """Return the archive with its trailer."""
        self._entry("TRAILER!!!", mode=0)
        return bytes(self._data)


def keep_under_tmp(cwd: Path) -> str:
    """Shell lines that keep a project under the host's /tmp visible once the guest's /tmp is a tmpfs.

    A fresh clone (CI's, say) may live in /tmp: the host's /tmp is bound aside before the tmpfs goes
    over it, and the project's directory is bound back at its own path.
    """
    try:
        inside = cwd.relative_to("/tmp")  # noqa: S108  the host path being preserved, not a temp file
    except ValueError:
        return ""
    host_tmp = "/host/run/lab-host-tmp"
    target = shlex.quote(f"/host/tmp/{inside}")
    return (
        f"mkdir -p {host_tmp} && mount -o bind /host/tmp {host_tmp} || fail 'keep host /tmp'\n"
        f"KEEP_PROJECT='mkdir -p {target} && mount -o bind {shlex.quote(f'{host_tmp}/{inside}')} {target}'\n"
    )


def init_script(*, modules: Sequence[str], results: Path, kernel: Kernel, cwd: Path) -> str:
    """Return the initrd's /init: load 9p, mount the host root, chroot into it and run the guest script."""
    guest = results / GUEST_SCRIPT
    keep = keep_under_tmp(cwd)
    insmods = "\n".join(f"insmod /lib/modules/{name} || fail 'insmod {name}'" for name in modules)
    return f"""#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
fail() {{ echo "lab/init: $*" >&2; sync; poweroff -f; }}
mount -t proc proc /proc
echo "lab/init: kernel up after $(cut -d' ' -f1 /proc/uptime) s"
{insmods}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /host || fail 'mount host root'
mount -t proc proc /host/proc || fail 'mount proc'
mount -t sysfs sysfs /host/sys || fail 'mount sysfs'
mount -t devtmpfs devtmpfs /host/dev || fail 'mount devtmpfs'
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs -o mode=1777 shm /host/dev/shm
ln -sf /proc/self/fd /host/dev/fd
ln -sf /proc/self/fd/0 /host/dev/stdin
ln -sf /proc/self/fd/1 /host/dev/stdout
ln -sf /proc/self/fd/2 /host/dev/stderr
mount -t tmpfs -o mode=0755 run /host/run || fail 'mount /run'
KEEP_PROJECT=true
{keep}mount -t tmpfs -o mode=1777 tmp /host/tmp || fail 'mount /tmp'
eval "$KEEP_PROJECT" || fail 'keep the project under /tmp'
mkdir -p {shlex.quote(f"/host{results}")} 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results {shlex.quote(f"/host{results}")} \\
    || fail 'mount results'
# The kernel runs its module loader outside the chroot: hand the request to modprobe inside it.
echo /sbin/lab-modprobe > /proc/sys/kernel/modprobe
echo "lab/init: host root mounted after $(cut -d' ' -f1 /proc/uptime) s (kernel {kernel.version})"
chroot /host /bin/sh {shlex.quote(str(guest))}
sync
poweroff -f
"""


def modprobe_helper(kernel: Kernel) -> str:
    """Return the script the kernel runs to auto-load modules (schedulers, veth, ...)."""
    return f'#!/bin/busybox sh\nexec /bin/busybox chroot /host /sbin/modprobe -d {shlex.quote(str(kernel.root))} "$@"\n'


def network_setup(kernel: Kernel) -> str:
    """Shell lines that bring up eth0 on QEMU's user network, for --forward (the kernel loads no driver itself)."""
    modules = shlex.quote(str(kernel.root))
    return (
        f"modprobe -d {modules} virtio_net || {{ echo 'lab/guest: no virtio_net' >&2; exit 1; }}\n"
        f"ip link set eth0 up && ip addr add {GUEST_ADDRESS} dev eth0 || {{ echo 'lab/guest: no eth0' >&2; exit 1; }}\n"
    )


def guest_script(
    *,
    command: Sequence[str],
    cwd: Path,
    results: Path,
    kernel: Kernel,
    env: dict[str, str],
    network: bool = False,
) -> str:
    """Return the script run inside the chroot: prepare IPVS (and eth0), run the command, report its exit code."""
    exports = "\n".join(f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items()))
    return f"""set -u
{exports}
mkdir -p "$HOME"
modprobe -d {shlex.quote(str(kernel.root))} ip_vs || {{ echo 'lab/guest: modprobe ip_vs failed' >&2; exit 1; }}
ip link set lo up || exit 1
{network_setup(kernel) if network else ""}cd {shlex.quote(str(cwd))} || exit 1
printf 'lab/guest: running %s after %s s\\n' {shlex.quote(shlex.join(command))} "$(cut -d' ' -f1 /proc/uptime)"
{shlex.join(command)}
rc=$?
echo "lab/guest: exit code $rc after $(cut -d' ' -f1 /proc/uptime) s"
echo "$rc" > {shlex.quote(str(results / EXIT_CODE_FILE))}
"""


def guest_env(extra: Sequence[str], results: Path, *, forwards: Sequence[int] = ()) -> dict[str, str]:
    """Return the guest command's environment: writable places on tmpfs, plus `NAME=VALUE` extras.

    With forwarded ports, LAB_FORWARD_ADDRESS and LAB_FORWARD_PORTS (space-separated) say where they are.
    """
    env = {
        "PATH": GUEST_PATH,
        "HOME": "/run/lab-home",
        "TMPDIR": "/tmp",  # noqa: S108  the guest's /tmp is a tmpfs private to this boot
        "LANG": "C.UTF-8",
        "TERM": os.environ.get("TERM", "dumb") if sys.stdout.isatty() else "dumb",
        "COLUMNS": str(shutil.get_terminal_size(fallback=(120, 24)).columns),
        "IPVSCTL_LAB": "1",
        "LAB_RESULTS": str(results),
        # The host root is read-only: nowhere to write bytecode or pytest's cache.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_ADDOPTS": "-p no:cacheprovider",
    }
    if "CI" in os.environ:
        env["CI"] = os.environ["CI"]
    if forwards:
        env["LAB_FORWARD_ADDRESS"] = FORWARD_ADDRESS
        env["LAB_FORWARD_PORTS"] = " ".join(str(port) for port in forwards)
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise LabError(f"--env wants NAME=VALUE, got {item!r}")
        env[name] = value
    return env


def build_initrd(kernel: Kernel, results: Path, *, cwd: Path) -> bytes:
    """Return an initrd holding busybox, the 9p modules, /init and the modprobe helper."""
    if not BUSYBOX.is_file():
        raise LabError(f"{BUSYBOX} is missing: run `bash lab/setup.sh` (busybox-static)")
    modules = module_load_order(kernel, BOOT_MODULES)
    archive = Newc()
    for directory in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "host", "lib", "lib/modules"):
        archive.directory(directory)
    archive.char_device("dev/console", 5, 1)
    archive.file("bin/busybox", BUSYBOX.read_bytes(), executable=True)
    for module in modules:
        archive.file(f"lib/modules/{module.name}", module.read_bytes())
    archive.file("sbin/lab-modprobe", modprobe_helper(kernel).encode(), executable=True)
    script = init_script(modules=[module.name for module in modules], results=results, kernel=kernel, cwd=cwd)
    archive.file("init", script.encode(), executable=True)
    return archive.finish()


def network_options(forwards: Sequence[int]) -> list[str]:
    """QEMU's network options: none, or a user-mode network whose only way out is each forwarded host port.

    `restrict=on` keeps the guest from reaching anything but the guestfwd rules; QEMU runs lab/forward.py once
    per guest connection (commas in an option value are doubled, as QEMU's option syntax wants).
    """
    if not forwards:
        return ["-net", "none"]
    helper = f"{sys.executable} {FORWARD_HELPER}".replace(",", ",,")
    rules = "".join(f",guestfwd=tcp:{FORWARD_ADDRESS}:{port}-cmd:{helper} {port}" for port in forwards)
    return ["-netdev", f"user,id=n0,restrict=on{rules}", "-device", "virtio-net-pci,netdev=n0"]


def qemu_command(
    *, kernel: Kernel, initrd: Path, results: Path, memory_mb: int, forwards: Sequence[int] = ()
) -> list[str]:
    """Return the QEMU command line: TCG, one CPU, serial console on stdio, a network device only to forward."""
    return [
        QEMU,
        "-accel", "tcg",
        "-cpu", "max",
        "-m", str(memory_mb),
        "-smp", "1",
        "-nographic",
        "-vga", "none",
        # SeaBIOS would otherwise reset the terminal and clear the screen on the serial console.
        "-fw_cfg", "name=etc/sercon-port,string=0",
        "-no-reboot",
        *network_options(forwards),
        "-kernel", str(bootable_image(kernel)),
        "-initrd", str(initrd),
        "-append", "console=ttyS0 quiet panic=-1",
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={results},mount_tag=results,security_model=passthrough,multidevs=remap",
    ]  # fmt: skip


class Console:
    """Copies the serial console to sinks as it arrives (CRLF → LF) and notes when the guest command starts."""

    MARKER = b"lab/guest: running"

    def __init__(self, sinks: Sequence[BinaryIO]) -> None:
        self._sinks = list(sinks)
        self._tail = b""
        self.command_started: float | None = None

    def pump(self, source: io.BufferedReader) -> None:
        """Copy until QEMU closes its stdout."""
        held = b""
        while chunk := source.read1(65536):
            data = held + chunk
            held = b"\r" if data.endswith(b"\r") else b""
            self._write(data[: len(data) - len(held)].replace(b"\r\n", b"\n"))
        self._write(held)

    def _write(self, data: bytes) -> None:
        self._tail = (self._tail + data)[-256:]
        if self.command_started is None and self.MARKER in self._tail:
            self.command_started = time.monotonic()
        for sink in list(self._sinks):
            try:
                sink.write(data)
                sink.flush()
            except OSError:  # e.g. a closed pipe: keep draining QEMU into the other sinks
                self._sinks.remove(sink)


def pump_stderr(source: BinaryIO) -> None:
    """Copy QEMU's diagnostics to stderr, less the warning that the SeaBIOS setting is not under opt/."""
    for line in source:
        if b"fw_cfg item names" not in line:
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()


def boot(command: list[str], *, timeout: float, results: Path) -> int | None:
    """Run QEMU until it exits or `timeout` seconds pass; return its exit status, None on timeout."""
    with (results / CONSOLE_LOG).open("wb") as log:
        console = Console([sys.stdout.buffer, log])
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603  argv built by qemu_command, no shell
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdout is not None
        assert process.stderr is not None
        readers = [
            threading.Thread(target=console.pump, args=(process.stdout,), name="console", daemon=True),
            threading.Thread(target=pump_stderr, args=(process.stderr,), name="qemu-stderr", daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            for reader in readers:
                reader.join(timeout=10)
            booted = "never" if console.command_started is None else f"{console.command_started - started:.1f} s"
            print(
                f"lab: QEMU ran {time.monotonic() - started:.1f} s; boot to guest command: {booted}",
                file=sys.stderr,
                flush=True,
            )
        return status


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` meanwhile: one lab run at a time per results directory."""
    with path.open("ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(f"another lab run holds {path}; two emulated VMs would share 2 cores") from None
        yield


def port_number(text: str) -> int:
    """A TCP port from the command line (argparse reports the error)."""
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(text)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Return the command line: options, then `--` and the guest command."""
    parser = argparse.ArgumentParser(
        description="Boot the kernel lab VM and run one command inside it (in the current directory).",
        epilog="Example: python3 lab/run.py -- .venv/bin/pytest -q -m kernel tests/kernel",
    )
    parser.add_argument("--timeout", type=float, default=20 * 60, help="seconds before QEMU is killed")
    parser.add_argument("--memory", type=int, default=2048, help="guest memory in MiB")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="read-write share for results")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where lab/setup.sh put the kernel")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="guest environment")
    parser.add_argument(
        "--forward",
        action="append",
        default=[],
        type=port_number,
        metavar="PORT",
        help=f"make host 127.0.0.1:PORT reachable in the guest at {FORWARD_ADDRESS}:PORT (repeatable)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run inside the guest")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the guest command after --")
    return args


def terminate(signum: int, _frame: FrameType | None) -> NoReturn:
    """Turn SIGTERM into an exit that runs the cleanup (kills QEMU)."""
    raise SystemExit(128 + signum)


def run_lab(args: argparse.Namespace, results: Path) -> int | None:
    """Prepare the guest script and initrd, then boot; return QEMU's exit status, None on timeout."""
    kernel = find_kernel(args.cache)
    results.mkdir(parents=True, exist_ok=True)
    with exclusive(results / ".lock"), tempfile.TemporaryDirectory(prefix="ipvsctl-lab-") as scratch:
        (results / EXIT_CODE_FILE).unlink(missing_ok=True)
        env = guest_env(args.env, results, forwards=args.forward)
        script = guest_script(
            command=args.command, cwd=Path.cwd(), results=results, kernel=kernel, env=env, network=bool(args.forward)
        )
        (results / GUEST_SCRIPT).write_text(script)
        initrd = Path(scratch) / "initrd.cpio"
        initrd.write_bytes(build_initrd(kernel, results, cwd=Path.cwd()))
        command = qemu_command(
            kernel=kernel, initrd=initrd, results=results, memory_mb=args.memory, forwards=args.forward
        )
        return boot(command, timeout=args.timeout, results=results)


def main(argv: Sequence[str]) -> int:
    """Boot the lab, run the command, return its exit code (or one of the lab's own)."""
    args = parse_args(argv)
    if shutil.which(QEMU) is None:
        print(f"lab: {QEMU} is not installed and lab/setup.sh could not install it: skip", file=sys.stderr)
        return EXIT_NO_QEMU
    signal.signal(signal.SIGTERM, terminate)
    results: Path = args.results.resolve()
    try:
        status = run_lab(args, results)
    except LabError as error:
        print(f"lab: {error}", file=sys.stderr)
        return EXIT_LAB_FAILED
    if status is None:
        print(f"lab: timed out after {args.timeout:.0f} s; QEMU killed", file=sys.stderr)
        return EXIT_TIMEOUT
    try:
        reported = (results / EXIT_CODE_FILE).read_text().strip()
    except FileNotFoundError:
        print(f"lab: the guest never reported an exit code (QEMU exit status {status})", file=sys.stderr)
        return EXIT_LAB_FAILED
    if not reported.isdigit():
        print(f"lab: the guest reported a malformed exit code {reported!r}", file=sys.stderr)
        return EXIT_LAB_FAILED
    return int(reported)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
