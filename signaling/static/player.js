// The recordings page: a teacher or administrator finds the recordings of the lessons they are entitled to
// (by date, teacher, subject, grade, kind) and plays them, seeking freely, with the camera and the courseware
// side by side (either one large, switchable). The files come through short-lived signed links.
import { api, el, header, logoutButton, requireLogin } from "./common.js";
import { applyTexts, t } from "./i18n.js";

function minutes(seconds) {
  if (seconds == null) return "–";
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

function when(iso) {
  return iso ? iso.slice(0, 16).replace("T", " ") : "";
}

if (requireLogin(["teacher", "admin"])) {
  const state = { items: [], current: null, screenLarge: false };
  window.__player = state;
  header("player_title", [logoutButton()], () => renderList());

  const from = el("input", { type: "date", id: "from" });
  const to = el("input", { type: "date", id: "to" });
  const subject = el("input", { type: "text", id: "subject", size: 8 });
  const grade = el("input", { type: "text", id: "grade", size: 8 });
  const kind = el("select", { id: "kind" },
    el("option", { value: "" }, "—"),
    ...["specialised", "master", "famous_school"].map((k) => el("option", { value: k, "data-t": `kind_${k}` }, t(`kind_${k}`))));
  const search = el("button", { id: "search", "data-t": "search", onclick: () => load() }, t("search"));
  const filters = el("div", { class: "filters" },
    el("label", {}, el("span", { "data-t": "date_from" }, t("date_from")), from),
    el("label", {}, el("span", { "data-t": "date_to" }, t("date_to")), to),
    el("label", {}, el("span", { "data-t": "subject" }, t("subject")), subject),
    el("label", {}, el("span", { "data-t": "grade" }, t("grade")), grade),
    el("label", {}, el("span", { "data-t": "kind" }, t("kind")), kind),
    search);
  const list = el("table", { id: "recordings", class: "grid" });
  const message = el("div", { id: "player-message" });
  const camera = el("video", { id: "camera", controls: true, playsinline: true, preload: "metadata" });
  const screen = el("video", { id: "screen", muted: true, playsinline: true, preload: "metadata" });
  const swap = el("button", { id: "swap", class: "secondary", "data-t": "swap_views", onclick: () => setLarge(!state.screenLarge) }, t("swap_views"));
  const title = el("h2", { id: "playing" });
  const stage = el("div", { id: "stage", class: "stage", hidden: true }, title,
    el("div", { class: "views" }, el("div", { class: "view camera" }, camera), el("div", { class: "view screen" }, screen)), swap);
  document.body.append(el("main", { class: "player" }, filters, message, stage, list));
  applyTexts();

  const setLarge = (screenLarge) => {
    state.screenLarge = screenLarge;
    stage.classList.toggle("screen-large", screenLarge);
  };

  // the courseware follows the camera's clock (the camera carries the sound and the controls)
  const follow = () => {
    if (!screen.src || screen.readyState < 1) return;
    if (Math.abs(screen.currentTime - camera.currentTime) > 0.3) screen.currentTime = camera.currentTime;
  };
  camera.addEventListener("play", () => { if (screen.src) screen.play().catch(() => {}); });
  camera.addEventListener("pause", () => screen.pause());
  camera.addEventListener("seeked", follow);
  camera.addEventListener("timeupdate", follow);
  camera.addEventListener("error", () => show(t("recording_unplayable"), true));

  function show(text, bad = false) {
    message.replaceChildren(text ? el("div", { class: bad ? "notice" : "notice ok", role: bad ? "alert" : "status" }, text) : "");
  }

  async function load() {
    const q = new URLSearchParams();
    for (const [name, input] of [["from", from], ["to", to], ["subject", subject], ["grade", grade], ["kind", kind]]) {
      if (input.value) q.set(name, input.value);
    }
    try {
      state.items = await api(`/api/v1/recordings?${q}`);
      show(state.items.length ? "" : t("no_recordings"));
    } catch (err) {
      state.items = [];
      show(err.message, true);
    }
    renderList();
  }

  function renderList() {
    const head = el("tr", {}, ...["lesson_time", "kind", "subject", "grade", "teacher", "lead_end", "duration", "state", ""].map(
      (k) => el("th", k ? { "data-t": k } : {}, k ? t(k) : "")));
    const rows = state.items.map((r) => el("tr", { dataset: { id: r.id } },
      el("td", {}, when(r.lesson.start)),
      el("td", {}, t(`kind_${r.lesson.kind}`)),
      el("td", {}, r.lesson.subject),
      el("td", {}, r.lesson.grade),
      el("td", {}, r.lesson.teacher),
      el("td", {}, r.lesson.lead),
      el("td", {}, minutes(r.duration_s)),
      el("td", {}, t(`rec_state_${r.state}`)),
      el("td", {}, r.state === "ready"
        ? el("button", { class: "play", onclick: () => play(r.id) }, t("play"))
        : (r.error || ""))));
    list.replaceChildren(head, ...rows);
  }

  async function play(id) {
    let rec;
    try {
      rec = await api(`/api/v1/recordings/${id}`);
    } catch (err) {
      show(err.status === 409 ? `${t("recording_corrupt")}: ${err.message}` : err.message, true);
      stage.hidden = true;
      return;
    }
    state.current = rec;
    show("");
    title.textContent = `${when(rec.lesson.start)} ${rec.lesson.subject} ${rec.lesson.grade} · ${rec.lesson.teacher}`;
    camera.src = rec.links.camera;
    if (rec.links.screen) { screen.src = rec.links.screen; } else { screen.removeAttribute("src"); screen.load(); }
    stage.classList.toggle("no-screen", !rec.links.screen);
    swap.hidden = !rec.links.screen;
    setLarge(false);
    stage.hidden = false;
    camera.play().catch(() => {});
  }

  const params = new URLSearchParams(location.search);
  if (params.get("id")) play(Number(params.get("id")));
  load();
}
