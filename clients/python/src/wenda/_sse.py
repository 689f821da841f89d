"""Server-Sent Events read from the bytes of a response, as the HTML standard's "event stream
interpretation" reads them.

Lines end at CR LF, LF or CR, and nowhere else: `httpx`'s `iter_lines` also ends them at the
Unicode line separators (U+2028, U+0085, ...), which JSON leaves unescaped inside strings, so an
answer quoting one would be cut. A comment (`: keep-alive`) is skipped, the `data` lines of an
event are joined by line feeds, and an event is complete at the blank line that follows it (an
event the stream ends in the middle of is dropped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    """The `event` field: `message` when the event names none."""
    data: str
    id: str | None = None
    """The last `id` the stream gave, if any."""


class SSEDecoder:
    """Bytes in, in chunks cut anywhere (inside a line, a CR LF or a UTF-8 character); events
    out."""

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False
        self._after_cr = False  # the last chunk ended at a CR: a LF starting the next is its end
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events `chunk` completes."""
        if not chunk:
            return []
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = False
        buffer = self._buffer + chunk
        if not self._started:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                self._buffer = buffer
                return []
            self._started = True
            buffer = buffer.removeprefix(_BOM)
        events = []
        start = 0
        while match := _LINE_END.search(buffer, start):
            if match.group() == b"\r" and match.end() == len(buffer):
                self._after_cr = True
            event = self._line(buffer[start : match.start()].decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
            start = match.end()
        self._buffer = buffer[start:]
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._last_id = value
        # `retry`, and fields the standard does not name, are ignored.
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(event or "message", "\n".join(data), self._last_id)
