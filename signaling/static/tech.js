// The technician's page: every live lesson of the county at a glance, live (server-sent events, no polling),
// with each classroom's figures and a ten-minute chart, the alerts (with a sound) to acknowledge, the alert log,
// lesson history and the bandwidth report.
import { api, el, header, logoutButton, notice, requireLogin, sessionToken } from "./common.js";
import { applyTexts, lang, t } from "./i18n.js";
import { qualityClass } from "./rtc.js";
import { bars, COLORS, lines, setSparkline, sparkline, timeline } from "./charts.js";

const WINDOW_S = 600;

function fmt(value, digits = 0) {
  return value == null ? "–" : Number(value).toFixed(digits);
}
function pct(value) {
  return value == null ? "–" : `${(value * 100).toFixed(1)}%`;
}
// times in the district's time zone (client-config), not the PC's
let ZONE;
function clock(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString("zh-CN", { hour12: false, timeZone: ZONE }) : "";
}
function dateTime(seconds) {
  return new Date(seconds * 1000).toLocaleString("zh-CN", { hour12: false, timeZone: ZONE });
}
function summary(alert) {
  return lang() === "en" ? alert.summary_en : alert.summary_zh;
}

// ---- sound: two short beeps for a new alert (the browser lets a page play sound after one click on it)
class Beeper {
  constructor() { this.ctx = null; this.enabled = localStorage.getItem("tech_sound") !== "off"; }
  unlock() {
    if (!this.ctx) this.ctx = new AudioContext();
    if (this.ctx.state === "suspended") this.ctx.resume();
  }
  beep() {
    if (!this.enabled) return;
    try {
      this.unlock();
      const now = this.ctx.currentTime;
      for (const at of [0, 0.3]) {
        const osc = this.ctx.createOscillator();
        const gain = this.ctx.createGain();
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.25, now + at);
        gain.gain.exponentialRampToValueAtTime(0.001, now + at + 0.2);
        osc.connect(gain).connect(this.ctx.destination);
        osc.start(now + at);
        osc.stop(now + at + 0.22);
      }
      this.played = (this.played || 0) + 1;
    } catch { /* no audio device: the page still shows the alert */ }
  }
}

