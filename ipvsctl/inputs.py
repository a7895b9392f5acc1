"""The files the commands read (manifests, save files, connection tables): regular files or ``-``, bounded.

Everything a command is given to read is checked before anything is read: a path must be a regular file
(or a directory, where the caller expands one) and ``-`` stands for stdin, at most once per command. A
FIFO would block for ever and a device never ends (``/dev/zero``), so both are refused up front, as are
sockets. Every input is read up to a size cap (``--max-input-size``, 64 MiB by default): a file whose size
is over the cap is refused before it is opened, and no read goes past the cap, so a file that grows, a
``/proc`` file (size 0) or stdin cannot make a command hold more.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ipvsctl.errors import InputError
from ipvsctl.numbers import parse_decimal

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "STDIN",
    "InputError",
    "check_path",
    "parse_size",
    "read_input",
    "read_stream",
    "single_stdin",
]

STDIN = "-"
DEFAULT_MAX_INPUT_BYTES = 64 * 2**20
_UNITS = {"": 1, "K": 2**10, "KI": 2**10, "M": 2**20, "MI": 2**20, "G": 2**30, "GI": 2**30}
_SIZE = re.compile(r"(?P<digits>[0-9]{1,12})(?P<unit>[KMG]I?)?B?", re.IGNORECASE)
_MAX_CAP = 2**40  # a bound on the flag itself: nothing here is meant to read a terabyte
_READ_CHUNK = 2**20
_FILE_TYPES = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True, slots=True)
class Checked:
    """A path that may be read: a regular file or a directory, and its size."""

    path: str
    is_dir: bool
    size: int


def parse_size(text: str) -> int:
    """A size such as ``64M``, ``1GiB`` or ``1048576`` (bytes; K, M, G are powers of 1024); ValueError if not."""
    match = _SIZE.fullmatch(text.strip())
    number = parse_decimal(match["digits"], max_digits=12) if match else None
    if match is None or number is None:
        raise ValueError(f"{text!r} is not a size (bytes, or a number with K, M or G)")
    size = number * _UNITS[(match["unit"] or "").upper()]
    if not 0 < size <= _MAX_CAP:
        raise ValueError(f"{text!r} is out of range: from 1 byte to {_MAX_CAP // 2**30} GiB")
    return size


def _kind_of(mode: int) -> str:
    return next((name for test, name in _FILE_TYPES if test(mode)), "not a regular file")


def check_path(path: str, *, max_bytes: int, directory_ok: bool = False) -> Checked:
    """``path`` when it may be read: it exists, is a regular file (or a directory, if allowed) within the cap.

    InputError names the path and says why not; nothing has been opened.
    """
    try:
        status = Path(path).stat()
    except FileNotFoundError:
        raise InputError("no such file or directory", source=path) from None
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror or error}", source=path) from None
    if stat.S_ISDIR(status.st_mode):
        if not directory_ok:
            raise InputError("is a directory: give a file, or - for stdin", source=path)
        return Checked(path, is_dir=True, size=0)
    if not stat.S_ISREG(status.st_mode):
        kind = _kind_of(status.st_mode)
        raise InputError(f"is {kind}: only regular files and - (stdin) are read", source=path)
    if status.st_size > max_bytes:
        raise InputError(_too_large(max_bytes, size=status.st_size), source=path)
    return Checked(path, is_dir=False, size=status.st_size)


def single_stdin(sources: list[tuple[str, str]]) -> None:
    """Refuse ``-`` given more than once: ``(flag, value)`` pairs of every input of one command."""
    flags = [flag for flag, value in sources if value == STDIN]
    if len(flags) > 1:
        raise InputError(f"stdin (-) can be read only once, but {' and '.join(flags)} both name it", source=STDIN)


def read_input(path: str, *, max_bytes: int, stdin: BinaryIO | None = None) -> bytes | bytearray:
    """The bytes of a regular file (checked again once open) or of stdin (``-``), at most ``max_bytes``."""
    if path == STDIN:
        if stdin is None:
            raise InputError("no stdin to read", source=STDIN)
        return read_stream(stdin, max_bytes=max_bytes, source=STDIN)
    try:
        # O_NONBLOCK: should the path have become a FIFO since it was checked, opening it does not wait.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror or error}", source=path) from None
    with os.fdopen(descriptor, "rb") as stream:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise InputError(f"is {_kind_of(status.st_mode)}: only regular files and - (stdin) are read", source=path)
        try:
            return read_stream(stream, max_bytes=max_bytes, source=path, hint=status.st_size)
        except OSError as error:
            raise InputError(f"cannot read: {error.strerror or error}", source=path) from None


def read_stream(stream: BinaryIO, *, max_bytes: int, source: str, hint: int = 0) -> bytes | bytearray:
    """All of ``stream`` up to ``max_bytes``; InputError once it holds more (nothing past the cap is read).

    A file read in one piece (``hint``: its size) is returned as it was read, without a copy.
    """
    first = stream.read(min(max_bytes, hint) + 1 if hint else min(max_bytes + 1, _READ_CHUNK))
    if not first:
        return b""
    data: bytes | bytearray = first
    while len(data) <= max_bytes:
        chunk = stream.read(min(max_bytes + 1 - len(data), max(_READ_CHUNK, len(data))))
        if not chunk:
            return data
        if isinstance(data, bytes):
            data = bytearray(data)
        data += chunk
    raise InputError(_too_large(max_bytes), source=source)


def _too_large(max_bytes: int, *, size: int | None = None) -> str:
    what = f"is {size} bytes," if size is not None else "holds"
    return f"{what} more than the limit of {max_bytes} bytes (raise it with --max-input-size); not read"
