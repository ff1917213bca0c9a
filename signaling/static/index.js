// The start page: where each kind of user goes.
import { el, header } from "./common.js";
import { applyTexts, t } from "./i18n.js";

header("app");
const links = [["/login", "login"], ["/teacher", "teacher_title"], ["/classroom", "classroom_title"], ["/admin", "admin_title"], ["/tech", "tech_title"], ["/player", "player_title"]];
document.body.append(el("main", {}, el("div", { class: "panel" },
  ...links.map(([href, key]) => el("p", {}, el("a", { href, "data-t": key, class: "button" }, t(key)))))));
applyTexts();
