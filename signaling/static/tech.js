// The technician's page: live lessons and each classroom's link quality, refreshed every five seconds.
// The monitoring work adds stream-health alerts and history here.
import { api, el, header, logoutButton, notice, requireLogin } from "./common.js";
import { applyTexts, t } from "./i18n.js";
import { qualityClass } from "./rtc.js";

if (requireLogin(["technician", "admin"])) {
  header("tech_title", [logoutButton()]);
  const view = el("main", { id: "view" });
  document.body.append(view);
  const draw = async () => {
    try {
      const live = await api("/api/v1/live");
      view.replaceChildren(el("h2", {}, `${t("live_lessons")}: ${live.lessons.length}`),
        live.lessons.length ? "" : el("p", { class: "muted" }, t("none")),
        ...live.lessons.map((l) => el("div", { class: "panel" },
          el("h3", {}, `#${l.lesson_id} ${l.subject} · ${l.lead} `, el("span", { class: l.lead_on_air ? "badge live" : "badge" }, l.lead_on_air ? t("on_air") : t("off_air"))),
          el("table", {}, el("tr", {}, el("th", {}, t("classroom")), el("th", {}, t("connection")), el("th", {}, t("quality")),
            el("th", {}, t("rtt")), el("th", {}, t("loss")), el("th", {}, t("fps"))),
            // a classroom that dropped shows its state, never its last good figures (the server sends none)
            l.roster.map((p) => el("tr", { dataset: { participant: p.participant_id, link: p.link || "ok" } },
              el("td", {}, p.name),
              el("td", { class: p.link && p.link !== "ok" ? "q-bad" : "q-good" }, t(`link_${p.link || "ok"}`)),
              el("td", { class: qualityClass(p.quality.score) }, p.quality.score ?? ""),
              el("td", {}, p.quality.rtt_ms ?? ""), el("td", {}, p.quality.loss ?? ""), el("td", {}, p.quality.fps ?? "")))))));
      applyTexts(view);
    } catch (err) {
      notice(view, err.message);
    }
  };
  draw();
  setInterval(draw, 5000);
}
