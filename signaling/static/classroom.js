// The receiving classroom's kiosk page. Opened once with its enrolment link (#enrol=...), the PC keeps a
// device token and from then on joins each of its lessons by itself when the window opens, full screen,
// showing "waiting for the teacher" while the lead is off air and reconnecting by itself after a drop.
// A direct join link (#token=...&lesson=...) serves observers and one-off joins.
import { api, el } from "./common.js";
import { applyTexts, languageButton, reasonText, t } from "./i18n.js";
import { LessonConnection } from "./rtc.js";

const DEVICE_KEY = "classroom-device-token";
const params = new URLSearchParams(location.hash.slice(1));

// One video element per slot, each bound to its slot's stream for the whole connection; the server's `layout`
// event says which one fills the screen and which stand beside it (docs/protocol.md). Nothing here is
// inferred from track mute events: Chromium fires none for a slot the SFU re-points.
const videos = {
  camera: el("video", { class: "slot parked", id: "camera-video", autoplay: true, playsinline: true, muted: true }),
  screen: el("video", { class: "slot parked", id: "screen-video", autoplay: true, playsinline: true, muted: true }),
  talkback_camera: el("video", { class: "slot parked", id: "talkback-video", autoplay: true, playsinline: true, muted: true }),
};
const labels = {
  camera: el("div", { class: "slot-label hidden", id: "camera-label" }),
  screen: el("div", { class: "slot-label hidden", id: "screen-label" }),
  talkback_camera: el("div", { class: "slot-label hidden", id: "talkback-label" }),
};
const audioLead = el("audio", { id: "audio-lead", autoplay: true });
const audioTalkback = el("audio", { id: "audio-talkback", autoplay: true });
const big = el("div", { class: "big", id: "overlay-title" });
const reason = el("div", { class: "reason", id: "overlay-reason" });
const soundButton = el("button", { class: "hidden", id: "sound", onclick: () => { playAll(); soundButton.classList.add("hidden"); } }, t("start_sound"));
const overlay = el("div", { class: "overlay", id: "overlay" }, big, reason, soundButton);
const banner = el("div", { class: "banner hidden", id: "banner" });
const title = el("div", { class: "title", id: "lesson-title" });
const badge = el("span", { class: "badge", id: "air" });
const handButton = el("button", { id: "hand", class: "secondary" });
const talkButton = el("button", { id: "talk", class: "secondary" });
const text = el("input", { id: "text", maxlength: "500", "data-t-placeholder": "message_to_teacher" });
const sendButton = el("button", { id: "send", class: "secondary", "data-t": "send" });
const fullButton = el("button", { id: "fullscreen", "data-t": "fullscreen" });
const bar = el("div", { class: "kiosk-bar" }, title, badge, handButton, talkButton, text, sendButton, fullButton, languageButton(render));
document.body.append(el("div", { class: "kiosk-stage" }, ...Object.values(videos), ...Object.values(labels),
  audioLead, audioTalkback, banner, overlay, bar));

// `layout` is the server's word on what the screen shows; `ready` which slots have a picture on this connection
const state = { phase: "connecting", reasonCode: "", reasonText: "", lesson: null, hand: false, talk: false,
  conn: null, streams: {}, layout: null, ready: {}, nextLesson: null, retries: 0, local: null, standby: null, drops: [] };
window.__classroom = state; // read by the end-to-end tests and handy when supporting a school on the phone

// a slot has a picture once a frame of its current stream was presented
function watchFrames(slot, video) {
  const stream = video.srcObject;
  const onFrame = () => {
    if (video.srcObject !== stream) return; // a new stream has its own callback
    if (state.conn) state.conn.mark(`picture_${slot}`); // the first picture of each slot on this connection
    if (!state.ready[slot]) { state.ready[slot] = true; render(); }
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onFrame);
  else video.addEventListener("loadeddata", onFrame, { once: true });
}

function setPhase(phase, code = "", message = "") {
  state.phase = phase;
  state.reasonCode = code;
  state.reasonText = message;
  render();
}

