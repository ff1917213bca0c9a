// The lead teacher's page: today's lessons; broadcast camera, microphone and courseware (screen); the
// receiving classrooms as thumbnails and in a list, with their raised hands, requests to speak and connection
// quality; call on one.
import { api, clearSession, el, header, hhmm, logoutButton, requireLogin } from "./common.js";
import { applyTexts, lang, reasonText, t } from "./i18n.js";
import { LessonConnection, qualityClass } from "./rtc.js";

// texts of the thumbnails, kept here with the page that alone uses them
const THUMB_TEXTS = {
  zh: { thumbs: "接收教室画面", no_thumbs: "接收教室开启摄像头后，画面显示在这里", click_to_call: "点击画面请该教室发言" },
  en: { thumbs: "Receiving classrooms", no_thumbs: "Classrooms appear here once their cameras are on", click_to_call: "Click a picture to call on that classroom" },
};
const tt = (key) => THUMB_TEXTS[lang()][key];
// the lesson this tab is broadcasting: a reload (or a crashed tab restored) goes back on air by itself
const ON_AIR_KEY = "teacher-on-air";

if (requireLogin(["teacher", "admin"])) {
  // texts drawn from data follow a language switch at once
  header("teacher_title", [el("span", { id: "air", class: "badge" }), el("span", { id: "rec", class: "badge rec", hidden: true }), logoutButton()], () => {
    loadLessons(); renderRoster(); renderThumbs(); renderTalkback(); setAir(state.onAir); setRec(state.recording);
  });
  const lessonsList = el("ul", { class: "lessons", id: "lessons" });
  const status = el("div", { id: "status" });
  const preview = el("video", { id: "preview", autoplay: true, muted: true, playsinline: true });
  const talkback = el("video", { id: "talkback", autoplay: true, playsinline: true, muted: true });
  const talkbackAudio = el("audio", { id: "talkback-audio", autoplay: true });
  const talkbackLabel = el("div", { id: "talkback-label", class: "muted", "data-t": "no_talkback" });
  const screenButton = el("button", { id: "screen", class: "secondary", disabled: true, "data-t": "share_screen" });
  const stopButton = el("button", { id: "stop", class: "danger", disabled: true, "data-t": "stop_broadcast" });
  const endTalk = el("button", { id: "end-talkback", class: "secondary", disabled: true, "data-t": "end_talkback" });
  const roster = el("ul", { class: "roster", id: "roster" });
  const thumbsTitle = el("h3", { id: "thumbs-title" });
  const thumbsEmpty = el("div", { class: "muted", id: "thumbs-empty" });
  const thumbs = el("div", { class: "thumbs", id: "thumbs" });
  const messages = el("div", { class: "messages", id: "messages" });
  // Sized so that a 1366x768 screen shows everything at once: the pictures shrink, the classrooms never scroll away.
  document.body.append(el("div", { class: "teacher" },
    el("section", { class: "stage" },
      el("div", { class: "grid2 videos" },
        el("div", { class: "video-box" }, el("h3", { "data-t": "preview" }), preview),
        el("div", { class: "video-box" }, el("h3", { "data-t": "talkback_view" }), talkback, talkbackLabel, talkbackAudio)),
      el("div", { class: "row" }, screenButton, stopButton, endTalk, status),
      el("div", { class: "thumbs-panel" }, thumbsTitle, thumbs, thumbsEmpty)),
    el("aside", { class: "side" },
      el("div", { class: "panel lessons-panel" }, el("h3", { "data-t": "today" }), lessonsList),
      el("div", { class: "panel roster-panel" }, el("h3", { "data-t": "classrooms" }), roster),
      el("div", { class: "panel messages-panel" }, el("h3", { "data-t": "messages" }), messages))));
  applyTexts();

  // preview: the server's word on which classroom each preview slot (by mid) shows; tiles: mid -> its element
  const state = { conn: null, lessonId: null, local: null, screen: null, onAir: false, roster: [], talkback: null,
    preview: [], tiles: new Map(), layout: null };
  window.__teacher = state;

  const setAir = (on) => {
    state.onAir = on;
    const badge = document.getElementById("air");
    badge.textContent = on ? t("on_air") : t("off_air");
    badge.classList.toggle("live", on);
  };
  setAir(false);
  // whether the server records this lesson (its `joined` says; a `recording` event says it stopped)
  const setRec = (on) => {
    state.recording = on;
    const badge = document.getElementById("rec");
    badge.textContent = t("recording");
    badge.hidden = !on;
  };
  setRec(false);

  async function loadLessons() {
    let lessons = [];
    try { lessons = await api("/api/v1/me/lessons"); } catch (err) { status.textContent = err.message; return; }
    lessonsList.replaceChildren();
    if (!lessons.length) lessonsList.append(el("li", { class: "muted" }, t("no_lessons")));
    for (const l of lessons) {
      const mine = state.lessonId === l.id;
      const button = l.my_role === "observer"
        ? el("button", { class: "watch secondary", dataset: { lesson: l.id }, disabled: !l.window_open, onclick: () => watch(l) }, t("observer"))
        : el("button", { class: "start", dataset: { lesson: l.id }, disabled: !l.window_open || state.lessonId === l.id,
          onclick: () => broadcast(l) }, t("start_broadcast"));
      const live = mine || l.live;
      lessonsList.append(el("li", { dataset: { lesson: l.id }, class: live ? "live-lesson" : "" },
        el("div", { class: "lesson-text" },
          el("strong", {}, `${hhmm(l.start)}–${hhmm(l.end)} ${l.subject} ${l.grade}`),
          el("div", { class: "muted small" }, l.receivers.map((r) => r.name).join("、"))),
        live ? el("span", { class: "badge live" }, t("live_now"))
          : el("span", { class: "badge" }, l.window_open ? t("window_open") : t("window_not_open")),
        button));
    }
    resume(lessons);
  }

  // back on air after a reload, while the lesson's window is open; the teacher's "stop" ends that
  function resume(lessons) {
    const wanted = sessionStorage.getItem(ON_AIR_KEY);
    if (!wanted || state.lessonId || state.resuming) return;
    const lesson = lessons.find((l) => String(l.id) === wanted && l.window_open && l.my_role !== "observer");
    if (!lesson) { sessionStorage.removeItem(ON_AIR_KEY); return; }
    state.resuming = true;
    broadcast(lesson).finally(() => { state.resuming = false; });
  }

  // a master lesson of the teacher's research community: watched in its own tab, never publishing
  async function watch(lesson) {
    try {
      const grant = await api(`/api/v1/lessons/${lesson.id}/join-token`, { method: "POST", body: { role: "observer" } });
      window.open(`/classroom#token=${encodeURIComponent(grant.token)}&lesson=${lesson.id}`, "_blank", "noopener");
    } catch (err) {
      status.replaceChildren(el("div", { class: "notice" }, reasonText(err.code, err.message)));
    }
  }

  async function broadcast(lesson) {
    status.replaceChildren();
    try {
      state.local = state.local || await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: true });
    } catch (err) {
      status.replaceChildren(el("div", { class: "notice" }, String(err)));
      return;
    }
    preview.srcObject = state.local;
    const grant = await api(`/api/v1/lessons/${lesson.id}/join-token`, { method: "POST", body: { role: "lead" } })
      .catch((err) => { status.replaceChildren(el("div", { class: "notice" }, reasonText(err.code, err.message))); return null; });
    if (!grant) { sessionStorage.removeItem(ON_AIR_KEY); return; }
    state.lessonId = lesson.id;
    sessionStorage.setItem(ON_AIR_KEY, String(lesson.id));
    connect(grant.token, lesson.id, 0);
    loadLessons();
  }

  function connect(token, lessonId, retries) {
    // a new connection has new preview m-lines; the server says again who is in them
    state.preview = [];
    state.tiles = new Map();
    thumbs.replaceChildren();
    renderThumbs();
    const conn = new LessonConnection({ token, lessonId, publish: {
      camera: state.local.getVideoTracks()[0] || null, audio: state.local.getAudioTracks()[0] || null, screen: state.screen } });
    state.conn = conn;
    conn.addEventListener("joined", (e) => {
      setAir(false);
      setRec(Boolean(e.detail.recording));
      state.layout = e.detail.layout || null;
      state.talkback = e.detail.talkback.participant_id;
      state.talkbackName = "";
      renderTalkback();
      renderRoster();
    });
    conn.addEventListener("answer", () => {
      screenButton.disabled = false; stopButton.disabled = false;
      status.replaceChildren();
      declarePublishing();
    });
    conn.addEventListener("media_stuck", () => status.replaceChildren(el("div", { class: "notice", role: "alert" }, t("media_failed"))));
    conn.addEventListener("layout", (e) => {
      if (state.conn !== conn || (state.layout && e.detail.seq < state.layout.seq)) return;
      state.layout = e.detail;
      renderTalkback();
    });
    conn.addEventListener("lead", (e) => setAir(e.detail.on_air));
    conn.addEventListener("recording", (e) => {
      setRec(Boolean(e.detail.on));
      if (!e.detail.on) status.replaceChildren(el("div", { class: "notice", role: "alert" }, t("recording_stopped")));
    });
    conn.addEventListener("roster", (e) => {
      state.roster = e.detail.participants;
      setAir(e.detail.lead_on_air);
      renderRoster();
      renderThumbs();
      renderTalkback();
    });
    conn.addEventListener("preview", (e) => { if (state.conn === conn) { state.preview = e.detail.slots; renderThumbs(); } });
    conn.addEventListener("talkback", (e) => {
      state.talkback = e.detail.participant_id;
      state.talkbackName = e.detail.name || "";
      renderTalkback();
      renderRoster();
      renderThumbs();
    });
    conn.addEventListener("slot", (e) => {
      if (e.detail.slot === "talkback_camera") talkback.srcObject = e.detail.stream;
      if (e.detail.slot === "talkback_audio") { talkbackAudio.srcObject = e.detail.stream; talkbackAudio.play().catch(() => {}); }
      if (e.detail.slot === "preview") addTile(e.detail.mid, e.detail.stream);
    });
    conn.addEventListener("text", (e) => {
      if (e.detail.text) messages.prepend(el("p", {}, el("strong", {}, `${e.detail.name}: `), e.detail.text));
    });
    conn.addEventListener("refused", () => sessionStorage.removeItem(ON_AIR_KEY));
    conn.addEventListener("refused", (e) => status.replaceChildren(el("div", { class: "notice", role: "alert" }, reasonText(e.detail.code, e.detail.message))));
    conn.addEventListener("window_closed", () => { stop(); loadLessons(); });
    // disabled, password reset, token revoked, replaced: off air now, camera off, and say why
    conn.addEventListener("kicked", (e) => {
      stop();
      state.local?.getTracks().forEach((track) => track.stop());
      state.local = null;
      preview.srcObject = null;
      status.replaceChildren(el("div", { class: "notice", role: "alert", id: "kicked", dataset: { reason: e.detail.reason } },
        reasonText(e.detail.reason, e.detail.reason)));
      if (["account_disabled", "password_reset", "credential_changed"].includes(e.detail.reason)) clearSession();
    });
    conn.addEventListener("lost", (e) => {
      if (state.conn !== conn) return;
      setAir(false);
      if (e.detail.outage) status.replaceChildren(el("div", { class: "notice", role: "alert" }, t("reconnecting")));
      // on air: try again at once, then every second
      setTimeout(() => { if (state.conn === conn) connect(token, lessonId, retries + 1); }, Math.min(250, 50 * 2 ** retries));
    });
    conn.start();
  }

  function qualityText(q) {
    return [q.score != null ? `${t("quality")} ${q.score}` : "", q.rtt_ms != null ? `${t("rtt")} ${Math.round(q.rtt_ms)}ms` : "",
      q.loss != null ? `${t("loss")} ${(q.loss * 100).toFixed(1)}%` : "", q.fps != null ? `${t("fps")} ${q.fps}` : ""].filter(Boolean).join(" · ");
  }

  // the server sends the roster in name order (classroom 8 before classroom 22) with each link's state; a row is
  // rebuilt only when what it shows changed, so a button is never swapped under the teacher's finger
  const rows = new Map(); // participant id -> {li, sig}
  function renderRoster() {
    const wanted = new Set();
    state.roster.forEach((p, i) => {
      wanted.add(p.participant_id);
      const { quality, ...shape } = p;
      const sig = JSON.stringify([shape, state.talkback === p.participant_id, lang()]);
      let row = rows.get(p.participant_id);
      if (!row || row.sig !== sig) {
        const li = rosterRow(p);
        if (row) row.li.replaceWith(li);
        row = { li, sig };
        rows.set(p.participant_id, row);
      }
      // the figures change every second: only their text is replaced
      const link = p.link || "ok";
      const q = quality || {};
      const figures = row.li.querySelector(".quality");
      figures.className = `quality ${link === "ok" ? qualityClass(q.score) : ""}`;
      figures.textContent = link === "ok" ? qualityText(q) : "";
      if (roster.children[i] !== row.li) roster.insertBefore(row.li, roster.children[i] || null);
    });
    for (const [pid, row] of rows) if (!wanted.has(pid)) { row.li.remove(); rows.delete(pid); }
  }

  function rosterRow(p) {
    const q = p.quality || {};
    const link = p.link || "ok";
    const isTalking = state.talkback === p.participant_id;
    const here = link === "ok" || link === "unknown";
    return el("li", { dataset: { participant: p.participant_id, link }, class: `link-${link}` },
      el("div", {},
        el("div", {}, el("strong", {}, p.name), p.role === "observer" ? ` (${t("observer")})` : "",
          link !== "ok" ? el("span", { class: `badge link link-${link}` }, t(`link_${link}`)) : "",
          p.hand_up ? el("span", { class: "badge hand" }, t("hand_up")) : "",
          p.talkback_requested ? el("span", { class: "badge" }, t("wants_to_speak")) : "",
          isTalking ? el("span", { class: "badge live" }, t("talkback_now")) : ""),
        el("div", { class: `quality ${link === "ok" ? qualityClass(q.score) : ""}` }, link === "ok" ? qualityText(q) : "")),
      p.role === "receiver" && here ? el("div", { class: "row" },
        el("button", { class: "call", disabled: isTalking, onclick: () => state.conn.send("talkback_grant", { participant_id: p.participant_id, to_all: false }) }, t("call_on")),
        el("button", { class: "call-all secondary", onclick: () => state.conn.send("talkback_grant", { participant_id: p.participant_id, to_all: true }) }, t("call_on_all"))) : "");
  }

  // one tile per preview slot, in the order of the offer; shown while the server puts a classroom in it
  function addTile(mid, stream) {
    const video = el("video", { autoplay: true, muted: true, playsinline: true });
    video.srcObject = stream;
    const tile = el("figure", { class: "thumb hidden", dataset: { mid }, role: "button", tabindex: "0",
      onclick: () => callOn(tile.dataset.participant), onkeydown: (e) => { if (e.key === "Enter") callOn(tile.dataset.participant); } },
    video, el("span", { class: "quality-dot" }), el("span", { class: "hand-mark" }), el("figcaption", {}));
    state.tiles.set(mid, tile);
    thumbs.append(tile);
    video.play().catch(() => {});
    renderThumbs();
  }

  // who is speaking: also right after a reload, when only the joined message and the roster say so
  // the talk-back box shows the called classroom only while the server's layout says its picture is live
  function renderTalkback() {
    const pid = state.talkback;
    const name = state.talkbackName || state.roster.find((p) => p.participant_id === pid)?.name || pid;
    const showing = !!state.layout && state.layout.side.includes("talkback_camera");
    talkback.classList.toggle("parked", !showing);
    talkbackLabel.textContent = pid ? `${t("talkback_now")}: ${name}` : t("no_talkback");
    endTalk.disabled = !pid || !state.conn;
  }

  function callOn(participantId) {
    if (participantId && state.conn && state.talkback !== participantId) {
      state.conn.send("talkback_grant", { participant_id: participantId, to_all: false });
    }
  }

  function renderThumbs() {
    thumbsTitle.textContent = tt("thumbs");
    const byId = new Map(state.roster.map((p) => [p.participant_id, p]));
    let shown = 0;
    for (const slot of state.preview) {
      const tile = state.tiles.get(slot.mid);
      if (!tile) continue;
      const pid = slot.participant_id;
      tile.classList.toggle("hidden", !pid);
      if (!pid) { delete tile.dataset.participant; continue; }
      shown += 1;
      const p = byId.get(pid) || {};
      const q = p.quality || {};
      tile.dataset.participant = pid;
      tile.dataset.link = p.link || "ok";
      tile.classList.toggle("lost", p.link === "lost");
      tile.title = `${slot.name || p.name || pid} · ${tt("click_to_call")}`;
      tile.querySelector("figcaption").textContent = `${slot.name || p.name || pid}${p.link && p.link !== "ok" ? ` · ${t(`link_${p.link}`)}` : ""}`;
      tile.querySelector(".quality-dot").className = `quality-dot ${p.link === "ok" || !p.link ? qualityClass(q.score) : "q-bad"}`;
      tile.querySelector(".quality-dot").title = q.score != null ? `${t("quality")} ${q.score}` : "";
      tile.classList.toggle("hand-up", !!(p.hand_up || p.talkback_requested));
      // a text mark: classroom PCs often have no colour emoji font
      tile.querySelector(".hand-mark").textContent = p.talkback_requested ? t("wants_to_speak") : t("hand_up");
      tile.classList.toggle("talking", state.talkback === pid);
    }
    thumbsEmpty.textContent = shown ? "" : tt("no_thumbs");
  }

  // tell the server what this page sends: the classrooms' screens change the moment courseware starts or stops
  function declarePublishing() {
    state.conn?.send("publishing", { camera: !!state.local?.getVideoTracks()[0], audio: !!state.local?.getAudioTracks()[0],
      screen: !!state.screen });
  }

  async function stopScreen() {
    const track = state.screen;
    if (!track) return;
    state.screen = null;
    track.stop();
    screenButton.textContent = t("share_screen");
    declarePublishing();
    await state.conn?.replaceTrack("screen", null);
  }

  screenButton.addEventListener("click", async () => {
    if (state.screen) { await stopScreen(); return; }
    try {
      const display = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 10 } });
      const track = display.getVideoTracks()[0];
      state.screen = track;
      // the browser's own "stop sharing" bar ends the track: the same as the button
      track.addEventListener("ended", () => { if (state.screen === track) stopScreen(); });
      await state.conn?.replaceTrack("screen", track);
      screenButton.textContent = t("stop_screen");
      declarePublishing();
    } catch { /* the teacher cancelled the picker */ }
  });
  endTalk.addEventListener("click", () => state.conn?.send("talkback_end"));
  function stop() {
    sessionStorage.removeItem(ON_AIR_KEY);
    const conn = state.conn;
    state.conn = null;
    if (state.screen) { state.screen.stop(); state.screen = null; screenButton.textContent = t("share_screen"); }
    conn?.close();
    state.lessonId = null;
    setAir(false);
    setRec(false);
    screenButton.disabled = true;
    stopButton.disabled = true;
  }
  stopButton.addEventListener("click", () => { stop(); loadLessons(); });

  loadLessons();
  setInterval(() => { if (!state.conn) loadLessons(); }, 30000);
}
