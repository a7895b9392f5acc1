"""HTTP/1.1 on the wire for the agent's servers: parse a request head, format a reply. Pure: bytes in, values out.

Strict where leniency lets a client confuse a server or a proxy in front of it (obsolete line folding,
whitespace before a colon, conflicting Content-Length, any Transfer-Encoding: the agent never needs a
body), and it never echoes the client: an error reply's body is a fixed text chosen by its status alone.
No ``Server`` header is ever written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ipvsctl.errors import IpvsctlError

__all__ = [
    "JSON_TYPE",
    "METHODS",
    "HttpError",
    "RequestHead",
    "Response",
    "error_response",
    "format_response",
    "head_end",
    "parse_head",
]

# The only methods any of the agent's servers answers; every other one gets 405.
METHODS = ("GET", "HEAD")
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"
# A Content-Length of more digits than this is refused before int() sees it (issue 12: huge integers).
_MAX_LENGTH_DIGITS = 18

_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST_LINE = re.compile(rf"({_TCHARS}) ([!-~]+) HTTP/1\.[01]", re.ASCII)
_FIELD = re.compile(rf"({_TCHARS}):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*", re.ASCII)
_DIGITS = re.compile(rf"[0-9]{{1,{_MAX_LENGTH_DIGITS}}}", re.ASCII)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")


class HttpError(IpvsctlError):
    """A request the server answers with an error status (and closes)."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"{status} {REASONS[status]}")


@dataclass(frozen=True, slots=True)
class RequestHead:
    """What the agent's servers read of a request: the method, the path (no query) and the body's length."""

    method: str
    path: str
    content_length: int = 0


@dataclass(frozen=True, slots=True)
class Response:
    """A reply; ``headers`` are extra ``(name, value)`` pairs."""

    status: int
    body: bytes
    content_type: str = TEXT_TYPE
    headers: tuple[tuple[str, str], ...] = field(default=())


def error_response(status: int) -> Response:
    """The reply to a request refused with ``status``: a fixed text, nothing taken from the request."""
    headers = (("Allow", ", ".join(METHODS)),) if status == 405 else ()
    return Response(status, f"{status} {REASONS[status]}\n".encode(), headers=headers)


def head_end(buffer: bytes | bytearray) -> int | None:
    """The offset just past the blank line that ends a request head, or None while it is incomplete."""
    found = _HEAD_END.search(buffer)
    return found.end() if found else None


def parse_head(head: bytes) -> RequestHead:
    """A request line and its header fields, up to and including the blank line; HttpError(400) if malformed."""
    # Latin-1 maps every byte to one character: decoding cannot fail, and the patterns decide what is allowed.
    request_line, *fields = _LINE_END.split(head.decode("latin-1").lstrip("\r\n"))
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None:
        raise HttpError(400)
    method, target = match.groups()
    lengths: set[str] = set()
    for line in fields:
        if not line:
            continue
        found = _FIELD.fullmatch(line)
        if found is None:  # also obsolete line folding (a line that starts with a space) and bare CR
            raise HttpError(400)
        name, value = found.groups()
        name = name.lower()
        if name == "transfer-encoding":
            raise HttpError(400)
        if name == "content-length":
            lengths.update(part.strip() for part in value.split(","))
    if len(lengths) > 1 or not all(_DIGITS.fullmatch(length) for length in lengths):
        raise HttpError(400)
    return RequestHead(method, _path(target), int(lengths.pop()) if lengths else 0)


def _path(target: str) -> str:
    """The path of an origin-form (``/p?q``) or absolute-form (``http://h/p``) request target."""
    if target.startswith("/"):
        return target.partition("?")[0]
    if target.startswith(("http://", "https://")):
        try:
            return urlsplit(target).path or "/"
        except ValueError as error:  # urlsplit refuses a malformed authority, e.g. an unclosed IPv6 bracket
            raise HttpError(400) from error
    raise HttpError(400)


def format_response(response: Response, *, head_only: bool, date: str) -> bytes:
    """The bytes of ``response`` (its headers only for HEAD), closing the connection after it."""
    lines = [
        f"HTTP/1.1 {response.status} {REASONS[response.status]}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "X-Content-Type-Options: nosniff",
        f"Date: {date}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body
