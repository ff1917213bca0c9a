// The administrator's page: import the directory, the timetable and attendance evidence from Excel or CSV
// (errors listed by sheet and line), settle lessons entered late, correct settled lessons (one or many)
// and read their history, browse the calendar, read quota and workload reports as charts, manage
// accounts and classroom enrolment links (with QR codes), read the audit trail with filters, see what is live.
import { api, el, header, hhmm, logoutButton, notice, requireLogin } from "./common.js";
import { applyTexts, lang, t } from "./i18n.js";
import qrcode from "./vendor/qrcode.js";
import { hbars } from "./charts.js";

const ADMIN_TABS = ["import", "settle", "corrections", "calendar", "reports", "replays", "accounts", "enrol", "audit", "live"];
const REVIEWER_TABS = ["review"];  // a teacher the county made a reviewer (教研员) sees the review list only

if (requireLogin(["admin", "teacher"])) {
  const TABS = sessionStorage.getItem("role") === "teacher" ? REVIEWER_TABS : ADMIN_TABS;
  const tabs = el("nav", { class: "tabs", id: "tabs" });
  const view = el("main", { id: "view" });
  header("admin_title", [tabs, logoutButton()]);
  document.body.append(view);
  let current = location.hash.slice(1) || TABS[0];
  const show = (name) => {
    current = TABS.includes(name) ? name : TABS[0];
    history.replaceState(null, "", `#${current}`);
    tabs.replaceChildren(...TABS.map((n) => el("button", { class: n === current ? "active" : "", id: `tab-${n}`, onclick: () => show(n) }, t(`tab_${n}`))));
    view.replaceChildren();
    RENDER[current](view).catch((err) => notice(view, err.message));
    applyTexts(view);
  };
  const RENDER = { import: renderImport, settle: renderSettle, corrections: renderCorrections, calendar: renderCalendar, reports: renderReports, accounts: renderAccounts,
    enrol: renderEnrol, audit: renderAudit, live: renderLive, review: renderReview, replays: renderReplays };
  show(current);
  document.getElementById("lang").addEventListener("click", () => show(current));
}

// One import panel: a file, "check only", the result with every problem by sheet and line.
function importPanel({ id, title, path, accept, template, summary, extra = [] }) {
  const file = el("input", { type: "file", id: `${id}-file`, accept });
  const dry = el("input", { type: "checkbox", id: `${id}-dry` });
  const result = el("div", { id: `${id}-result` });
  const go = el("button", { id: `${id}-go` }, t("do_import"));
  go.addEventListener("click", async () => {
    if (!file.files.length) return;
    const form = new FormData();
    form.append("file", file.files[0]);
    go.disabled = true;
    result.replaceChildren();  // the last file's result must not stand for this one while it is read
    try {
      const options = extra.map((x) => x.query()).join("");
      const r = await api(`${path}?dry_run=${dry.checked ? 1 : 0}${options}&filename=${encodeURIComponent(file.files[0].name)}`, { method: "POST", form });
      const rows = [...r.errors, ...(r.warnings || [])];
      result.replaceChildren(
        el("div", { class: r.ok ? "notice ok" : "notice", role: "status" },
          r.ok ? `${t("import_ok")}: ${summary(r)}` : `${t("import_failed")} (${r.errors.length})`),
        rows.length ? el("table", { id: `${id}-errors` },
          el("tr", {}, el("th", {}, t("line")), el("th", {}, t("code")), el("th", {}, t("reason"))),
          rows.map((p) => el("tr", { class: p.severity === "error" ? "error" : "muted" },
            el("td", {}, p.line === undefined ? (p.sheet || "") : (p.sheet ? `${p.sheet} ${p.line}` : p.line)),
            el("td", {}, p.code), el("td", {}, lang() === "zh" ? (p.message_zh || p.message) : p.message)))) : "");
    } catch (err) {
      notice(result, err.message);
    } finally {
      go.disabled = false;
    }
  });
  const download = template ? el("button", { class: "secondary", id: `${id}-template`, onclick: () => downloadFile(`/api/v1/templates/${template}.xlsx`, `${template}.xlsx`) }, t("download_template")) : "";
  return el("div", { class: "panel" }, el("h3", {}, t(title)), el("div", { class: "row" }, file,
    el("label", {}, dry, " ", t("dry_run")), ...extra.map((x) => x.node), go, download), result);
}

