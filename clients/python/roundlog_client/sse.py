"""Server-Sent Events: an incremental parser of the ``text/event-stream`` format (WHATWG HTML
Living Standard, "Server-sent events", section "Interpreting an event stream").

Lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the next
are one line end). ``field: value`` (one leading space of the value dropped); a line starting
with ``:`` is a comment (the server's ``: keep-alive``); a blank line dispatches the event.
``data`` lines join with LF; ``id`` sets the last event id (ignored when it holds NUL) and stays
set for later events; an event with no ``data`` line is not dispatched; unknown fields are
ignored.
"""

import json

__all__ = ["ServerEvent", "SSEParser"]


class ServerEvent:
    """One event: ``id`` (str: roundlog sends the log position, decimal digits), ``type`` (str:
    the audit event type, ``"message"`` when the server named none), ``data`` (the JSON-decoded
    audit event, or the raw text when it is not JSON), ``raw`` (the data text)."""

    __slots__ = ("id", "type", "data", "raw")

    def __init__(self, id, type, raw):
        self.id = id
        self.type = type
        self.raw = raw
        try:
            self.data = json.loads(raw)
        except ValueError:
            self.data = raw

    def __repr__(self):
        return "ServerEvent(id=%r, type=%r, data=%r)" % (self.id, self.type, self.data)


class SSEParser:
    """Feed it bytes as they arrive; it returns the events completed so far."""

    def __init__(self, last_event_id=None):
        self.last_event_id = last_event_id
        self._pending = bytearray()
        self._skip_lf = False
        self._data = []
        self._type = ""
        self._has_data = False
        self._first = True

    def feed(self, chunk):
        """Parses ``chunk`` (bytes); returns a list of `ServerEvent` completed by it."""
        events = []
        buf = self._pending
        for byte in bytes(chunk):
            if self._skip_lf:
                self._skip_lf = False
                if byte == 0x0A:
                    continue
            if byte == 0x0D or byte == 0x0A:
                self._skip_lf = byte == 0x0D
                line = bytes(buf)
                buf.clear()
                event = self._line(line)
                if event is not None:
                    events.append(event)
            else:
                buf.append(byte)
        return events

    def _line(self, raw):
        if self._first:
            self._first = False
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        line = raw.decode("utf-8", "replace")
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "event":
            self._type = value
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
        return None

    def _dispatch(self):
        if not self._has_data:
            self._type = ""
            return None
        event = ServerEvent(self.last_event_id, self._type or "message", "\n".join(self._data))
        self._data = []
        self._type = ""
        self._has_data = False
        return event
