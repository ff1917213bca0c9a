// Shared helpers of the pages: DOM building, the API with the caller's token, time formatting.
import { applyTexts, languageButton, t } from "./i18n.js";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A login lives for the browser tab (sessionStorage); a classroom PC's device token survives reboots (localStorage).
export function sessionToken() { return sessionStorage.getItem("session") || ""; }
export function setSession(token, role) { sessionStorage.setItem("session", token); sessionStorage.setItem("role", role); }
export function clearSession() { sessionStorage.removeItem("session"); sessionStorage.removeItem("role"); }

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || "";
    this.body = body;
  }
}

export async function api(path, { method = "GET", body, token = sessionToken(), raw = false, form } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const response = await fetch(path, { method, headers, body: payload });
  if (raw && response.ok) return response;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!response.ok && !(response.status === 422 && data && "errors" in data)) throw new ApiError(response.status, data);
  return data;
}

export function requireLogin(roles) {
  const role = sessionStorage.getItem("role");
  if (!sessionToken() || (roles && !roles.includes(role))) {
    location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
    return false;
  }
  return true;
}

export function header(titleKey, extra = [], onLanguage = null) {
  const bar = el("header", { class: "bar" }, el("h1", { "data-t": titleKey }, t(titleKey)), ...extra, languageButton(onLanguage));
  document.body.prepend(bar);
  applyTexts();
  return bar;
}

export function logoutButton() {
  return el("button", {
    class: "secondary", "data-t": "logout", id: "logout",
    onclick: async () => {
      try { await api("/api/v1/auth/logout", { method: "POST" }); } catch { /* logging out anyway */ }
      clearSession();
      location.href = "/login";
    },
  }, t("logout"));
}

export function hhmm(iso) {
  const d = new Date(iso);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

export function notice(container, text, ok = false) {
  container.replaceChildren(el("div", { class: ok ? "notice ok" : "notice", role: "status" }, text));
}
