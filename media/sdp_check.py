"""Range and consistency checks of an SDP offer before aiortc sees it, with messages that say what is
wrong and on which line.

aiortc parses numbers with `int()` and trusts them: an SSRC of 2^32 or more is accepted and only blows
up later, when the SFU packs it into a keyframe request (`struct.error`, mid-switch); a format
attribute for a payload type the m-line does not list, or an m-line without a direction, ends in
messages such as "None is not in list". `check_offer` refuses such an offer up front with a
`MediaError` naming the line (signaling shows it as `bad_sdp`), and returns the text to hand to aiortc:
the same offer, with the RFC 3264 default direction (sendrecv) written into m-lines that state none.
"""

from __future__ import annotations

import re

from media.api import MediaError

_U32 = 0xFFFFFFFF
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_SETUP = ("actpass", "active", "passive", "holdconn")
_FINGERPRINT = re.compile(r"^[A-Za-z0-9-]+ [0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})+$")
_RTP_PROTO = re.compile(r"RTP/")


class SdpError(MediaError):
    """An offer the SFU refuses: the message names the line and what is wrong with it."""


def _fail(number: int, line: str, what: str) -> SdpError:
    shown = line if len(line) <= 80 else line[:77] + "..."
    return SdpError(f"bad SDP line {number} '{shown}': {what}")


def _int(token: str, low: int, high: int, what: str, number: int, line: str) -> int:
    if not token.isdigit() or len(token) > 12:
        raise _fail(number, line, f"{what} '{token}' is not a number")
    value = int(token)
    if not low <= value <= high:
        raise _fail(number, line, f"{what} {value} is out of range {low}..{high}")
    return value


class _Section:
    def __init__(self, number: int, line: str, kind: str, rtp: bool, formats: list[int]) -> None:
        self.number = number
        self.line = line
        self.kind = kind
        self.rtp = rtp
        self.formats = formats
        self.rtpmap: set[int] = set()
        self.mid: str | None = None
        self.direction: str | None = None


