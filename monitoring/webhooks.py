"""Alerts to the team's chat robot or any HTTP receiver: WeCom (企业微信) and DingTalk (钉钉) group
robots, and a generic JSON webhook.

Each configured receiver is one line, "FORMAT URL [SECRET]" (`[alerts] alert_webhooks`). The payloads
are pure functions (`payload`, `signed_url`); `WebhookSender` is the I/O shell: a bounded queue per
receiver, sending never blocks the event loop, and it respects the robots' limit of 20 messages a
minute by folding what piles up into one message. A receiver that fails is retried with backoff and
logged once per cause per minute; alerts queued beyond the bound are counted and dropped, never
stalling monitoring.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from monitoring.alerts import SEVERITY_ORDER, Change, Severity

log = logging.getLogger(__name__)

FORMATS = ("json", "wecom", "dingtalk")
ROBOT_MIN_INTERVAL_S = 3.0  # WeCom and DingTalk accept 20 messages a minute per robot
MAX_QUEUED = 500
MAX_LINES = 15  # alerts listed in one robot message; the rest are counted
RETRIES = 3


class WebhookConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Webhook:
    format: str
    url: str
    secret: str = ""

    @property
    def label(self) -> str:
        """The receiver without its credentials, for logs."""
        parts = urllib.parse.urlsplit(self.url)
        return f"{self.format} {parts.scheme}://{parts.netloc}{parts.path}"


def parse_webhooks(lines: Sequence[str]) -> list[Webhook]:
    hooks = []
    for n, line in enumerate(lines, 1):
        words = line.split()
        if len(words) not in (2, 3):
            raise WebhookConfigError(f"alerts.alert_webhooks entry {n}: want 'FORMAT URL [SECRET]', got {len(words)} "
                                     "words")
        fmt, url = words[0].lower(), words[1]
        if fmt not in FORMATS:
            raise WebhookConfigError(f"alerts.alert_webhooks entry {n}: format {words[0]!r} is not one of "
                                     f"{', '.join(FORMATS)}")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise WebhookConfigError(f"alerts.alert_webhooks entry {n}: {parts.scheme}://{parts.netloc} is not an "
                                     "http(s) address")
        hooks.append(Webhook(fmt, url, words[2] if len(words) == 3 else ""))
    return hooks


def _line(change: Change, lang: str) -> str:
    a = change.alert
    zh = lang == "zh"
    mark = {"fired": "【告警】" if zh else "[ALERT]", "cleared": "【恢复】" if zh else "[CLEARED]",
            "acked": "【已认领】" if zh else "[ACKED]"}[change.kind]
    level = ("严重" if a.severity == Severity.CRITICAL else "警告") if zh else str(a.severity)
    text = a.summary_zh if zh else a.summary_en
    when = time.strftime("%H:%M:%S", time.localtime(a.cleared_at if change.kind == "cleared" and a.cleared_at
                                                    else a.fired_at))
    tail = ""
    if change.kind == "acked" and a.acked_by:
        tail = f"（{a.acked_by} 处理中）" if zh else f" ({a.acked_by} is on it)"
    return f"{mark}{level} {when} {text}{tail}"


def robot_text(changes: Sequence[Change], node: str) -> str:
    """One chat message for a batch of alert changes, newest last, in Chinese."""
    lines = [_line(c, "zh") for c in changes[:MAX_LINES]]
    if len(changes) > MAX_LINES:
        lines.append(f"……另有 {len(changes) - MAX_LINES} 条")
    head = f"三个课堂 · {node}" if node else "三个课堂"
    return head + "\n" + "\n".join(lines)


def payload(hook: Webhook, changes: Sequence[Change], node: str) -> dict[str, Any]:
    if hook.format == "wecom":
        return {"msgtype": "text", "text": {"content": robot_text(changes, node)}}
    if hook.format == "dingtalk":
        return {"msgtype": "text", "text": {"content": robot_text(changes, node)}, "at": {"isAtAll": False}}
    return {"source": "live-classroom", "node": node,
            "events": [{"event": c.kind, "alert": c.alert.to_json(), "text": _line(c, "en")} for c in changes]}


def signed_url(hook: Webhook, now_ms: int) -> str:
    """DingTalk's signed robot address: timestamp and base64 HMAC-SHA256 of "timestamp\\nsecret"."""
    if hook.format != "dingtalk" or not hook.secret:
        return hook.url
    digest = hmac.new(hook.secret.encode(), f"{now_ms}\n{hook.secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    joiner = "&" if urllib.parse.urlsplit(hook.url).query else "?"
    return f"{hook.url}{joiner}timestamp={now_ms}&sign={sign}"


def robot_refused(hook: Webhook, body: str) -> str | None:
    """The robots answer HTTP 200 with an error code in the body (a wrong key, a missing keyword)."""
    if hook.format == "json":
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:80]!r}"
    code = data.get("errcode", 0) if isinstance(data, dict) else 0
    return None if code == 0 else f"errcode {code}: {str(data.get('errmsg', ''))[:120]}"