async function downloadFile(path, name) {
  const response = await api(path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  el("a", { href: url, download: name }).click();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

async function renderImport(view) {
  const settle = el("input", { type: "checkbox", id: "evidence-settle", checked: true });
  view.append(
    importPanel({ id: "directory", title: "import_directory", path: "/api/v1/directory/import", accept: ".xlsx,.csv,text/csv",
      template: "directory", summary: (r) => `+${r.added} ~${r.changed} =${r.unchanged} (${r.rows})` }),
    importPanel({ id: "import", title: "import_file", path: "/api/v1/timetable/import", accept: ".csv,.xlsx,text/csv",
      template: "timetable", summary: (r) => `${r.lessons_added} + ${r.lessons_unchanged} (${r.rows})` }),
    importPanel({ id: "evidence", title: "import_evidence", path: "/api/v1/evidence/import", accept: ".csv,.xlsx,text/csv",
      template: "evidence", summary: (r) => `${r.lessons} / ${r.unchanged} / ${r.settled} (${r.rows})`,
      extra: [{ node: el("label", {}, settle, " ", t("settle_after")), query: () => `&settle=${settle.checked ? 1 : 0}` }] }));
}

// Lessons entered after their time: pick some (or all), settle them from evidence or explicitly, with a reason.
async function renderSettle(view) {
  const list = el("table", { id: "awaiting" });
  const how = el("select", { id: "settle-how" }, ["evidence", "delivered", "missed"].map((h) => el("option", { value: h }, t(`how_${h}`))));
  const reason = el("input", { id: "settle-reason", class: "wide", placeholder: t("reason") });
  const result = el("div", { id: "settle-result" });
  const all = el("input", { type: "checkbox", id: "settle-all" });
  let boxes = [];
  const draw = async () => {
    const lessons = await api("/api/v1/lessons?status=awaiting_evidence&limit=2000");
    boxes = lessons.map((l) => ({ id: l.id, box: el("input", { type: "checkbox", class: "pick" }) }));
    list.replaceChildren(el("tr", {}, el("th", {}, all), el("th", {}, "#"), el("th", {}, t("time")), el("th", {}, t("kind")), el("th", {}, t("subject")), el("th", {}, t("hours"))),
      ...lessons.map((l, i) => el("tr", {}, el("td", {}, boxes[i].box), el("td", {}, l.id), el("td", {}, `${l.start.slice(0, 10)} ${hhmm(l.start)}`),
        el("td", {}, l.kind_label), el("td", {}, `${l.subject} ${l.grade}`), el("td", {}, l.hours))));
    if (!lessons.length) list.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, t("none_awaiting"))));
  };
  all.addEventListener("change", () => boxes.forEach((b) => { b.box.checked = all.checked; }));
  const go = el("button", { id: "settle-go", onclick: async () => {
    const ids = boxes.filter((b) => b.box.checked).map((b) => b.id);
    if (!ids.length) return;
    try {
      const r = await api("/api/v1/lessons/settle", { method: "POST", body: { lesson_ids: ids, how: how.value, reason: reason.value } });
      result.replaceChildren(el("div", { class: "notice ok", role: "status" }, `${t("settled")}: ${r.lessons.length}`));
      reason.value = "";
      all.checked = false;
      draw();
    } catch (err) { notice(result, err.message); }
  } }, t("settle"));
  view.append(el("div", { class: "panel row" }, how, reason, go), result, el("div", { class: "panel" }, list));
  await draw();
}

