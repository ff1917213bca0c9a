"""The WebSocket protocol, version 1: message shapes and their validation (see docs/protocol.md).

Every inbound frame is a JSON object `{"v": 1, "type": ..., "id": ..., ...fields}` checked here
against a schema before anything acts on it: unknown types, unknown fields, wrong types and oversized
strings are refused with a stable error code. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from media.api import SlotKind, TrackKind

VERSION = 1
MAX_SDP = 64 * 1024
MAX_TEXT = 500
MAX_STATS_KEYS = 64


class ProtocolError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]
    required: bool = True
    max_len: int | None = None


_STR_ID = Field(str, True, 128)

# inbound (client -> server) message types and their fields
SCHEMAS: dict[str, dict[str, Field]] = {
    "join": {"token": Field(str, True, 4096), "lesson_id": Field(int, False), "client": Field(dict, False)},
    "offer": {"sdp": Field(str, True, MAX_SDP), "tracks": Field(dict, False), "slots": Field(dict, False)},
    "candidate": {
        "candidate": Field(str, True, 1024),
        "sdpMid": Field((str, type(None)), False, 64),
        "sdpMLineIndex": Field((int, type(None)), False),
    },
    "talkback_request": {},
    "talkback_cancel": {},
    "talkback_grant": {"participant_id": _STR_ID, "to_all": Field(bool, False)},
    "talkback_end": {},
    "raise_hand": {"up": Field(bool)},
    "text": {"text": Field(str, True, MAX_TEXT)},
    "stats": {"report": Field(dict)},
    # what a publisher's page sends right now (the lead's courseware starts and stops without renegotiating)
    "publishing": {"camera": Field(bool, False), "audio": Field(bool, False), "screen": Field(bool, False)},
    "leave": {},
    "ping": {},
}

# outbound (server -> client) types, for the documentation and the tests
EVENTS = (
    "joined",
    "standby",
    "answer",
    "error",
    "pong",
    "lead",
    "roster",
    "preview",
    "layout",
    "talkback",
    "talkback_requested",
    "hand",
    "text",
    "window_opened",
    "window_closed",
    "kicked",
    "move",
    "restart",
)


@dataclass(frozen=True)
class Message:
    type: str
    id: int | str | None
    data: dict[str, Any]


def parse(raw: str | bytes) -> Message:
    """Decode and validate one inbound frame; ProtocolError says what is wrong."""
    if isinstance(raw, bytes):
        raise ProtocolError("binary_frame", "frames are JSON text, not binary")
    try:
        obj = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_message", "a message is a JSON object")
    version = obj.get("v")
    if version != VERSION or isinstance(version, bool):
        raise ProtocolError("bad_version", f"this server speaks protocol version {VERSION} (send \"v\": {VERSION})")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise ProtocolError("unknown_type", f"unknown message type {str(kind)[:40]!r}")
    msg_id = obj.get("id")
    if msg_id is not None and (
        isinstance(msg_id, bool) or not isinstance(msg_id, int | str) or (isinstance(msg_id, str) and len(msg_id) > 64)
    ):
        raise ProtocolError("bad_field", "id is an integer or a short string")
    schema = SCHEMAS[kind]
    extra = set(obj) - set(schema) - {"v", "type", "id"}
    if extra:
        raise ProtocolError("bad_field", f"{kind}: unknown field(s) {', '.join(sorted(extra))[:100]}")
    data: dict[str, Any] = {}
    for name, spec in schema.items():
        if name not in obj:
            if spec.required:
                raise ProtocolError("missing_field", f"{kind}: {name} is required")
            continue
        value = obj[name]
        if isinstance(value, bool) and spec.kind is not bool and not (
            isinstance(spec.kind, tuple) and bool in spec.kind
        ):
            raise ProtocolError("bad_field", f"{kind}: {name} has the wrong type")
        if not isinstance(value, spec.kind):
            raise ProtocolError("bad_field", f"{kind}: {name} has the wrong type")
        if spec.max_len is not None and isinstance(value, str) and len(value) > spec.max_len:
            raise ProtocolError("too_long", f"{kind}: {name} is longer than {spec.max_len}")
        data[name] = value
    _check_details(kind, data)
    return Message(kind, msg_id, data)


def _check_details(kind: str, data: dict[str, Any]) -> None:
    if kind == "offer":
        for name, allowed in (("tracks", {k.value for k in TrackKind}), ("slots", {k.value for k in SlotKind})):
            mapping = data.get(name)
            if mapping is None:
                continue
            if len(mapping) > 16 or not all(
                isinstance(k, str) and len(k) <= 32 and isinstance(v, str) and v in allowed for k, v in mapping.items()
            ):
                raise ProtocolError("bad_field", f"offer: {name} maps mids to one of {', '.join(sorted(allowed))}")
        sdp = data["sdp"]
        if not sdp.lstrip().startswith("v=0") or "\nm=" not in sdp:
            raise ProtocolError("bad_sdp", "offer: sdp is not a session description with media (v=0 ... m=...)")
    elif kind == "stats":
        report = data["report"]
        if len(report) > MAX_STATS_KEYS or not all(
            isinstance(k, str)
            and len(k) <= 64
            and (v is None or (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)))
            for k, v in report.items()
        ):
            raise ProtocolError("bad_field", f"stats: report maps up to {MAX_STATS_KEYS} names to numbers")
    elif kind == "text" and not data["text"].strip():
        raise ProtocolError("bad_field", "text: the text is empty")
    elif kind == "join" and "client" in data:
        client = data["client"]
        if len(client) > 8 or not all(
            isinstance(k, str) and len(k) <= 32 and isinstance(v, str) and len(v) <= 128 for k, v in client.items()
        ):
            raise ProtocolError("bad_field", "join: client maps up to 8 names to short strings")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": VERSION, "type": kind, **fields}


def error(code: str, message: str, re: Message | None = None) -> dict[str, Any]:
    out = event("error", code=code, message=message)
    if re is not None:
        out["re"] = re.type
        if re.id is not None:
            out["id"] = re.id
    return out
