"""Real Chromium (Debian's, driven by Playwright) on loopback, and a served lesson to open in it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # receive-only pages would otherwise hide their address behind an mDNS name the SFU cannot resolve here
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    # a missing browser is a failed test, never a skip: CI must install it
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as p:
        # launch() gives every run a fresh temporary profile (user-data-dir), removed afterwards
        b = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def tech_nodes_tab(page: Page, base_url: str, username: str = "tech1",
                         password: str = "correct horse 1") -> None:
    """The technician logs in on /tech and opens the nodes tab (节点)."""
    await page.goto(base_url + "/login?next=/tech")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-button")
    await page.wait_for_url("**/tech")
    await page.click("nav.tabs button[data-tab='nodes_tab']")


async def teacher_on_air(page: Page, base_url: str, lesson_id: int, username: str = "wang",
                         password: str = "correct horse 1") -> None:
    """The teacher logs in on the page and starts broadcasting the lesson, as a teacher would."""
    await page.goto(base_url + "/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-button")
    await page.wait_for_url("**/teacher")
    await page.click(f"button.start[data-lesson='{lesson_id}']")
    await page.wait_for_selector("#air.live", timeout=20000)