function render() {
  document.body.dataset.state = state.phase;
  document.body.dataset.reason = state.reasonCode;
  const live = state.phase === "live";
  const layout = state.layout || { lead: "off_air", main: null, side: [], talkback: {} };
  const replay = !!state.lesson?.replay;
  const main = live ? layout.main : null;
  const side = live ? layout.side.filter((slot) => slot in videos) : [];
  for (const [slot, video] of Object.entries(videos)) {
    const place = slot === main ? "main" : side.includes(slot) ? `side side-${side.indexOf(slot)}` : "parked";
    video.className = `slot ${place}`;
    const label = labels[slot];
    const shown = side.includes(slot);
    label.classList.toggle("hidden", !shown);
    if (shown) {
      label.className = `slot-label side-${side.indexOf(slot)}`;
      label.textContent = slot === "talkback_camera" ? (layout.talkback?.name || "") : slot === "camera" ? t("teacher") : t("courseware");
    }
  }
  document.body.dataset.main = main || "";
  document.body.dataset.side = side.join(",");
  // the overlay covers a screen with nothing true to show: no lesson, no teacher, a dropped network, no picture yet
  const waitingPicture = live && main && !state.ready[main];
  overlay.classList.toggle("hidden", live && !!main && !waitingPicture);
  overlay.classList.toggle("alarm", state.phase === "outage");
  reason.textContent = "";
  if (state.phase === "refused") {
    big.textContent = t("refused");
    reason.textContent = reasonText(state.reasonCode, state.reasonText);
  } else if (state.phase === "not_enrolled") {
    big.textContent = t("not_enrolled");
  } else if (state.phase === "enrolling") {
    big.textContent = t("enrolling");
  } else if (state.phase === "outage") {
    big.textContent = t("network_down");
    reason.textContent = t("network_retrying");
  } else if (state.phase === "reconnecting") {
    big.textContent = t("reconnecting");
  } else if (state.phase === "standby") {
    big.textContent = t("waiting_lesson");
    reason.textContent = state.nextLesson ? `${t("next_lesson")}: ${state.nextLesson}` : t("no_more_lessons");
  } else if (live && state.reasonCode === "media_stuck" && !state.ready[main]) {
    big.textContent = t("connecting");
    reason.textContent = t("media_stuck");
  } else if (live && layout.lead === "interrupted") {
    big.textContent = t("teacher_interrupted");
  } else if (live && !main && replay) {
    big.textContent = state.replayShown ? t("replay_ended") : t("replay_waiting");
  } else if (live && !main) {
    big.textContent = t("waiting_teacher");
  } else {
    big.textContent = t("connecting");
  }
  const speaking = live && !!layout.talkback?.you;
  banner.classList.toggle("hidden", !speaking);
  banner.textContent = speaking ? t("you_are_speaking") : "";
  const l = state.lesson;
  title.textContent = l ? `${l.subject} ${l.grade} · ${l.lead}` : t("classroom_title");
  const onAir = live && layout.lead === "on_air";
  if (onAir && replay) state.replayShown = true;
  badge.textContent = state.phase === "outage" ? t("network_down_short")
    : onAir ? t(replay ? "replay_on_air" : "on_air") : t("off_air");
  badge.classList.toggle("live", onAir);
  badge.classList.toggle("alarm", state.phase === "outage");
  const canAct = live && state.conn && state.conn.role !== "lead";
  const publishes = canAct && state.conn.role === "receiver";
  handButton.textContent = state.hand ? t("lower_hand") : t("raise_hand");
  talkButton.textContent = speaking ? t("you_are_speaking") : state.talk ? t("cancel_talk") : t("request_talk");
  handButton.disabled = !canAct;
  talkButton.disabled = !publishes;
  sendButton.disabled = !canAct;
  // a replayed lesson (录播) has no teacher at the other end: nobody to raise a hand to or talk to
  for (const b of [handButton, talkButton, text, sendButton]) b.classList.toggle("hidden", replay);
  applyTexts(bar);
}

function showSlot(slot, stream) {
  state.streams[slot] = stream;
  if (slot in videos) {
    state.ready[slot] = false;
    videos[slot].srcObject = stream;
    watchFrames(slot, videos[slot]);
  }
  if (slot === "audio") audioLead.srcObject = stream;
  if (slot === "talkback_audio") audioTalkback.srcObject = stream;
  playAll();
  render();
}

function playAll() {
  for (const media of Object.values(videos)) if (media.srcObject) media.play().catch(() => {});
  for (const media of [audioLead, audioTalkback]) {
    if (media.srcObject) media.play().catch(() => soundButton.classList.remove("hidden"));
  }
}

async function localMedia(wanted) {
  if (!wanted) return null;
  if (state.local) return state.local;
  try {
    state.local = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
  } catch {
    state.local = null; // a classroom without camera still watches; it just cannot be called on
  }
  return state.local;
}