def check_offer(text: str) -> str:
    """Raise SdpError for an offer with an out-of-range number or an inconsistency aiortc would trip
    on; return the offer to apply (directions defaulted where missing)."""
    if not isinstance(text, str) or not text.strip():
        raise SdpError("bad SDP: the offer is empty")
    lines = text.replace("\r\n", "\n").split("\n")
    sections: list[_Section] = []
    mids: dict[str, int] = {}
    session_ice = False
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise _fail(number, line, "not a '<type>=<value>' line")
        kind, value = line[0], line[2:]
        section = sections[-1] if sections else None
        if kind == "m":
            parts = value.split()
            if len(parts) < 4:
                raise _fail(number, line, "an m-line needs media, port, protocol and at least one format")
            _int(parts[1].split("/")[0], 0, 65535, "port", number, line)
            rtp = bool(_RTP_PROTO.search(parts[2]))
            formats = [_int(f, 0, 127, "payload type", number, line) for f in parts[3:]] if rtp else []
            sections.append(_Section(number, line, parts[0], rtp, formats))
            continue
        if kind != "a":
            continue
        name, _, rest = value.partition(":")
        if name in ("ice-ufrag", "ice-pwd") and section is None:
            session_ice = True
        if section is None:
            if name == "setup" and rest not in _SETUP:
                raise _fail(number, line, f"setup must be one of {', '.join(_SETUP)}")
            if name == "fingerprint" and not _FINGERPRINT.match(rest):
                raise _fail(number, line, "a fingerprint is '<hash> <hex bytes separated by colons>'")
            continue
        if name in _DIRECTIONS:
            section.direction = name
        elif name == "mid":
            if not rest:
                raise _fail(number, line, "empty mid")
            if rest in mids:
                raise _fail(number, line, f"mid '{rest}' is already used by the m-line on line {mids[rest]}")
            mids[rest] = section.number
            section.mid = rest
        elif name == "rtpmap" and section.rtp:
            pt_text, _, codec = rest.partition(" ")
            pt = _int(pt_text, 0, 127, "payload type", number, line)
            if pt not in section.formats:
                raise _fail(number, line, f"payload type {pt} is not in its m-line (line {section.number})")
            fields = codec.split("/")
            if len(fields) < 2 or not fields[0]:
                raise _fail(number, line, "an rtpmap is '<pt> <codec>/<clock rate>[/<channels>]'")
            _int(fields[1], 1, _U32, "clock rate", number, line)
            if len(fields) > 2:
                _int(fields[2], 1, 255, "channel count", number, line)
            section.rtpmap.add(pt)
        elif name == "fmtp" and section.rtp:
            pt_text, _, params = rest.partition(" ")
            pt = _int(pt_text, 0, 127, "payload type", number, line)
            if pt not in section.formats:
                raise _fail(number, line, f"payload type {pt} is not in its m-line (line {section.number})")
            for param in params.split(";"):
                key, _, val = param.strip().partition("=")
                if key == "apt":
                    _int(val, 0, 127, "associated payload type (apt)", number, line)
        elif name == "rtcp-fb" and section.rtp:
            pt_text = rest.partition(" ")[0]
            if pt_text != "*":
                pt = _int(pt_text, 0, 127, "payload type", number, line)
                if pt not in section.formats:
                    raise _fail(number, line, f"payload type {pt} is not in its m-line (line {section.number})")
        elif name == "extmap":
            id_text = rest.partition(" ")[0].split("/")[0]
            ext_id = _int(id_text, 1, 255, "header extension id", number, line)
            if ext_id == 15:
                raise _fail(number, line, "header extension id 15 is reserved (RFC 8285)")
        elif name == "ssrc":
            _int(rest.partition(" ")[0], 0, _U32, "SSRC", number, line)
        elif name == "ssrc-group":
            parts = rest.split()
            if not parts:
                raise _fail(number, line, "an ssrc-group is '<semantics> <ssrc>...'")
            for token in parts[1:]:
                _int(token, 0, _U32, "SSRC", number, line)
            if parts[0] == "FID" and len(parts) != 3:
                raise _fail(number, line, "an FID group names exactly two SSRCs (media, retransmission)")
        elif name == "rtcp":
            _int(rest.partition(" ")[0], 0, 65535, "RTCP port", number, line)
        elif name == "setup" and rest not in _SETUP:
            raise _fail(number, line, f"setup must be one of {', '.join(_SETUP)}")
        elif name == "fingerprint" and not _FINGERPRINT.match(rest):
            raise _fail(number, line, "a fingerprint is '<hash> <hex bytes separated by colons>'")
        elif name == "candidate":
            parts = rest.split()
            if len(parts) < 8 or parts[6] != "typ":
                raise _fail(number, line, "a candidate is '<foundation> <component> <transport> <priority> "
                            "<address> <port> typ <type> ...'")
            _int(parts[1], 1, 256, "component", number, line)
            _int(parts[3], 0, _U32, "priority", number, line)
            _int(parts[5], 0, 65535, "port", number, line)
    media = [s for s in sections if s.kind in ("audio", "video")]
    if not media:
        raise SdpError("bad SDP: the offer has no audio or video m-line")
    if not session_ice and not all(_has(lines, s, ("a=ice-ufrag:", "a=ice-pwd:")) for s in media):
        raise SdpError("bad SDP: ICE username fragment (a=ice-ufrag) or password (a=ice-pwd) is missing")
    for s in media:
        if s.mid is None:
            raise _fail(s.number, s.line, "this m-line has no a=mid (the SFU needs BUNDLE with mids)")
        if s.rtp:
            for pt in s.formats:
                if pt >= 96 and pt not in s.rtpmap:
                    raise _fail(s.number, s.line, f"dynamic payload type {pt} has no a=rtpmap")
    missing = [s for s in media if s.direction is None]
    if not missing:
        return text
    # RFC 3264: no direction attribute means sendrecv. Write it in so aiortc does not trip on None.
    eol = "\r\n" if "\r\n" in text else "\n"
    out = lines[:]
    for s in reversed(missing):
        out.insert(s.number, "a=sendrecv")
    return eol.join(out)


def _has(lines: list[str], section: _Section, prefixes: tuple[str, ...]) -> bool:
    """Whether `section`'s lines (up to the next m-line) hold every prefix."""
    found = set()
    for line in lines[section.number :]:
        line = line.strip()
        if line.startswith("m="):
            break
        for p in prefixes:
            if line.startswith(p):
                found.add(p)
    return len(found) == len(prefixes)
