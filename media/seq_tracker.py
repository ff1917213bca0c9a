"""Which stream an inbound sequence number belongs to: the current one, or one that replaced it.

A publisher's sequence numbers can leave their line for good reasons (an encoder restarting on the same
SSRC, usually lower; a box that jumps after a reboot) and for bad ones (a buggy or hostile sender
jumping ahead). Believing any single packet lets one packet lock the real stream out as "old"; never
believing a jump locks out a restarted stream. As libwebrtc's and LiveKit's receive buffers do, the
tracker follows whoever sends a *run* of in-order packets off the current line:

- a packet at most `max_gap` ahead of the highest number is the current stream (loss in between is
  NACKed): NEW;
- a packet behind it, inside the history window, that the caller recognises (a gap it is waiting for,
  or an exact duplicate) is the current stream, late: LATE;
- anything else is off the line: dropped, unless it continues a run of `resync_run` in-order packets
  off the line, which means the stream restarted or jumped there: RESTART (the caller starts a new
  mapping). A packet of the current stream in between breaks the run, so interleaved junk never wins.

O(1) per packet, no allocation; the caller's `known` check runs only for packets behind the highest.
"""

from __future__ import annotations

from collections.abc import Callable

NEW = 0
LATE = 1
DROP = 2
RESTART = 3


class SeqTracker:
    __slots__ = ("max_gap", "max_seq", "restarts", "resync_run", "run", "run_next", "window")

    def __init__(self, max_gap: int, window: int, resync_run: int = 4) -> None:
        self.max_gap = max_gap
        self.window = window
        self.resync_run = max(2, resync_run)
        self.max_seq = -1
        self.run = 0
        self.run_next = -1
        self.restarts = 0

    def update(self, seq: int, known: Callable[[int], bool]) -> int:
        top = self.max_seq
        if top < 0:
            self.max_seq = seq
            return NEW
        d = (seq - top) & 0xFFFF
        if d == 0:
            return LATE  # a duplicate of the newest packet
        if d < 0x8000:
            if d <= self.max_gap:
                self.max_seq = seq
                self.run = 0
                return NEW
        elif 0x10000 - d <= self.window and known(seq):
            return LATE
        # Off the current line: believed only as part of a run.
        if seq == self.run_next:
            self.run += 1
        else:
            self.run = 1
        self.run_next = (seq + 1) & 0xFFFF
        if self.run >= self.resync_run:
            self.run = 0
            self.max_seq = seq
            self.restarts += 1
            return RESTART
        return DROP
