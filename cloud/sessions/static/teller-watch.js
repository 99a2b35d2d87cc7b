// The supervisor's page: calls in progress, and listening in on one (watch and listen only).
// DOM helpers, i18n and sign-in are the ones every page shares (/ui/*, common/web).
import { $, h, mmss } from "/ui/dom.js";
import { lang, register, t, toggleLang, translate } from "/ui/i18n.js";
import { forget, loginForm, remembered } from "/ui/login.js";
import { WATCH } from "./teller-i18n.js";
import { watchRoom } from "./teller-media.js";

register(WATCH);
const SIGN_IN = "cuntong.watch"; // this page's sign-in in sessionStorage (/ui/login.js)
const app = {
  token: remembered(SIGN_IN).token,
  user: remembered(SIGN_IN).user,
  live: [],
  names: {}, // business code -> {name_zh, name_en, ...} (GET /teller/businesses)
  watching: null, // { session, call }
};

async function api(path, init = {}) {
  const headers = { "Content-Type": "application/json" };
  if (app.token) headers.Authorization = `Bearer ${app.token}`;
  const r = await fetch(path, { ...init, headers });
  if (r.status === 401 && app.token) signOut();
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    throw new Error(body.detail || `HTTP ${r.status}`);
  }
  return r.status === 204 ? null : r.json();
}

function say(text) {
  $("banner").textContent = text;
  $("banner").hidden = !text;
}

const elapsed = (since) => mmss(Math.round((Date.now() - Date.parse(since)) / 1000));

function render() {
  translate(document, "watchBrand");
  $("lang").textContent = t("langSwitch");
  const inside = !!app.token;
  $("login-view").hidden = inside;
  $("watch-view").hidden = !inside;
  $("who").hidden = $("logout").hidden = !inside;
  $("who").textContent = app.user;
  const rows = app.live.map((c) => {
    const named = app.names[c.business];
    const business = (named ? named[`name_${lang()}`] : c.business) + (c.elderly ? ` · ${t("elderly")}` : "");
    const cells = [business, c.teller, c.terminal, elapsed(c.since), c.guests.join("、") || "—"];
    return h("tr", { "data-session": c.session }, cells.map((text) => h("td", {}, text)),
      h("td", {}, h("button", { type: "button", class: "watch", disabled: app.watching ? "" : null,
        onclick: () => watch(c.session) }, t("listen"))));
  });
  $("live").replaceChildren(...rows);
  $("none").hidden = app.live.length > 0;
  $("live-count").textContent = app.live.length ? `(${app.live.length})` : "";
  $("watching").hidden = !app.watching;
  $("watching-session").textContent = app.watching ? `#${app.watching.session.slice(-8)}` : "";
}

async function refresh() {
  if (!app.token) return;
  try {
    if (!Object.keys(app.names).length) {
      for (const b of await api("/teller/businesses")) app.names[b.code] = b;
    }
    app.live = await api("/api/v1/teller/live");
  } catch (err) {
    say(t("errList") + err.message);
    return;
  }
  if (app.watching && !app.live.some((c) => c.session === app.watching.session)) {
    await stopWatching(false);
    say(t("watchOver"));
  }
  // The teller rejoined the call (their page was reloaded) on a new feed: join again.
  const w = app.watching;
  const now = w && w.call && app.live.find((c) => c.session === w.session);
  if (now && now.teller_feed && w.tellerFeed && now.teller_feed !== w.tellerFeed) {
    await stopWatching(false);
    await watch(w.session);
  }
  render();
}

async function watch(session) {
  say("");
  try {
    const grant = await api(`/api/v1/teller/sessions/${encodeURIComponent(session)}/watch`, { method: "POST" });
    app.watching = { session, call: null, tellerFeed: (grant.watch || [])[0] };
    render();
    app.watching.call = await watchRoom(grant, (feed, stream) => {
      $(feed === "customer" ? "v-customer" : "v-teller").srcObject = stream;
    }, { signal: AbortSignal.timeout(20000) });
  } catch (err) {
    app.watching = null;
    say(t("errWatch") + err.message);
  }
  render();
}

async function stopWatching(tellDesk) {
  const w = app.watching;
  app.watching = null;
  if (!w) return;
  if (w.call) await w.call.leave();
  $("v-customer").srcObject = $("v-teller").srcObject = null;
  if (tellDesk) {
    await api(`/api/v1/teller/sessions/${encodeURIComponent(w.session)}/watch/leave`, { method: "POST" })
      .catch(() => {});
  }
  render();
}

function signOut() {
  stopWatching(true);
  app.token = app.user = "";
  forget(SIGN_IN);
  render();
}

loginForm($("login"), SIGN_IN, {
  before: () => ($("login-error").textContent = ""),
  onSignedIn: async ({ token, user }) => {
    app.token = token;
    app.user = user;
    await refresh();
    render();
  },
  onFailed: (err) => ($("login-error").textContent = t("errLogin") + (err.detail || err.status)),
});
$("logout").addEventListener("click", signOut);
$("lang").addEventListener("click", () => {
  toggleLang();
  render();
});
$("leave").addEventListener("click", () => stopWatching(true));
window.addEventListener("pagehide", () => { if (app.watching) stopWatching(true); });

render();
refresh();
setInterval(refresh, 3000);