// Corrections of settled lessons (one or many, one audited operation) and their history with filters.
async function renderCorrections(view) {
  const ids = el("input", { id: "correct-ids", placeholder: t("lesson_ids") });
  const to = el("select", { id: "correct-status" }, ["delivered", "missed"].map((s) => el("option", { value: s }, t(`how_${s}`))));
  const reason = el("input", { id: "correct-reason", class: "wide", placeholder: t("reason") });
  const result = el("div", { id: "correct-result" });
  const room = el("input", { id: "attend-classroom", placeholder: t("classroom_id"), size: 8 });
  const attended = el("select", { id: "attend-value" }, el("option", { value: "1" }, t("attended")), el("option", { value: "0" }, t("absent")));
  const history = el("table", { id: "corrections" });
  const filterLesson = el("input", { id: "filter-lesson", placeholder: t("lesson"), size: 8 });
  const filterKind = el("select", { id: "filter-kind" }, el("option", { value: "" }, "—"),
    ...["status", "settlement", "attendance", "cancel"].map((k) => el("option", { value: k }, t(`kind_${k}`))));
  const parseIds = () => ids.value.split(/[\s,，;；]+/).filter(Boolean).map(Number);
  const draw = async () => {
    const q = new URLSearchParams();
    if (filterLesson.value) q.set("lesson_id", filterLesson.value);
    if (filterKind.value) q.set("kind", filterKind.value);
    const rows = await api(`/api/v1/corrections?${q}`);
    history.replaceChildren(el("tr", {}, ["at", "lesson", "kind", "before", "after", "classroom", "actor", "reason"].map((k) => el("th", {}, t(k)))),
      ...rows.reverse().map((r) => el("tr", {}, el("td", {}, new Date(r.created_at * 1000).toLocaleString()), el("td", {}, r.lesson_id),
        el("td", {}, t(`kind_${r.kind}`)), el("td", {}, statusText(r.from_status)), el("td", {}, statusText(r.to_status)), el("td", {}, r.classroom_id ?? ""),
        el("td", {}, r.actor), el("td", {}, r.batch ? `${r.reason} [${r.batch}]` : r.reason))));
  };
  const done = (n) => { result.replaceChildren(el("div", { class: "notice ok", role: "status" }, `${t("corrected")}: ${n}`)); reason.value = ""; draw(); };
  const correct = el("button", { id: "correct-go", onclick: async () => {
    try {
      const r = await api("/api/v1/corrections", { method: "POST", body: { lesson_ids: parseIds(), status: to.value, reason: reason.value } });
      done(r.lessons.length);
    } catch (err) { notice(result, err.message); }
  } }, t("correct"));
  const attend = el("button", { id: "attend-go", class: "secondary", onclick: async () => {
    try {
      const [lesson] = parseIds();
      await api(`/api/v1/lessons/${lesson}/attendance-corrections`, { method: "POST",
        body: { classroom_id: Number(room.value), attended: attended.value === "1", reason: reason.value } });
      done(1);
    } catch (err) { notice(result, err.message); }
  } }, t("correct_attendance"));
  filterLesson.addEventListener("change", draw);
  filterKind.addEventListener("change", draw);
  view.append(el("div", { class: "panel" }, el("div", { class: "row" }, ids, to, reason, correct),
    el("div", { class: "row" }, room, attended, attend)), result,
  el("div", { class: "panel" }, el("div", { class: "row" }, el("span", {}, t("filter")), filterLesson, filterKind), history));
  await draw();
}

// a lesson status in the page's language; anything else (an attendance value) as it is
function statusText(value) {
  const key = `status_${value}`;
  return value && t(key) !== key ? t(key) : (value ?? "");
}

async function renderCalendar(view) {
  let monday = new Date();
  monday.setHours(0, 0, 0, 0);
  monday.setDate(monday.getDate() - ((monday.getDay() + 6) % 7));
  const grid = el("div", { class: "cal", id: "calendar" });
  const label = el("strong", {});
  const draw = async () => {
    const end = new Date(monday.getTime() + 7 * 86400000);
    const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}T00:00`;
    const lessons = await api(`/api/v1/lessons?from=${iso(monday)}&to=${iso(end)}&limit=2000`);
    label.textContent = `${monday.toLocaleDateString()} – ${new Date(end - 86400000).toLocaleDateString()} (${lessons.length})`;
    grid.replaceChildren();
    for (let i = 0; i < 7; i++) {
      const day = new Date(monday.getTime() + i * 86400000);
      const todays = lessons.filter((l) => new Date(l.start).toDateString() === day.toDateString());
      grid.append(el("div", { class: "day" }, el("h4", {}, day.toLocaleDateString(lang() === "en" ? "en" : "zh-CN", { weekday: "short", month: "numeric", day: "numeric" })),
        todays.slice(0, 12).map((l) => el("div", { class: `lesson ${l.status}`, title: `${l.kind_label} #${l.id} ${l.status}` },
          `${hhmm(l.start)} ${l.subject} ${l.grade}`)),
        todays.length > 12 ? el("div", { class: "muted" }, `+${todays.length - 12}`) : ""));
    }
  };
  view.append(el("div", { class: "panel" }, el("div", { class: "row" },
    el("button", { class: "secondary", onclick: () => { monday = new Date(monday.getTime() - 7 * 86400000); draw(); } }, t("week_prev")),
    label,
    el("button", { class: "secondary", onclick: () => { monday = new Date(monday.getTime() + 7 * 86400000); draw(); } }, t("week_next"))),
  grid));
  await draw();
}

