"""Reading Server-Sent Events in tests: from a test client's body iterator or from a raw socket."""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


@dataclass
class Event:
    """One SSE block: its fields, or only comments (a keep-alive) when `comment` is set."""

    id: str | None = None
    event: str | None = None
    data: str = ""
    retry: int | None = None
    comment: bool = False

    @property
    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class Parser:
    """Feeds text in, yields complete blocks (separated by a blank line)."""

    buffer: str = ""
    done: list[Event] = field(default_factory=list)

    def feed(self, text: str) -> list[Event]:
        self.buffer += text.replace("\r\n", "\n")
        events = []
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            events.append(parse_block(block))
        return events


def parse_block(block: str) -> Event:
    found = Event()
    data: list[str] = []
    lines = [line for line in block.split("\n") if line]
    for line in lines:
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "id":
            found.id = value
        elif name == "event":
            found.event = value
        elif name == "retry":
            found.retry = int(value)
    found.data = "\n".join(data)
    found.comment = all(line.startswith(":") for line in lines)
    return found


class BodyReader:
    """Events from a Flask test response's body iterator (keep-alives included)."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks = chunks
        self.parser = Parser()
        self.pending: list[Event] = []

    def next(self) -> Event:
        while not self.pending:
            chunk = next(self.chunks)
            self.pending += self.parser.feed(chunk.decode() if isinstance(chunk, bytes) else chunk)
        return self.pending.pop(0)

    def next_count(self, limit: int = 200,
                   where: Callable[[Event], bool] = lambda e: True) -> Event:
        """The next `count` event matching `where`, reading at most `limit` blocks."""
        for _ in range(limit):
            found = self.next()
            if found.event == "count" and where(found):
                return found
        raise AssertionError(f"no matching count event in {limit} blocks")


class SocketStream:
    """A stream opened over a raw socket (HTTP/1.1, chunked body), for a real server."""

    def __init__(self, port: int, path: str, headers: dict[str, str], timeout: float = 30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
                 *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        self.sock.sendall("\r\n".join(lines).encode())
        self.raw = b""
        self.status, self.headers = self._head()
        self.parser = Parser()
        self.pending: list[Event] = []

    def _head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.raw:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the response head")
            self.raw += chunk
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def _body_text(self) -> str:
        """Decode whatever complete chunks are buffered (chunked transfer encoding)."""
        out = []
        while True:
            size_end = self.raw.find(b"\r\n")
            if size_end < 0:
                break
            size = int(self.raw[:size_end].split(b";")[0], 16)
            if size == 0:
                raise EOFError("the server ended the stream")
            if len(self.raw) < size_end + 2 + size + 2:
                break
            out.append(self.raw[size_end + 2:size_end + 2 + size])
            self.raw = self.raw[size_end + 2 + size + 2:]
        return b"".join(out).decode()

    def next(self, deadline: float | None = None) -> Event:
        while not self.pending:
            text = self._body_text()
            if text:
                self.pending += self.parser.feed(text)
                continue
            if deadline is not None:
                self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.raw += chunk
        return self.pending.pop(0)

    def next_count(self, timeout: float = 30.0) -> Event:
        """The next `count` event; socket.timeout when none arrives within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.next(deadline)
            if found.event == "count":
                return found

    def read_body(self) -> str:
        """The rest of a non-streaming (error) response, by its Content-Length."""
        length = int(self.headers.get("content-length", "0"))
        while len(self.raw) < length:
            self.raw += self.sock.recv(65536)
        return self.raw[:length].decode()

    def close(self) -> None:
        self.sock.close()
