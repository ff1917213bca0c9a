// The administrator's page: import the timetable (errors listed by line), browse the calendar, read
// quota and workload reports as charts, manage accounts and classroom enrolment links (with QR codes),
// read the audit trail of admissions and refusals, and see what is live.
import { api, el, header, hhmm, logoutButton, notice, requireLogin } from "./common.js";
import { applyTexts, lang, t } from "./i18n.js";
import qrcode from "./vendor/qrcode.js";

const TABS = ["import", "calendar", "reports", "accounts", "enrol", "audit", "live"];

if (requireLogin(["admin"])) {
  const tabs = el("nav", { class: "tabs", id: "tabs" });
  const view = el("main", { id: "view" });
  header("admin_title", [tabs, logoutButton()]);
  document.body.append(view);
  let current = location.hash.slice(1) || "import";
  const show = (name) => {
    current = TABS.includes(name) ? name : "import";
    history.replaceState(null, "", `#${current}`);
    tabs.replaceChildren(...TABS.map((n) => el("button", { class: n === current ? "active" : "", id: `tab-${n}`, onclick: () => show(n) }, t(`tab_${n}`))));
    view.replaceChildren();
    RENDER[current](view).catch((err) => notice(view, err.message));
    applyTexts(view);
  };
  const RENDER = { import: renderImport, calendar: renderCalendar, reports: renderReports, accounts: renderAccounts,
    enrol: renderEnrol, audit: renderAudit, live: renderLive };
  show(current);
  document.getElementById("lang").addEventListener("click", () => show(current));
}

async function renderImport(view) {
  const file = el("input", { type: "file", id: "import-file", accept: ".csv,text/csv" });
  const dry = el("input", { type: "checkbox", id: "import-dry" });
  const result = el("div", { id: "import-result" });
  const go = el("button", { id: "import-go" }, t("do_import"));
  go.addEventListener("click", async () => {
    if (!file.files.length) return;
    const form = new FormData();
    form.append("file", file.files[0]);
    go.disabled = true;
    try {
      const r = await api(`/api/v1/timetable/import?dry_run=${dry.checked ? 1 : 0}&filename=${encodeURIComponent(file.files[0].name)}`, { method: "POST", form });
      const rows = [...r.errors, ...r.warnings];
      result.replaceChildren(
        el("div", { class: r.ok ? "notice ok" : "notice", role: "status" },
          r.ok ? `${t("import_ok")}: ${r.lessons_added} + ${r.lessons_unchanged} (${r.rows})` : `${t("import_failed")} (${r.errors.length})`),
        rows.length ? el("table", { id: "import-errors" },
          el("tr", {}, el("th", {}, t("line")), el("th", {}, t("code")), el("th", {}, t("reason"))),
          rows.map((p) => el("tr", { class: p.severity === "error" ? "error" : "muted" }, el("td", {}, p.line ?? ""), el("td", {}, p.code), el("td", {}, lang() === "zh" ? (p.message_zh || p.message) : p.message)))) : "");
    } catch (err) {
      notice(result, err.message);
    } finally {
      go.disabled = false;
    }
  });
  view.append(el("div", { class: "panel" }, el("p", {}, t("import_file")), el("div", { class: "row" }, file,
    el("label", {}, dry, " ", t("dry_run")), go)), result);
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

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

// A horizontal bar chart: one bar per row, with an optional target mark per row.
function barChart(rows, { value, label, target, max }) {
  const rowH = 22, left = 220, width = 760;
  const top = Math.max(1, max ?? Math.max(...rows.map((r) => Math.max(value(r), target ? target(r) : 0)), 1));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${rows.length * rowH + 24}`, role: "img" });
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    const w = ((width - left - 60) * value(r)) / top;
    const reached = !target || value(r) >= target(r);
    chart.append(svg("text", { x: left - 6, y: y + 14, "text-anchor": "end", fill: "#eef3f8", "font-size": 12 }, label(r).slice(0, 24)));
    chart.append(svg("rect", { x: left, y, width: Math.max(1, w), height: rowH - 6, fill: reached ? "#2fbf71" : "#f2b233", rx: 3 }));
    chart.append(svg("text", { x: left + w + 6, y: y + 14, fill: "#9fb0c3", "font-size": 12 }, String(Math.round(value(r) * 10) / 10)));
    if (target) {
      const x = left + ((width - left - 60) * target(r)) / top;
      chart.append(svg("line", { x1: x, x2: x, y1: y - 2, y2: y + rowH - 4, stroke: "#ef5350", "stroke-width": 2 }));
    }
  });
  return el("div", { class: "chart" }, chart);
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
  const rows = await api("/api/v1/audit?limit=300");
  view.append(el("div", { class: "panel" }, el("table", { id: "audit" },
    el("tr", {}, ["at", "actor", "role", "action", "lesson", "address", "outcome", "reason"].map((k) => el("th", {}, t(k)))),
    rows.map((r) => el("tr", { class: r.outcome === "refused" ? "error" : "" },
      el("td", {}, new Date(r.at * 1000).toLocaleString()), el("td", {}, r.actor), el("td", {}, r.role), el("td", {}, r.action),
      el("td", {}, r.lesson_id ?? ""), el("td", {}, r.address), el("td", {}, r.outcome), el("td", {}, r.reason))))));
}

async function renderLive(view) {
  const live = await api("/api/v1/live");
  view.append(el("div", { class: "panel" }, el("h3", {}, `${t("live_lessons")}: ${live.lessons.length}`),
    el("table", { id: "live" }, el("tr", {}, el("th", {}, t("lesson")), el("th", {}, t("on_air")), el("th", {}, t("participants")), el("th", {}, t("lead_minutes"))),
      live.lessons.map((l) => el("tr", {}, el("td", {}, `#${l.lesson_id} ${l.subject} · ${l.lead}`), el("td", {}, l.lead_on_air ? "●" : ""),
        el("td", {}, l.participants), el("td", {}, l.lead_minutes))))));
}