// A horizontal bar chart (ECharts): one bar per row, green where it reaches its target, the target in red.
function barChart(rows, options) {
  const node = el("div", { class: "chart bars" });
  requestAnimationFrame(() => hbars(node, rows, options));  // once in the page: ECharts needs its width
  return node;
}

async function renderReports(view) {
  const semesters = await api("/api/v1/semesters");
  const pick = el("select", { id: "semester" }, semesters.map((s) => el("option", { value: s.id }, s.name)));
  const out = el("div", { id: "report" });
  const draw = async () => {
    const id = pick.value;
    const r = await api(`/api/v1/reports?format=json${id ? `&semester_id=${id}` : ""}`);
    const teachers = (r.teachers || []).filter((x) => x.minimum > 0).slice(0, 25);
    const schools = (r.schools || []).slice(0, 25);
    const workload = [...(r.workload || [])].sort((a, b) => b.weighted_hours - a.weighted_hours).slice(0, 25);
    out.replaceChildren(
      el("div", { class: "panel" }, el("h3", {}, `${t("report_teachers")} (${r.semester.name}, ${r.as_of})`),
        barChart(teachers, { value: (x) => x.delivered, target: (x) => x.minimum, label: (x) => `${x.teacher} ${x.school}` })),
      el("div", { class: "panel" }, el("h3", {}, t("report_schools")),
        barChart(schools, { value: (x) => Number(x.average_per_week) || 0, target: (x) => Number(x.minimum_per_week) || 5, label: (x) => `${x.school} (${x.role})` })),
      el("div", { class: "panel" }, el("h3", {}, t("report_workload")),
        barChart(workload, { value: (x) => Number(x.weighted_hours) || 0, label: (x) => `${x.teacher} ${x.school}` })));
  };
  const download = el("button", { class: "secondary", id: "xlsx", onclick: async () => {
    const response = await api(`/api/v1/reports?format=xlsx&lang=${lang()}${pick.value ? `&semester_id=${pick.value}` : ""}`, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    el("a", { href: url, download: "report.xlsx" }).click();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  } }, t("download_xlsx"));
  pick.addEventListener("change", draw);
  view.append(el("div", { class: "panel row" }, el("span", {}, t("semester")), pick, download), out);
  if (semesters.length) {
    const today = new Date().toISOString().slice(0, 10);
    const currentSemester = semesters.find((s) => s.start <= today && today <= s.end);
    if (currentSemester) pick.value = currentSemester.id;
    await draw();
  }
}

async function renderAccounts(view) {
  const list = el("table", { id: "accounts" });
  const draw = async () => {
    const accounts = await api("/api/v1/accounts");
    list.replaceChildren(el("tr", {}, el("th", {}, "#"), el("th", {}, t("username")), el("th", {}, t("role")), el("th", {}, t("teacher_id")), el("th", {}, "")),
      ...accounts.map((a) => el("tr", {}, el("td", {}, a.id), el("td", {}, a.username), el("td", {}, a.role), el("td", {}, a.teacher_id ?? ""),
        el("td", {}, el("button", { class: "secondary", onclick: async () => { await api(`/api/v1/accounts/${a.id}`, { method: "POST", body: { disabled: !a.disabled } }); draw(); } },
          a.disabled ? t("enable") : t("disable"))))));
  };
  const username = el("input", { id: "new-username", placeholder: t("username") });
  const password = el("input", { id: "new-password", type: "password", placeholder: t("password") });
  const role = el("select", { id: "new-role" }, ["teacher", "admin", "technician"].map((r) => el("option", { value: r }, r)));
  const [teachers, schools, counties] = await Promise.all([api("/api/v1/teachers"), api("/api/v1/schools"), api("/api/v1/counties")]);
  // a technician looks after one county (the API also takes region_id for a whole region)
  const county = el("select", { id: "new-county" }, el("option", { value: "" }, "—"),
    ...counties.map((x) => el("option", { value: x.id }, x.name)));
  const schoolName = Object.fromEntries(schools.map((s) => [s.id, s.name]));
  const teacher = el("select", { id: "new-teacher" }, el("option", { value: "" }, "—"),
    ...teachers.map((x) => el("option", { value: x.id }, `${schoolName[x.school_id] || ""} ${x.name}`)));
  const result = el("div", {});
  const create = el("button", { id: "create-account", onclick: async () => {
    try {
      await api("/api/v1/accounts", { method: "POST", body: { username: username.value, password: password.value, role: role.value,
        teacher_id: teacher.value ? Number(teacher.value) : null, county_id: county.value ? Number(county.value) : null } });
      username.value = password.value = "";
      teacher.value = "";
      result.replaceChildren();
      draw();
    } catch (err) { notice(result, err.message); }
  } }, t("create"));
  view.append(el("div", { class: "panel row" }, username, password, role, teacher, county, create), result, el("div", { class: "panel" }, list));
  await draw();
}

function qrSvg(text) {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const markup = qr.createSvgTag({ cellSize: 4, margin: 2, scalable: true });
  const doc = new DOMParser().parseFromString(markup, "image/svg+xml");
  return el("div", { class: "qr", id: "qr" }, document.importNode(doc.documentElement, true));
}

async function renderEnrol(view) {
  const [classrooms, schools] = await Promise.all([api("/api/v1/classrooms"), api("/api/v1/schools")]);
  const schoolName = Object.fromEntries(schools.map((s) => [s.id, s]));
  const receiving = classrooms.filter((c) => schoolName[c.school_id]?.is_receiving || schoolName[c.school_id]?.is_teaching_point);
  const pick = el("select", { id: "enrol-classroom" }, receiving.map((c) => el("option", { value: c.id }, `${schoolName[c.school_id].name} ${c.name}`)));
  const made = el("div", { id: "enrol-made" });
  const list = el("table", { id: "enrolments" });
  const draw = async () => {
    const rows = await api("/api/v1/enrolments");
    list.replaceChildren(el("tr", {}, el("th", {}, "#"), el("th", {}, t("classroom")), el("th", {}, t("enrolled_device")), el("th", {}, t("at")), el("th", {}, "")),
      ...rows.map((r) => el("tr", {}, el("td", {}, r.id), el("td", {}, r.name), el("td", {}, r.enrolled ? "✓" : ""),
        el("td", {}, new Date(r.created_at * 1000).toLocaleString()),
        el("td", {}, r.revoked_at ? t("revoke") + " ✓" : el("button", { class: "danger", onclick: async () => { await api(`/api/v1/enrolments/${r.id}/revoke`, { method: "POST" }); draw(); } }, t("revoke"))))));
  };
  const create = el("button", { id: "create-link", onclick: async () => {
    const r = await api("/api/v1/enrolments", { method: "POST", body: { classroom_id: Number(pick.value) } });
    const link = el("input", { id: "enrol-url", value: r.url, readonly: true, class: "wide" });
    // without a configured public address the link carries the one this page was opened with (maybe localhost)
    const where = r.public_url_configured ? "" : el("div", { class: "notice", id: "no-public-url" },
      t("no_public_url").replace("{origin}", new URL(r.url).origin));
    made.replaceChildren(el("div", { class: "panel" }, el("h3", {}, r.name), where, qrSvg(r.url), el("p", {}, link),
      el("button", { class: "secondary", onclick: () => navigator.clipboard?.writeText(r.url) }, t("copy"))));
    draw();
  } }, t("create_link"));
  view.append(el("div", { class: "panel row" }, el("span", {}, t("classroom")), pick, create), made, el("div", { class: "panel" }, list));
  await draw();
}

async function renderAudit(view) {
  const lesson = el("input", { id: "audit-lesson", placeholder: t("lesson"), size: 8 });
  const outcome = el("select", { id: "audit-outcome" }, el("option", { value: "" }, "—"),
    ...["admitted", "refused", "done", "kept", "issued"].map((o) => el("option", { value: o }, o)));
  const text = el("input", { id: "audit-text", placeholder: `${t("actor")} / ${t("action")}` });
  const table = el("table", { id: "audit" });
  const draw = async () => {
    const q = new URLSearchParams({ limit: "1000" });
    if (lesson.value) q.set("lesson_id", lesson.value);
    if (outcome.value) q.set("outcome", outcome.value);
    const needle = text.value.trim();
    const rows = (await api(`/api/v1/audit?${q}`)).filter((r) => !needle || r.actor.includes(needle) || r.action.includes(needle));
    table.replaceChildren(
      el("tr", {}, ["at", "actor", "role", "action", "lesson", "address", "outcome", "reason"].map((k) => el("th", {}, t(k)))),
      ...rows.map((r) => el("tr", { class: r.outcome === "refused" ? "error" : "" },
        el("td", {}, new Date(r.at * 1000).toLocaleString()), el("td", {}, r.actor), el("td", {}, r.role), el("td", {}, r.action),
        el("td", {}, r.lesson_id ?? ""), el("td", {}, r.address), el("td", {}, r.outcome), el("td", {}, r.reason))));
  };
  for (const input of [lesson, outcome, text]) input.addEventListener("change", draw);
  view.append(el("div", { class: "panel row" }, el("span", {}, t("filter")), lesson, outcome, text), el("div", { class: "panel" }, table));
  await draw();
}

async function renderLive(view) {
  const live = await api("/api/v1/live");
  view.append(el("div", { class: "panel" }, el("h3", {}, `${t("live_lessons")}: ${live.lessons.length}`),
    el("table", { id: "live" }, el("tr", {}, el("th", {}, t("lesson")), el("th", {}, t("on_air")), el("th", {}, t("participants")), el("th", {}, t("lead_minutes"))),
      live.lessons.map((l) => el("tr", {}, el("td", {}, `#${l.lesson_id} ${l.subject} · ${l.lead}`), el("td", {}, l.lead_on_air ? "●" : ""),
        el("td", {}, l.participants), el("td", {}, l.lead_minutes))))));
}

// ---- recordings: review (a reviewer) and scheduled replays (录播, the administrator) ---------------------

// what a refusal says, in the page's language: its problems (a rule broken, a recording not approved), else its error
function problemText(err) {
  const problems = err.body?.problems || [];
  return problems.length ? problems.map((p) => (lang() === "zh" ? p.message_zh || p.message : p.message)).join("；") : err.message;
}

function reviewText(r) {
  const uses = (r.review_uses || []).map((u) => t(`use_${u}`)).join("、");
  return `${t(`review_${r.review}`)}${uses ? ` (${uses})` : ""}`;
}

function recordingRow(r, extra = []) {
  const l = r.lesson;
  return el("tr", { id: `recording-${r.id}` }, el("td", {}, `#${r.id}`),
    el("td", {}, `#${l.id} ${l.subject} ${l.grade} · ${l.teacher} · ${l.lead}`),
    el("td", {}, `${l.start.slice(0, 10)} ${hhmm(l.start)}`),
    el("td", {}, r.duration_s ? `${Math.round(r.duration_s / 60)} min` : ""),
    el("td", { class: `review-${r.review}` }, reviewText(r)),
    el("td", {}, r.review_reason || ""), ...extra);
}

function recordingHeader(extra = []) {
  return el("tr", {}, ...["recording_no", "lesson", "time", "duration", "review_state", "reason", ...extra].map((k) => el("th", {}, t(k))));
}

async function renderReview(view) {
  const result = el("div", { id: "review-result" });
  const table = el("table", { id: "review-list" });
  const only = el("select", { id: "review-filter" }, ["pending", "approved", "refused", ""].map((v) =>
    el("option", { value: v }, v ? t(`review_${v}`) : t("all"))));
  const draw = async () => {
    const q = only.value ? `&review=${only.value}` : "";
    const rows = await api(`/api/v1/recordings?reviewable=1${q}`);
    table.replaceChildren(recordingHeader(["decision"]), ...rows.map((r) => {
      const reason = el("input", { id: `reason-${r.id}`, placeholder: t("reason") });
      const replay = el("input", { type: "checkbox", id: `use-replay-${r.id}`, checked: true });
      const model = el("input", { type: "checkbox", id: `use-model-${r.id}` });
      const decide = (approved) => async () => {
        const uses = [replay.checked ? "replay" : "", model.checked ? "model" : ""].filter(Boolean);
        try {
          await api(`/api/v1/recordings/${r.id}/review`, { method: "POST", body: { approved, uses, reason: reason.value } });
          notice(result, `#${r.id}: ${t(approved ? "review_approved" : "review_refused")}`, true);
          await draw();
        } catch (err) { notice(result, err.message); }
      };
      return recordingRow(r, [el("td", {},
        el("a", { href: `/player?id=${r.id}`, target: "_blank" }, t("watch")), " ",
        el("label", {}, replay, t("use_replay")), " ", el("label", {}, model, t("use_model")), " ", reason, " ",
        el("button", { id: `approve-${r.id}`, onclick: decide(true) }, t("approve")), " ",
        el("button", { class: "secondary", id: `refuse-${r.id}`, onclick: decide(false) }, t("refuse")))]);
    }));
    if (!rows.length) table.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, t("no_recordings"))));
  };
  only.addEventListener("change", draw);
  view.append(el("div", { class: "panel" }, el("h3", {}, t("review_list")),
    el("div", { class: "row" }, el("span", {}, t("filter")), only), result, table));
  await draw();
}