@dataclass
class _Outbox:
    hook: Webhook
    queue: deque[Change] = field(default_factory=lambda: deque(maxlen=MAX_QUEUED))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str = ""
    logged: dict[str, float] = field(default_factory=dict)  # cause -> monotonic time last logged


class WebhookSender:
    def __init__(self, hooks: Sequence[Webhook], node: str, min_severity: str = "warning",
                 timeout_s: float = 5.0) -> None:
        self.node = node
        self.min_level = SEVERITY_ORDER[Severity(min_severity)]
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._boxes = [_Outbox(h) for h in hooks]
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if not self._boxes:
            return
        self._session = aiohttp.ClientSession(timeout=self.timeout)
        self._tasks = [asyncio.get_running_loop().create_task(self._run(box)) for box in self._boxes]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def send(self, changes: Sequence[Change]) -> None:
        wanted = [c for c in changes if SEVERITY_ORDER[c.alert.severity] >= self.min_level]
        if not wanted:
            return
        for box in self._boxes:
            room = MAX_QUEUED - len(box.queue)
            if len(wanted) > room:
                box.dropped += len(wanted) - room
            box.queue.extend(wanted)
            box.wake.set()

    def status(self) -> list[dict[str, Any]]:
        return [{"receiver": b.hook.label, "sent": b.sent, "failed": b.failed, "dropped": b.dropped,
                 "queued": len(b.queue), "last_error": b.last_error} for b in self._boxes]

    async def _run(self, box: _Outbox) -> None:
        robot = box.hook.format != "json"
        while True:
            await box.wake.wait()
            box.wake.clear()
            while box.queue:
                batch = list(box.queue)
                box.queue.clear()
                if await self._deliver(box, batch):
                    box.sent += 1
                else:
                    box.failed += 1
                if robot:
                    await asyncio.sleep(ROBOT_MIN_INTERVAL_S)  # what piles up meanwhile goes as one message

    async def _deliver(self, box: _Outbox, batch: list[Change]) -> bool:
        assert self._session is not None
        body = payload(box.hook, batch, self.node)
        for attempt in range(RETRIES):
            try:
                url = signed_url(box.hook, int(time.time() * 1000))
                async with self._session.post(url, json=body) as response:
                    text = await response.text()
                    if response.status >= 300:
                        cause = f"HTTP {response.status}"
                    else:
                        cause = robot_refused(box.hook, text) or ""
                        if not cause:
                            return True
                        self._log(box, cause)
                        return False  # the robot understood and refused: sending again will not help
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                cause = type(exc).__name__
            self._log(box, cause)
            await asyncio.sleep(0.5 * 2**attempt)
        return False

    def _log(self, box: _Outbox, cause: str) -> None:
        box.last_error = cause
        now = time.monotonic()
        if now - box.logged.get(cause, -1e9) >= 60.0:
            box.logged[cause] = now
            log.warning("alert webhook %s: %s", box.hook.label, cause)