// ---- the stream: fetch() reads the server-sent events (EventSource cannot send the login's bearer token)
async function follow(onMessage, onState) {
  for (;;) {
    let status = 0;
    try {
      const response = await fetch("/api/v1/monitor/stream", { headers: { Authorization: `Bearer ${sessionToken()}` } });
      status = response.status;
      if (status === 401 || status === 403) { location.href = "/login?next=/tech"; return; }
      if (!response.ok) throw new Error(`HTTP ${status}`);
      onState(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const chunk = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = chunk.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (!data) continue;
          const message = JSON.parse(data);
          if (message.type === "ended") { location.href = "/login?next=/tech"; return; }
          onMessage(message);
        }
      }
    } catch { /* the network or the server went away: show it and try again */ }
    onState(false);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ---- the live view ------------------------------------------------------------------------------
class LiveView {
  constructor(root, beeper) {
    this.root = root;
    this.beeper = beeper;
    this.alerts = new Map(); // id -> alert (firing)
    this.lessons = new Map(); // lesson id -> { panel, rows: Map(pid -> {row, chart, series}) }
    this.alertBox = el("section", { class: "alerts", id: "alerts" });
    this.summaryLine = el("p", { class: "muted", id: "summary" });
    this.list = el("div", { id: "lessons" });
    root.replaceChildren(this.alertBox, this.summaryLine, this.list);
  }

  onMessage(m) {
    if (m.type === "snapshot") {
      for (const [, l] of this.lessons) this.dropLesson(l);
      this.lessons.clear();
      this.alerts = new Map(m.alerts.map((a) => [a.id, a]));
      this.drawAlerts();
      this.draw(m, true);
    } else if (m.type === "tick") {
      this.draw(m, false);
    } else if (m.type === "alert") {
      if (m.change === "cleared") this.alerts.delete(m.alert.id);
      else this.alerts.set(m.alert.id, m.alert);
      if (m.change === "fired") this.beeper.beep();
      this.drawAlerts();
    } else if (m.type === "lesson_closed") {
      const l = this.lessons.get(m.lesson_id);
      if (l) { this.dropLesson(l); this.lessons.delete(m.lesson_id); }
    }
  }

  dropLesson(l) {
    for (const [, r] of l.rows) r.chart.dispose();
    l.panel.remove();
  }

  drawAlerts() {
    const firing = [...this.alerts.values()].sort((a, b) => (b.severity === "critical") - (a.severity === "critical") || a.fired_at - b.fired_at);
    document.title = firing.length ? `(${firing.length}) ${t("tech_title")}` : t("tech_title");
    this.alertBox.replaceChildren(...(firing.length ? [el("h2", {}, `${t("alerts_firing")}: ${firing.length}`)] : []),
      ...firing.map((a) => el("div", { class: `alert ${a.severity}`, dataset: { alert: a.id, rule: a.rule } },
        el("span", { class: "badge" }, t(`severity_${a.severity}`)),
        el("span", { class: "when" }, clock(a.fired_at)),
        el("span", { class: "what" }, summary(a)),
        a.acked_by ? el("span", { class: "acked" }, `${t("acked_by")} ${a.acked_by}`)
          : el("button", { class: "secondary", onclick: async (ev) => {
            this.beeper.unlock();
            ev.target.disabled = true;
            try { await api(`/api/v1/alerts/${a.id}/ack`, { method: "POST", body: {} }); } catch (err) { notice(this.alertBox, err.message); }
          } }, t("acknowledge")))));
  }

  draw(m, withSeries) {
    const seen = new Set();
    let connected = 0;
    let expected = 0;
    for (const lesson of m.lessons) {
      seen.add(lesson.lesson_id);
      connected += lesson.present;
      expected += lesson.receivers;
      let l = this.lessons.get(lesson.lesson_id);
      if (!l) {
        l = this.makeLesson(lesson);
        this.lessons.set(lesson.lesson_id, l);
        this.list.append(l.panel);
      }
      this.updateLesson(l, lesson, withSeries);
    }
    for (const [id, l] of this.lessons) if (!seen.has(id)) { this.dropLesson(l); this.lessons.delete(id); }
    const procs = (m.system?.processes || []).map((p) => `${p.name} CPU ${fmt(p.cpu_percent)}% ${t("loop_lag")} ${fmt(p.loop_lag_ms)}ms`).join(" · ");
    this.summaryLine.textContent = `${t("live_lessons")}: ${m.lessons.length} · ${t("classrooms_connected")}: ${connected}/${expected} · ${m.node}${procs ? " · " + procs : ""}`;
    if (!m.lessons.length && !this.list.querySelector(".none")) this.list.append(el("p", { class: "muted none" }, t("none")));
    if (m.lessons.length) this.list.querySelector(".none")?.remove();
  }

  makeLesson(lesson) {
    const title = el("h3", {});
    const badge = el("span", { class: "badge" });
    const where = el("span", { class: "muted small" });
    const body = el("tbody", {});
    const table = el("table", { class: "live" },
      el("thead", {}, el("tr", {}, ...["classroom", "connection", "kbps_col", "loss", "rtt", "fps", "freezes", "quality", "last_10_min"].map((k) => el("th", { "data-t": k }, t(k))))),
      body);
    const panel = el("div", { class: "panel lesson", dataset: { lesson: lesson.lesson_id } }, el("div", { class: "row" }, title, badge, where), table);
    return { panel, title, badge, where, body, rows: new Map() };
  }

  updateLesson(l, lesson, withSeries) {
    l.title.textContent = `#${lesson.lesson_id} ${lesson.subject} · ${t(`kind_${lesson.kind}`)} · ${lesson.lead_name}`;
    l.badge.textContent = t(`lead_${lesson.lead_state}`);
    l.badge.className = `badge ${lesson.lead_state === "on_air" ? "live" : "bad"}`;
    l.panel.dataset.leadState = lesson.lead_state;
    l.where.textContent = `${clock(lesson.starts_at)}–${clock(lesson.ends_at)} · ${t("node")} ${lesson.node}${lesson.worker_pid ? ` · ${t("worker")} ${lesson.worker_pid}` : ""} · ${lesson.present}/${lesson.receivers}`;
    const rows = [lesson.lead ? { ...lesson.lead, name: `${t("lead_end")} ${lesson.lead.name}` } : null, ...lesson.classrooms].filter(Boolean);
    const seen = new Set();
    for (const p of rows) {
      seen.add(p.participant_id);
      let r = l.rows.get(p.participant_id);
      if (!r) {
        r = this.makeRow(p);
        l.rows.set(p.participant_id, r);
        l.body.append(r.row);
      }
      this.updateRow(r, p, withSeries);
    }
    for (const [pid, r] of l.rows) if (!seen.has(pid)) { r.chart.dispose(); r.row.remove(); l.rows.delete(pid); }
  }

  makeRow(p) {
    const cells = Array.from({ length: 8 }, () => el("td", {}));
    const spark = el("div", { class: "spark" });
    const row = el("tr", { dataset: { participant: p.participant_id } }, ...cells, el("td", {}, spark));
    const r = { row, cells, spark, chart: null, series: { t: [], kbps_in: [], kbps_out: [], score: [] } };
    // the chart is made once the row is in the page (ECharts needs its size)
    requestAnimationFrame(() => { r.chart = sparkline(spark); setSparkline(r.chart, r.series, p.role === "lead" ? "kbps_in" : "kbps_out"); });
    r.chart = { dispose() {}, setOption() {} };
    return r;
  }

  updateRow(r, p, withSeries) {
    const link = p.link || "ok";
    const ok = link === "ok";
    const rate = p.role === "lead" ? p.kbps_in : p.kbps_out;
    const values = [p.name, t(`link_${link}`), ok ? fmt(rate) : "", ok ? pct(p.loss) : "", ok ? fmt(p.rtt_ms) : "",
      ok ? fmt(p.fps) : "", ok ? fmt(p.freezes) : "", ok && p.score != null ? `${fmt(p.score, 1)} ${t(`level_${p.level}`)}` : ""];
    values.forEach((v, i) => { if (r.cells[i].textContent !== v) r.cells[i].textContent = v; });
    r.cells[1].className = ok ? "q-good" : "q-bad";
    r.cells[7].className = ok ? qualityClass(p.score) : "";
    r.row.dataset.link = link;
    r.row.dataset.score = p.score ?? "";
    r.row.title = ok && p.reasons?.length ? p.reasons.map((x) => t(`reason_${x}`)).join("、") : "";
    if (withSeries && p.series) r.series = p.series;
    else if (p.point) {
      const s = r.series;
      if (!s.t.length || s.t[s.t.length - 1] < p.point.t) {
        for (const k of Object.keys(p.point)) (s[k] ||= []).push(p.point[k]);
        while (s.t.length && s.t[s.t.length - 1] - s.t[0] >= WINDOW_S) for (const k of Object.keys(s)) if (Array.isArray(s[k])) s[k].shift();
      }
    } else return;
    if (r.chart.getDom) setSparkline(r.chart, r.series, p.role === "lead" ? "kbps_in" : "kbps_out");
  }
}

// ---- the alert log --------------------------------------------------------------------------------
async function alertLog(root) {
  const data = await api("/api/v1/alerts?limit=300");
  root.replaceChildren(el("h2", {}, t("alert_log")), el("table", { id: "alert-log" },
    el("tr", {}, ...["fired_at", "severity", "alert", "cleared_at", "acked_by"].map((k) => el("th", {}, t(k)))),
    data.alerts.map((a) => el("tr", { dataset: { alert: a.id } }, el("td", {}, dateTime(a.fired_at)),
      el("td", { class: a.severity === "critical" ? "q-bad" : "q-fair" }, t(`severity_${a.severity}`)), el("td", {}, summary(a)),
      el("td", {}, a.cleared_at ? clock(a.cleared_at) : t("still_firing")), el("td", {}, a.acked_by || "")))));
}

// ---- lesson history ---------------------------------------------------------------------------------
export async function lessonHistory(root, lessonId) {
  const [h, att] = await Promise.all([api(`/api/v1/lessons/${lessonId}/history`),
    api(`/api/v1/lessons/${lessonId}/attendance`).catch(() => null)]);
  const L = h.lesson;
  const charts = [el("div", { class: "chart tall", id: "attendance-chart" }), el("div", { class: "chart", id: "bitrate-chart" }),
    el("div", { class: "chart", id: "quality-chart" })];
  root.replaceChildren(el("h2", {}, `#${L.id} ${L.subject} · ${t(`kind_${L.kind}`)} · ${L.lead} · ${L.start.slice(0, 16).replace("T", " ")}–${L.end.slice(11, 16)} · ${t(`status_${L.status}`)}`),
    ...charts, el("h3", {}, t("alerts")), el("table", {}, h.alerts.map((a) => el("tr", {}, el("td", {}, clock(a.fired_at)),
      el("td", {}, summary(a)), el("td", {}, a.cleared_at ? clock(a.cleared_at) : ""), el("td", {}, a.acked_by || "")))));
  const rows = attendanceRows(h, att);
  const first = Math.min(L.starts_at, ...h.series.map((s) => s.t[0] ?? L.starts_at));
  timeline(charts[0], t("attendance_timeline"), rows, first, L.ends_at, ZONE);
  const rate = (s) => s.role === "lead" ? s.kbps_in : s.kbps_out;
  lines(charts[1], t("bitrate_chart"), h.series.map((s) => ({ name: s.name, data: s.t.map((x, i) => [x * 1000, rate(s)[i]]) })), "kbps", ZONE);
  lines(charts[2], t("quality_chart"), h.series.map((s) => ({ name: s.name, data: s.t.map((x, i) => [x * 1000, s.score[i]]) })), "1–5", ZONE);
}

function attendanceRows(h, att) {
  // the attendance timeline monitoring stored (docs/api.md): present segments in green, the gaps between
  // them (dropped, left, off air) in red; without it, the 5-second samples taken while each one was there
  if (att && Array.isArray(att.classrooms)) {
    const row = (name, who, onLabel, offLabel) => {
      const segs = (who?.segments || []).map((x) => ({ from: Date.parse(x.from) / 1000, to: Date.parse(x.to) / 1000, why: x.closed_by }));
      const out = [];
      segs.forEach((x, i) => {
        out.push({ from: x.from, to: x.to, color: COLORS.ok, label: onLabel });
        const next = segs[i + 1];
        if (next && next.from > x.to) out.push({ from: x.to, to: next.from, color: COLORS.bad, label: t(`seg_${x.why || "dropped"}`) || offLabel });
      });
      return { name, segments: out };
    };
    const lead = att.lead ? [row(`${t("lead_end")} ${att.lead.name || h.lesson.lead}`, att.lead, t("seg_on_air"), t("seg_off_air"))] : [];
    return [...lead, ...att.classrooms.map((c) => row(c.name, c, t("seg_present"), t("seg_dropped"))),
      ...(att.observers || []).map((o) => row(o.name, o, t("seg_present"), t("seg_left")))];
  }
  return h.series.map((s) => {
    const segments = [];
    s.t.forEach((x, i) => {
      const last = segments[segments.length - 1];
      if (s.link[i] !== "ok") return;
      if (last && x - last.to <= 6) last.to = x + 5; else segments.push({ from: x, to: x + 5, color: COLORS.ok, label: "" });
    });
    return { name: s.name, segments };
  });
}

async function historyTab(root) {
  const day = el("input", { type: "date", value: new Date().toLocaleDateString("sv-SE", { timeZone: ZONE }) });
  const list = el("div", {});
  const view = el("div", { id: "history" });
  const load = async () => {
    const data = await api(`/api/v1/monitor/lessons?date=${day.value}`);
    list.replaceChildren(el("table", { id: "history-lessons" }, data.lessons.map((l) => el("tr", {},
      el("td", {}, `${l.start.slice(11, 16)}–${l.end.slice(11, 16)}`), el("td", {}, `#${l.id} ${l.subject}`), el("td", {}, l.lead),
      el("td", {}, t(`status_${l.status}`)), el("td", {}, l.alerts ? `${t("alerts")} ${l.alerts}` : ""),
      el("td", {}, el("button", { class: "secondary", onclick: () => lessonHistory(view, l.id).catch((e) => notice(view, e.message)) }, t("open")))))));
  };
  day.addEventListener("change", () => load().catch((e) => notice(list, e.message)));
  root.replaceChildren(el("div", { class: "row" }, el("label", {}, t("date"), " ", day)), list, view);
  await load();
}

// ---- the nodes: every media node of the cluster (this one alone on one machine), its load and its lessons
// Where receiving classrooms of live lessons were placed and why, newest first; a classroom still in its
// lesson can be moved to another live node (it reconnects at once, its media on that node).
function placementsTable(r, out, reload) {
  const nodeIds = r.nodes.map((n) => n.node.id);
  const latest = new Set();
  const rows = r.placements.map((p) => {
    const key = `${p.lesson_id}/${p.participant_id}`;
    const current = p.connected && !latest.has(key);
    latest.add(key);
    let move = "";
    if (current && nodeIds.length > 1) {
      const pick = el("select", { class: "move-node" }, nodeIds.filter((id) => id !== p.node).map((id) => el("option", { value: id }, id)));
      move = el("span", {}, pick, " ", el("button", { class: "move", onclick: async () => {
        try {
          await api(`/api/v1/monitor/lessons/${p.lesson_id}/move`, { method: "POST", body: { participant_id: p.participant_id, node: pick.value } });
          notice(out, `${p.name || p.participant_id} → ${pick.value}`, true);
          setTimeout(() => reload().catch((e) => notice(out, e.message)), 1500);
        } catch (err) {
          notice(out, err.message);
        }
      } }, t("node_move")));
    }
    return el("tr", { dataset: { participant: p.participant_id, node: p.node || "" }, class: current ? "" : "muted" },
      el("td", {}, new Date(p.at * 1000).toLocaleTimeString("zh-CN", { hour12: false })),
      el("td", {}, `#${p.lesson_id}`), el("td", {}, p.name || p.participant_id), el("td", {}, p.node || "–"),
      el("td", { class: "reason" }, lang() === "en" ? p.reason : p.reason_zh), el("td", {}, move));
  });
  return el("div", { id: "placements" }, el("h3", {}, t("node_placements")),
    rows.length ? el("table", {}, el("tr", {}, ...["time", "lesson", "classroom", "node", "node_reason", ""].map((k) => el("th", {}, k ? t(k) : ""))), rows)
      : el("p", { class: "muted" }, t("node_no_placements")));
}

async function nodesTab(root) {
  const out = el("div", { id: "nodes" });
  const opened = (root.dataset.opened = String(Date.now()));
  root.replaceChildren(out);
  const load = async () => {
    const r = await api("/api/v1/monitor/nodes");
    const lock = r.job_lock.held ? t("node_jobs_here") : t("node_jobs_elsewhere");
    const rows = r.nodes.map((n) => {
      const share = n.node.capacity ? n.load.subscriptions / n.node.capacity : 0;
      const lessons = n.lessons.map((l) => el("a", { href: `/tech?lesson=${l.id}`, class: "node-lesson" },
        `#${l.id} ${l.subject}${l.lead_on_air === false ? `（${t("off_air")}）` : ""}`));
      if (n.lessons_hidden) lessons.push(el("span", { class: "muted" }, `+${n.lessons_hidden}`));
      const lag = n.load.loop_lag_ms ?? 0; // a loop over 250 ms late (the alert's threshold) answers ICE checks late
      return el("tr", { dataset: { node: n.node.id }, class: share >= 0.9 || n.load.cpu >= 0.9 || lag >= 250 ? "q-bad" : "" },
        el("td", {}, n.node.id, n.this ? el("span", { class: "badge" }, t("node_this")) : ""),
        el("td", {}, t(`node_role_${n.node.role}`), n.node.upstream ? el("span", { class: "muted" }, ` ← ${n.node.upstream}`) : ""), el("td", {}, [n.node.region, n.node.county].filter(Boolean).join(" / ") || "–"),
        el("td", {}, `${n.load.subscriptions} / ${n.node.capacity}`), el("td", {}, pct(n.load.cpu)),
        el("td", {}, fmt(n.load.egress_mbps, 1)), el("td", { class: "node-lag" }, fmt(lag, 0)), el("td", {}, `${fmt(n.seen_ago_s, 0)} s`),
        el("td", { class: "node-lessons" }, lessons.length ? lessons : t("node_no_lessons")));
    });
    const down = r.registry_error ? el("p", { class: "notice", id: "registry-down", role: "status" },
      `${t("node_registry_down")} ${new Date(r.nodes_read_at * 1000).toLocaleTimeString("zh-CN", { hour12: false })}`) : "";
    out.replaceChildren(down,
      el("p", {}, `${t("node_registry")}: ${r.registry === "redis" ? "Redis" : t("node_one_machine")} · ${lock}`),
      el("table", {}, el("tr", {}, ...["node", "node_role", "node_place", "node_subs", "CPU", "node_egress", "node_lag", "node_heartbeat", "node_lessons"]
        .map((k) => el("th", {}, k === "CPU" ? "CPU" : t(k)))), rows),
      placementsTable(r, out, load));
  };
  const tick = async () => {
    if (root.dataset.opened !== opened || root.hidden) return; // another tab, or this one opened again
    await load().catch((e) => notice(out, e.message));
    setTimeout(tick, 5000);
  };
  await load();
  setTimeout(tick, 5000);
}

// ---- the bandwidth report ----------------------------------------------------------------------------
async function bandwidthTab(root) {
  const today = new Date().toLocaleDateString("sv-SE", { timeZone: ZONE });
  const from = el("input", { type: "date", value: today });
  const to = el("input", { type: "date", value: today });
  const out = el("div", { id: "bandwidth" });
  const load = async () => {
    const r = await api(`/api/v1/bandwidth?from=${from.value}&to=${to.value}`);
    const chart = el("div", { class: "chart", id: "bandwidth-chart" });
    const table = (rows, name) => el("table", {}, el("tr", {}, ...[name, "slot", "peak_up", "peak_down", "mean_down", "capacity", "share"].map((k) => el("th", {}, t(k)))),
      rows.map((x) => el("tr", { class: x.over_capacity ? "q-bad" : "" }, el("td", {}, x.school || x.county || ""), el("td", {}, x.slot),
        el("td", {}, fmt(x.peak_up_mbps, 1)), el("td", {}, fmt(x.peak_down_mbps, 1)), el("td", {}, fmt(x.mean_down_mbps, 1)),
        el("td", {}, fmt(x.capacity_mbps)), el("td", {}, x.peak_share != null ? pct(x.peak_share) : ""))));
    out.replaceChildren(chart, el("h3", {}, t("per_county")), table(r.counties, "county"), el("h3", {}, t("per_school")), table(r.schools, "school"),
      el("h3", {}, t("per_slot")), el("table", {}, r.slots.map((x) => el("tr", {}, el("td", {}, x.slot), el("td", {}, `${t("peak_down")} ${fmt(x.peak_down_mbps, 1)} Mbps`), el("td", {}, `${t("peak_up")} ${fmt(x.peak_up_mbps, 1)} Mbps`)))));
    const cats = r.schools.map((x) => `${x.school} ${x.slot}`);
    bars(chart, t("bandwidth_title"), cats, [
      { name: t("peak_down"), data: r.schools.map((x) => x.peak_down_mbps), color: COLORS.accent },
      { name: t("peak_up"), data: r.schools.map((x) => x.peak_up_mbps), color: COLORS.ok },
      { name: t("capacity"), type: "line", dashed: true, data: r.schools.map((x) => x.capacity_mbps), color: COLORS.bad },
    ], "Mbps");
  };
  root.replaceChildren(el("div", { class: "row" }, el("label", {}, t("from"), " ", from), el("label", {}, t("to"), " ", to),
    el("button", { onclick: () => load().catch((e) => notice(out, e.message)) }, t("show"))), out);
  await load();
}

if (requireLogin(["technician", "admin"])) {
  ZONE = (await api("/api/v1/client-config").catch(() => ({}))).timezone || undefined;
  const beeper = new Beeper();
  const state = el("span", { class: "badge", id: "stream-state" }, t("connecting"));
  const sound = el("button", { class: "secondary", id: "sound", onclick: () => {
    beeper.enabled = !beeper.enabled;
    localStorage.setItem("tech_sound", beeper.enabled ? "on" : "off");
    if (beeper.enabled) beeper.unlock();
    sound.textContent = t(beeper.enabled ? "sound_on" : "sound_off");
  } }, t(beeper.enabled ? "sound_on" : "sound_off"));
  header("tech_title", [state, sound, logoutButton()]);
  const main = el("main", { id: "view" });
  const liveRoot = el("div", { id: "live" });
  const other = el("div", { id: "other" });
  const tabs = [["live", null], ["alert_log", alertLog], ["history_tab", historyTab], ["bandwidth_title", bandwidthTab], ["nodes_tab", nodesTab]];
  const tabBar = el("nav", { class: "tabs" }, tabs.map(([key, open]) => el("button", { dataset: { tab: key }, onclick: (ev) => {
    for (const b of tabBar.children) b.classList.toggle("active", b === ev.currentTarget);
    liveRoot.hidden = open !== null;
    other.hidden = open === null;
    if (open) open(other).catch((err) => notice(other, err.message));
  } }, t(key))));
  tabBar.children[0].classList.add("active");
  other.hidden = true;
  main.append(tabBar, liveRoot, other);
  document.body.append(main);
  document.addEventListener("click", () => beeper.unlock(), { once: true });
  const view = new LiveView(liveRoot, beeper);
  window.techView = view; // for the browser tests: what the page holds
  const params = new URLSearchParams(location.search);
  if (params.get("lesson")) {
    tabBar.children[2].click();
    lessonHistory(other, params.get("lesson")).catch((err) => notice(other, err.message));
  }
  follow((m) => view.onMessage(m), (up) => {
    state.textContent = t(up ? "stream_live" : "stream_down");
    state.className = `badge ${up ? "live" : "bad"}`;
  });
  applyTexts();
}
