"""ipvsctl.inputs: only regular files and ``-`` are read, each up to a size cap, all refused before reading."""

from __future__ import annotations

import io
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ipvsctl.errors import InputError, ManifestError
from ipvsctl.inputs import check_path, parse_size, read_input, read_stream, single_stdin
from ipvsctl.kube.manifests import load_manifests


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 2**20), ("64M", 64 * 2**20), ("64MiB", 64 * 2**20), ("1g", 2**30), ("512K", 512 * 2**10)],
    ids=["bytes", "mega", "mebi", "giga-lower-case", "kilo"],
)
def test_sizes_are_read_in_bytes(text: str, size: int) -> None:
    """A number of bytes, or with K, M or G (powers of 1024)."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0", "", "1T", "1.5M", "-1", "²", "9" * 13, "2048G"], ids=str.__repr__)
def test_anything_else_is_not_a_size(text: str) -> None:
    """Zero, fractions, signs, other units, Unicode digits and sizes past 1 TiB are refused."""
    with pytest.raises(ValueError, match=r"size|out of range"):
        parse_size(text)


def fifo(tmp_path: Path) -> Path:
    """A FIFO nobody writes to: opening it for reading would wait for ever."""
    path = tmp_path / "services.yaml"
    os.mkfifo(path)
    return path


def unix_socket(tmp_path: Path) -> Path:
    """A bound Unix socket (left open for the test's life by the fixture below)."""
    path = tmp_path / "services.json"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    SOCKETS.append(server)
    return path


SOCKETS: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> object:
    yield
    while SOCKETS:
        SOCKETS.pop().close()


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (fifo, "a FIFO"),
        (lambda tmp_path: Path("/dev/zero"), "a character device"),
        (unix_socket, "a socket"),
    ],
    ids=["fifo", "dev-zero", "socket"],
)
def test_what_is_not_a_regular_file_is_refused_unopened(
    tmp_path: Path, make: Callable[[Path], Path], kind: str
) -> None:
    """FIFOs, devices and sockets are refused by their kind, before anything is opened."""
    path = make(tmp_path)
    with pytest.raises(InputError) as caught:
        check_path(str(path), max_bytes=2**20)
    assert (caught.value.source, caught.value.message) == (
        str(path),
        f"is {kind}: only regular files and - (stdin) are read",
    )


def test_directory_is_refused_where_a_file_is_wanted(tmp_path: Path) -> None:
    """A directory is not a save file or a connection table."""
    with pytest.raises(InputError, match="is a directory"):
        check_path(str(tmp_path), max_bytes=2**20)


def test_file_over_the_cap_is_refused_by_its_size(tmp_path: Path) -> None:
    """A regular file larger than the cap is refused from its size, unread."""
    path = tmp_path / "big.save"
    path.write_bytes(b"#" * 2049)
    with pytest.raises(InputError) as caught:
        check_path(str(path), max_bytes=2048)
    assert caught.value.message.startswith("is 2049 bytes, more than the limit of 2048 bytes")


class CountingStream(io.RawIOBase):
    """An endless stream (as /dev/zero or a pipe that never closes) that counts the bytes handed out."""

    def __init__(self) -> None:
        self.given = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = len(buffer)
        buffer[:size] = b"\n" * size
        self.given += size
        return size


def test_stream_past_the_cap_is_refused_having_read_one_byte_more() -> None:
    """stdin longer than the cap: InputError, and no more than the cap and one byte was read."""
    stream = CountingStream()
    with pytest.raises(InputError, match="holds more than the limit of 3000000 bytes"):
        read_stream(io.BufferedReader(stream, buffer_size=1), max_bytes=3_000_000, source="-")
    assert stream.given <= 3_000_001


def test_stream_within_the_cap_is_read_whole() -> None:
    """A stream up to the cap is read whole (in several reads when it is long)."""
    data = bytes(range(256)) * 10_000
    assert read_stream(io.BytesIO(data), max_bytes=len(data), source="-") == data


def test_file_is_read_in_full(tmp_path: Path) -> None:
    """A regular file within the cap is read as it is."""
    path = tmp_path / "x.save"
    path.write_bytes(b"-A -t 192.0.2.1:80 -s rr\n")
    assert read_input(str(path), max_bytes=2**20) == b"-A -t 192.0.2.1:80 -s rr\n"


def test_stdin_twice_is_refused_naming_both_flags() -> None:
    """``-`` may stand for stdin once per command: the second reader would see an empty table."""
    with pytest.raises(InputError, match="--manifests and --current-save both name it"):
        single_stdin([("--manifests", "a.yaml"), ("--manifests", "-"), ("--current-save", "-")])


def finishes(action: Callable[[], object], *, seconds: float = 10.0) -> BaseException | None:
    """Run ``action`` in a thread: what it raised (None: it returned); fails the test if it blocks."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            action()
            outcome.append(None)
        except BaseException as error:  # handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still blocked after {seconds} s"
    return outcome[0]


def test_fifo_among_manifests_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO given as --manifests is a ManifestError at once (it used to block for ever)."""
    path = fifo(tmp_path)
    error = finishes(lambda: load_manifests([path]))
    assert isinstance(error, ManifestError)
    assert (error.source, error.message) == (str(path), "is a FIFO: only regular files and - (stdin) are read")


def test_fifo_inside_a_manifest_directory_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO named like a manifest inside a directory given as --manifests is refused, not opened."""
    fifo(tmp_path)
    error = finishes(lambda: load_manifests([tmp_path]))
    assert isinstance(error, ManifestError)
    assert error.message.startswith("is a FIFO")


def test_dev_zero_as_manifests_is_refused(tmp_path: Path) -> None:
    """/dev/zero (which used to grow to gigabytes before MemoryError) is refused as a device."""
    with pytest.raises(ManifestError, match="is a character device"):
        load_manifests(["/dev/zero"])


def test_manifest_over_the_cap_is_refused(tmp_path: Path) -> None:
    """A manifest file over max_bytes is refused before it is read."""
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 300)
    with pytest.raises(ManifestError, match="more than the limit of 1024 bytes"):
        load_manifests([path], max_bytes=1024)


def test_manifests_on_stdin_past_the_cap_are_refused() -> None:
    """stdin longer than max_bytes is refused once the cap is passed."""
    with pytest.raises(ManifestError, match="holds more than the limit of 1024 bytes"):
        load_manifests(["-"], stdin=io.BytesIO(b"# padding\n" * 300), max_bytes=1024)


def test_stdin_twice_among_manifests_is_refused() -> None:
    """``-f - -f -``: the second read of stdin would be empty; refused before reading."""
    with pytest.raises(ManifestError, match="stdin"):
        load_manifests(["-", "-"], stdin=io.BytesIO(b""))
