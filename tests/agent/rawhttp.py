"""A raw HTTP client for the server tests: sends exact bytes, returns the reply as the server wrote it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Reply", "open_descriptors", "send"]


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply split into its status, header fields (names lower-cased) and body; ``raw`` is every byte."""

    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes


async def send(port: int, request: bytes, *, within: float = 5.0) -> Reply:
    """Send ``request`` to 127.0.0.1:port and read until the server closes (every reply closes) within a time."""
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (f.partition(":") for f in fields)}
    return Reply(int(status_line.split()[1]), headers, body, raw)


def open_descriptors() -> int:
    """File descriptors this process has open now."""
    return sum(1 for _ in Path("/proc/self/fd").iterdir())
