"""The project's own error hierarchy: every failure a user can see names what it is about."""

from __future__ import annotations


class IpvsctlError(Exception):
    """Base of every error ipvsctl raises on purpose."""


class ManifestError(IpvsctlError):
    """A manifest file or one object in it cannot be read.

    ``source`` is the file (or ``-``), ``obj`` the object (``Kind ns/name``) and
    ``field`` the dotted path of the offending field, when known.
    """

    def __init__(self, message: str, *, source: str = "", obj: str = "", field: str = "") -> None:
        self.message = message
        self.source = source
        self.obj = obj
        self.field = field
        super().__init__(self.describe())

    def describe(self) -> str:
        where = ": ".join(part for part in (self.source, self.obj) if part)
        what = f"{self.field}: {self.message}" if self.field else self.message
        return f"{where}: {what}" if where else what


class InputError(IpvsctlError):
    """A file (or stdin) given to read is refused: not a regular file, too large, unreadable, ``-`` twice."""

    def __init__(self, message: str, *, source: str) -> None:
        self.message = message
        self.source = source
        super().__init__(f"{source}: {message}")


class ObjectError(ManifestError):
    """One Kubernetes object is malformed or invalid; the others are unaffected."""


class LineFormatError(IpvsctlError):
    """A line of a line-oriented text format cannot be parsed; names the source and line number."""

    def __init__(self, message: str, *, line_number: int, line: str, source: str = "") -> None:
        self.message = message
        self.line_number = line_number
        self.line = line
        self.source = source
        where = f"{source}:{line_number}" if source else f"line {line_number}"
        super().__init__(f"{where}: {message}: {line.strip()!r}")

    @classmethod
    def decode(cls, data: bytes | bytearray, *, source: str = "") -> str:
        """``data`` as UTF-8 text; this error type, naming the line and the byte, where it is not UTF-8."""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            start = data.rfind(b"\n", 0, error.start) + 1
            end = data.find(b"\n", error.start)
            line = data[start : len(data) if end < 0 else end].decode("utf-8", errors="backslashreplace")
            column = error.start - start + 1
            raise cls(
                f"not UTF-8 text (byte 0x{data[error.start]:02x} at column {column})",
                line_number=data.count(b"\n", 0, error.start) + 1,
                line=line,
                source=source,
            ) from error


class SaveFormatError(LineFormatError):
    """A line of ``ipvsadm -Sn`` save output cannot be parsed."""


class ConnTableError(LineFormatError):
    """A line of ``/proc/net/ip_vs_conn`` (or ``ip_vs_conn_sync``) text cannot be parsed."""


class UsageError(IpvsctlError):
    """A command-line flag or its value is invalid."""

    def __init__(self, message: str, *, flag: str) -> None:
        self.flag = flag
        super().__init__(f"{flag}: {message}")


class BackendError(IpvsctlError):
    """The kernel (or the fake kernel) refused or failed an operation."""

    def __init__(self, message: str, *, target: str = "", errno: int = 0) -> None:
        self.target = target
        self.errno = errno
        super().__init__(f"{target}: {message}" if target else message)


class DriftError(BackendError):
    """The kernel table changed under us (EEXIST/ESRCH/ENOENT): re-read and re-plan."""