async function connect(token, lessonId, { publish = true, force = false } = {}) {
  if (state.conn) state.conn.close();
  const later = localMedia(publish).then((local) => (local
    ? { camera: local.getVideoTracks()[0] || null, audio: local.getAudioTracks()[0] || null } : null));
  const pub = publish ? { camera: null, audio: null, force, later } : null;
  const conn = new LessonConnection({ token, lessonId, publish: pub });
  state.conn = conn;
  state.ready = {};
  conn.addEventListener("joined", (e) => {
    if (state.lesson?.id !== e.detail.lesson?.id) state.replayShown = false;
    state.lesson = e.detail.lesson;
    state.layout = e.detail.layout || null;
    conn.expectMedia = state.layout?.lead === "on_air";
    state.retries = 0;
    setPhase("live");
  });
  conn.addEventListener("slot", (e) => showSlot(e.detail.slot, e.detail.stream));
  conn.addEventListener("layout", (e) => {
    if (state.conn !== conn || (state.layout && e.detail.seq < state.layout.seq)) return;
    state.layout = e.detail;
    state.layoutAt = Date.now(); // when the screen last changed: a support question ("when did it switch?")
    if (e.detail.talkback?.you) state.talk = false; // called on: the request to speak is answered
    conn.expectMedia = e.detail.lead === "on_air";
    render();
  });
  conn.addEventListener("renegotiate", () => { state.ready = {}; render(); });
  conn.addEventListener("media_stuck", () => setPhase("live", "media_stuck"));
  conn.addEventListener("refused", (e) => {
    // a join token that no longer admits (expired, the window moved): a kiosk asks for a new one
    if (deviceToken() && ["expired", "window_closed", "not_yet_valid"].includes(e.detail.code)) { setTimeout(start, 1000); setPhase("reconnecting"); return; }
    setPhase("refused", e.detail.code, e.detail.message);
  });
  conn.addEventListener("kicked", (e) => setPhase("refused", e.detail.reason, ""));
  conn.addEventListener("window_closed", () => { state.lesson = null; state.layout = null; setTimeout(start, 3000); setPhase("standby"); });
  conn.addEventListener("lost", (e) => {
    if (state.conn !== conn) return;
    state.drops.push({ at: Date.now(), reason: e.detail.reason || `closed ${e.detail.code}` });
    state.drops.splice(0, state.drops.length - 50);
    setPhase(e.detail.outage || state.phase === "outage" ? "outage" : "reconnecting");
    // a lesson is running: try again at once and every second, with the same join token (valid to the window's end)
    const delay = Math.min(250, 50 * 2 ** state.retries++);
    setTimeout(() => { if (state.conn === conn) connect(token, lessonId, { publish, force }); }, delay);
  });
  conn.start();
}

function tokenRole(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).role || "";
  } catch {
    return "";
  }
}

function deviceToken() { return localStorage.getItem(DEVICE_KEY) || ""; }

async function enrol(token) {
  setPhase("enrolling");
  try {
    const result = await api("/api/v1/enrol", { method: "POST", body: { token }, token: "" });
    localStorage.setItem(DEVICE_KEY, result.device_token);
    history.replaceState(null, "", location.pathname); // the link's token leaves the address bar
  } catch (err) {
    setPhase("refused", err.code, err.message);
    return false;
  }
  return true;
}

// Device mode: find the lesson whose window is open now, else wait for one (server push plus polling).
async function start() {
  const device = deviceToken();
  if (!device) { setPhase("not_enrolled"); return; }
  let lessons;
  try {
    lessons = await api("/api/v1/me/lessons", { token: device });
  } catch (err) {
    if (err.status === 401) { setPhase("refused", err.code, err.message); return; }
    setPhase("reconnecting");
    setTimeout(start, 3000);
    return;
  }
  const open = lessons.find((l) => l.window_open);
  if (open) {
    try {
      const grant = await api(`/api/v1/lessons/${open.id}/join-token`, { method: "POST", body: { role: "receiver" }, token: device });
      closeStandby();
      await connect(grant.token, open.id, { publish: true });
      return;
    } catch (err) {
      if (err.status === 401) { setPhase("refused", err.code, err.message); return; }
    }
  }
  const upcoming = lessons.filter((l) => new Date(l.window_opens) > new Date());
  state.nextLesson = upcoming.length ? `${upcoming[0].subject} ${new Date(upcoming[0].start).toLocaleTimeString()}` : null;
  setPhase("standby");
  openStandby(device);
  setTimeout(() => { if (state.phase === "standby") start(); }, 30000);
}

function openStandby(device) {
  if (state.standby && state.standby.readyState <= WebSocket.OPEN) return;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  state.standby = ws;
  ws.onopen = () => ws.send(JSON.stringify({ v: 1, type: "join", token: device }));
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "window_opened" || (msg.type === "standby" && msg.open_lessons.length)) start();
    if (msg.type === "error") setPhase("refused", msg.code, msg.message);
  };
  ws.onclose = () => { if (state.standby === ws) state.standby = null; };
}

function closeStandby() { if (state.standby) { const ws = state.standby; state.standby = null; ws.close(); } }

handButton.addEventListener("click", () => { state.hand = !state.hand; state.conn?.send("raise_hand", { up: state.hand }); render(); });
talkButton.addEventListener("click", () => {
  state.talk = !state.talk;
  state.conn?.send(state.talk ? "talkback_request" : "talkback_cancel");
  render();
});
sendButton.addEventListener("click", () => { if (text.value.trim()) { state.conn?.send("text", { text: text.value.trim() }); text.value = ""; } });
fullButton.addEventListener("click", () => { document.documentElement.requestFullscreen?.().catch(() => {}); playAll(); });
// a kiosk goes full screen at the first touch of the keyboard or mouse (browsers require a gesture)
document.addEventListener("click", () => { if (!document.fullscreenElement) document.documentElement.requestFullscreen?.().catch(() => {}); }, { once: true });

async function boot() {
  render();
  if (params.get("enrol")) {
    if (!(await enrol(params.get("enrol")))) return;
    start();
  } else if (params.get("token")) {
    const token = params.get("token");
    const force = params.get("publish") === "1";
    // only a receiving classroom needs its camera (for talk-back); an observer's page never asks for it
    connect(token, params.get("lesson"), { publish: force || tokenRole(token) === "receiver", force });
  } else {
    start();
  }
}
boot();