async function renderReplays(view) {
  // what was recorded and how its review stands; people and places by name (ids only as a last resort)
  const [all, counties, schools, classrooms, teachers, accounts] = await Promise.all([
    api("/api/v1/recordings"), api("/api/v1/counties"), api("/api/v1/schools"), api("/api/v1/classrooms"),
    api("/api/v1/teachers"), api("/api/v1/accounts").catch(() => [])]);
  const countyName = Object.fromEntries(counties.map((c) => [c.id, c.name]));
  const school = Object.fromEntries(schools.map((x) => [x.id, x]));
  const teacherName = Object.fromEntries(teachers.map((x) => [x.id, `${x.name} · ${school[x.school_id]?.name || ""}`]));
  const accountName = Object.fromEntries(accounts.map((a) => [`account:${a.id}`, a.username]));
  const who = (sub) => accountName[sub] || (sub === "admin-token" ? t("administrator") : sub || "");
  view.append(el("div", { class: "panel" }, el("h3", {}, t("recordings_review")),
    el("table", { id: "recordings" }, recordingHeader(["reviewed_by"]), all.map((r) => recordingRow(r, [el("td", {}, who(r.reviewed_by))])))));

  // schedule a replay of an approved recording for receiving classrooms at a time of their timetable
  const approved = all.filter((r) => r.review === "approved" && (r.review_uses || []).includes("replay") && r.state === "ready");
  const source = el("select", { id: "replay-recording" }, approved.map((r) =>
    el("option", { value: r.id }, `#${r.id} · #${r.lesson.id} ${r.lesson.subject} ${r.lesson.grade} · ${r.lesson.teacher}`)));
  // receiving classrooms by county and school (a replay goes to receiving classrooms, 接收端)
  const receiving = classrooms.filter((c) => school[c.school_id]?.is_receiving)
    .map((c) => ({ id: c.id, label: `${countyName[school[c.school_id].county_id] || ""} ${school[c.school_id].name} ${c.name}` }))
    .sort((a, b) => a.label.localeCompare(b.label, "zh"));
  const rooms = el("select", { id: "replay-classrooms", multiple: true, size: Math.min(6, Math.max(2, receiving.length)),
    title: t("receiving_classrooms") }, receiving.map((c) => el("option", { value: c.id }, c.label)));
  const start = el("input", { type: "datetime-local", id: "replay-start" });
  const end = el("input", { type: "datetime-local", id: "replay-end", title: t("end_optional") });
  const scheduled = el("div", { id: "replay-result" });
  const schedule = el("button", { id: "replay-go", onclick: async () => {
    const ids = [...rooms.selectedOptions].map((o) => Number(o.value));
    const body = { replay_of: Number(source.value), receiving_classroom_ids: ids, start: start.value };
    if (end.value) body.end = end.value;
    try {
      const r = await api("/api/v1/lessons", { method: "POST", body });
      const l = r.lessons[0];
      notice(scheduled, `${t("replay_scheduled")}: #${l.id} ${l.subject} ${l.start.slice(0, 10)} ${hhmm(l.start)}–${hhmm(l.end)}` +
        (r.warnings.length ? ` (${r.warnings.map((w) => (lang() === "zh" ? w.message_zh : w.message)).join("; ")})` : ""), true);
    } catch (err) { notice(scheduled, problemText(err)); }
  } }, t("schedule_replay"));
  view.append(el("div", { class: "panel" }, el("h3", {}, t("schedule_replay")),
    approved.length ? el("div", { class: "row" }, source, rooms, el("label", {}, t("start_time"), " ", start),
      el("label", {}, t("end_optional"), " ", end), schedule) : el("p", { class: "muted" }, t("none_approved")),
    el("p", { class: "muted" }, t("replay_hint")), scheduled));

  // reviewers: teachers the county made reviewers of its recordings
  const reviewers = el("table", { id: "reviewers" });
  const drawReviewers = async () => {
    const rows = await api("/api/v1/reviewers");
    reviewers.replaceChildren(el("tr", {}, el("th", {}, t("reviewer_name")), el("th", {}, t("county")), el("th", {}, t("granted_by")), el("th", {})),
      ...rows.map((g) => el("tr", {}, el("td", {}, teacherName[g.teacher_id] || `#${g.teacher_id}`),
        el("td", {}, countyName[g.county_id] || `#${g.county_id}`), el("td", {}, who(g.granted_by)),
        el("td", {}, el("button", { class: "secondary", onclick: async () => {
          await api(`/api/v1/reviewers/${g.teacher_id}?county_id=${g.county_id}`, { method: "DELETE" });
          await drawReviewers();
        } }, t("revoke"))))));
  };
  const countyOptions = () => counties.map((c) => el("option", { value: c.id }, c.name));
  const teacher = el("select", { id: "reviewer-teacher" }, teachers.map((x) => el("option", { value: x.id }, teacherName[x.id])));
  const county = el("select", { id: "reviewer-county" }, countyOptions());
  const granted = el("div", {});
  view.append(el("div", { class: "panel" }, el("h3", {}, t("reviewers")), el("div", { class: "row" }, teacher, county,
    el("button", { id: "reviewer-go", onclick: async () => {
      try {
        await api(`/api/v1/reviewers/${Number(teacher.value)}`, { method: "PUT", body: county.value ? { county_id: Number(county.value) } : {} });
        await drawReviewers();
      } catch (err) { notice(granted, err.message); }
    } }, t("grant_reviewer"))), granted, reviewers));
  await drawReviewers();

  // a county's policy: retention, quota, whether replays credit the recorded lesson's teacher
  const policyCounty = el("select", { id: "policy-county" }, el("option", { value: "" }, t("county")), countyOptions());
  const retention = el("input", { id: "policy-retention", type: "number", min: 1, placeholder: t("retention_days") });
  const quota = el("input", { id: "policy-quota", type: "number", min: 1, placeholder: t("quota_mb") });
  const credits = el("input", { id: "policy-credits", type: "checkbox" });
  const saved = el("div", { id: "policy-result" });
  const load = async () => {
    if (!policyCounty.value) return;
    try {
      const p = await api(`/api/v1/counties/${Number(policyCounty.value)}/recording-policy`);
      retention.value = p.retention_days ?? "";
      quota.value = p.quota_mb ?? "";
      credits.checked = p.replay_credits_lead;
      retention.placeholder = `${t("retention_days")} (${p.default_retention_days})`;
    } catch (err) { notice(saved, err.message); }
  };
  policyCounty.addEventListener("change", load);
  view.append(el("div", { class: "panel" }, el("h3", {}, t("recording_policy")), el("div", { class: "row" }, policyCounty, retention, quota,
    el("label", {}, credits, " ", t("replay_credits_lead")),
    el("button", { id: "policy-go", onclick: async () => {
      try {
        await api(`/api/v1/counties/${Number(policyCounty.value)}/recording-policy`, { method: "PUT", body: {
          retention_days: retention.value ? Number(retention.value) : null, quota_mb: quota.value ? Number(quota.value) : null,
          replay_credits_lead: credits.checked } });
        notice(saved, t("saved"), true);
      } catch (err) { notice(saved, err.message); }
    } }, t("save"))), saved));
}
