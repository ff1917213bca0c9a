// Log in with a username and password, or with the administrator's token on first use.
import { api, el, header, setSession } from "./common.js";
import { applyTexts, reasonText, t } from "./i18n.js";

header("login");
const message = el("div", { id: "message" });
const username = el("input", { id: "username", autocomplete: "username" });
const password = el("input", { id: "password", type: "password", autocomplete: "current-password" });
const adminToken = el("input", { id: "admin-token", type: "password", autocomplete: "off" });
const form = el("form", { class: "panel login", id: "login-form" },
  el("label", { for: "username", "data-t": "username" }), username,
  el("label", { for: "password", "data-t": "password" }), password,
  el("label", { for: "admin-token", "data-t": "admin_token" }), adminToken,
  el("p", {}, el("button", { type: "submit", id: "login-button", "data-t": "login" })),
  message);
document.body.append(el("main", {}, form));
applyTexts();

const HOME = { admin: "/admin", teacher: "/teacher", technician: "/tech" };

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = adminToken.value.trim() ? { admin_token: adminToken.value.trim() } : { username: username.value, password: password.value };
  try {
    const result = await api("/api/v1/auth/login", { method: "POST", body, token: "" });
    setSession(result.token, result.role);
    const next = new URLSearchParams(location.search).get("next");
    location.href = next && next.startsWith("/") && !next.startsWith("//") ? next : HOME[result.role] || "/";
  } catch (err) {
    message.replaceChildren(el("div", { class: "notice", role: "alert" }, reasonText(err.code, err.message) || t("wrong_login")));
  }
});
