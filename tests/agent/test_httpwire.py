"""Request heads parsed strictly, replies formatted without a banner: the pure half of the agent's HTTP."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.agent.httpwire import HttpError, RequestHead, Response, error_response, format_response, parse_head

DATE = "Fri, 04 Dec 2026 21:00:00 GMT"


@pytest.mark.parametrize(
    ("head", "parsed"),
    [
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", RequestHead("GET", "/healthz"), id="probe"),
        pytest.param(b"HEAD / HTTP/1.0\r\n\r\n", RequestHead("HEAD", "/"), id="head-1.0"),
        pytest.param(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", RequestHead("GET", "/metrics"), id="query"),
        pytest.param(
            b"GET http://192.0.2.1:10256/readyz HTTP/1.1\r\n\r\n", RequestHead("GET", "/readyz"), id="absolute"
        ),
        pytest.param(b"GET http://192.0.2.1 HTTP/1.1\r\n\r\n", RequestHead("GET", "/"), id="absolute-no-path"),
        pytest.param(b"\r\nGET / HTTP/1.1\r\n\r\n", RequestHead("GET", "/"), id="leading-empty-line"),
        pytest.param(b"GET / HTTP/1.1\nHost: a\n\n", RequestHead("GET", "/"), id="bare-lf"),
        pytest.param(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", RequestHead("GET", "/", 5), id="length"),
        pytest.param(b"GET / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", RequestHead("GET", "/", 5), id="length-list"),
        pytest.param(b"POST / HTTP/1.1\r\n\r\n", RequestHead("POST", "/"), id="other-method"),
        pytest.param(b"GET / HTTP/1.1\r\nX-A: caf\xe9\r\n\r\n", RequestHead("GET", "/"), id="obs-text"),
    ],
)
def test_valid_head_is_parsed(head: bytes, parsed: RequestHead) -> None:
    """A well-formed head gives its method, path (no query) and body length."""
    assert parse_head(head) == parsed


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"\r\n\r\n", id="empty"),
        pytest.param(b"GET /\r\n\r\n", id="http-0.9"),
        pytest.param(b"GET / HTTP/2.0\r\n\r\n", id="version"),
        pytest.param(b"GET  / HTTP/1.1\r\n\r\n", id="double-space"),
        pytest.param(b"GET / HTTP/1.1 \r\n\r\n", id="trailing-space"),
        pytest.param(b"G(T / HTTP/1.1\r\n\r\n", id="method-not-a-token"),
        pytest.param(b"GET healthz HTTP/1.1\r\n\r\n", id="relative-target"),
        pytest.param(b"GET * HTTP/1.1\r\n\r\n", id="asterisk"),
        pytest.param(b"GET http://[::1/ HTTP/1.1\r\n\r\n", id="bad-authority"),
        pytest.param(b"GET /\xff HTTP/1.1\r\n\r\n", id="non-ascii-target"),
        pytest.param(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", id="space-before-colon"),
        pytest.param(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", id="no-colon"),
        pytest.param(b"GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n", id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nX-A: 1\r2\r\n\r\n", id="bare-cr"),
        pytest.param(b"GET / HTTP/1.1\r\nX-A: \x00\r\n\r\n", id="nul"),
        pytest.param(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", id="transfer-encoding"),
        pytest.param(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", id="two-lengths"),
        pytest.param(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", id="negative-length"),
        pytest.param("GET / HTTP/1.1\r\nContent-Length: ²\r\n\r\n".encode(), id="unicode-digit"),
        pytest.param(b"GET / HTTP/1.1\r\nContent-Length: " + b"9" * 19 + b"\r\n\r\n", id="huge-length"),
    ],
)
def test_malformed_head_is_a_400(head: bytes) -> None:
    """A malformed head is refused with 400."""
    with pytest.raises(HttpError) as refused:
        parse_head(head)
    assert refused.value.status == 400


PIECES = [b"GET", b"HEAD", b" ", b"/", b"*", b"HTTP/1.1", b"HTTP/1.0", b"\r\n", b"\n", b"\r", b":", b",", b"5"]
PIECES += [b"Content-Length", b"Transfer-Encoding", b"\xb2", b"\xff", b"\x00", b"http://", b"[", b"?", b"\t"]
HEADS = st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join))


def outcome(head: bytes) -> int:
    """0 when the head parses, else the status it is refused with."""
    try:
        parse_head(head)
    except HttpError as refused:
        return refused.status
    return 0


@given(HEADS)
def test_any_bytes_give_a_head_or_a_400(head: bytes) -> None:
    """Whatever the bytes, parsing gives a request head or HttpError(400), never another exception."""
    assert outcome(head) in {0, 400}


@pytest.mark.parametrize("status", [400, 404, 405, 413, 431, 500])
def test_error_reply_is_a_fixed_text(status: int) -> None:
    """An error reply's body is its status and reason, whatever the request was."""
    response = error_response(status)
    assert response.body.decode().startswith(f"{status} ")
    assert response.content_type.startswith("text/plain")


def test_405_says_which_methods_are_allowed() -> None:
    """405 carries Allow: GET, HEAD."""
    assert error_response(405).headers == (("Allow", "GET, HEAD"),)


def test_reply_names_no_server() -> None:
    """A formatted reply has no Server header and closes the connection."""
    raw = format_response(Response(200, b"{}", "application/json"), head_only=False, date=DATE)
    head = raw.partition(b"\r\n\r\n")[0].decode().lower()
    assert "\r\nserver:" not in head
    assert "\r\nconnection: close" in head


def test_head_reply_has_no_body() -> None:
    """A reply to HEAD keeps the GET Content-Length and sends no body."""
    raw = format_response(Response(200, b"12345"), head_only=True, date=DATE)
    assert raw.endswith(
        b"Content-Length: 5\r\nX-Content-Type-Options: nosniff\r\nDate: "
        + DATE.encode()
        + b"\r\nConnection: close\r\n\r\n"
    )
