// The supervisor's page: calls in progress, and listening in on one (watch and listen only).
import { watchRoom } from "./teller-media.js";

const $ = (id) => document.getElementById(id);
const app = {
  token: sessionStorage.getItem("cuntong.watch.token") || "",
  user: sessionStorage.getItem("cuntong.watch.user") || "",
  live: [],
  names: {}, // business code -> Chinese name
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

function elapsed(since) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(since)) / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

function render() {
  const inside = !!app.token;
  $("login-view").hidden = inside;
  $("watch-view").hidden = !inside;
  $("who").hidden = $("logout").hidden = !inside;
  $("who").textContent = app.user;
  const rows = app.live.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.session = c.session;
    const business = (app.names[c.business] || c.business) + (c.elderly ? " · 老年客户" : "");
    for (const text of [business, c.teller, c.terminal, elapsed(c.since), c.guests.join("、") || "—"]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "watch";
    button.textContent = "旁听";
    button.disabled = !!app.watching;
    button.addEventListener("click", () => watch(c.session));
    td.append(button);
    tr.append(td);
    return tr;
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
      for (const b of await api("/teller/businesses")) app.names[b.code] = b.name_zh;
    }
    app.live = await api("/api/v1/teller/live");
  } catch (err) {
    say(`读取通话列表失败：${err.message}`);
    return;
  }
  if (app.watching && !app.live.some((c) => c.session === app.watching.session)) {
    await stopWatching(false);
    say("通话已结束或已转接，旁听结束。");
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
    say(`无法旁听：${err.message}`);
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
  sessionStorage.removeItem("cuntong.watch.token");
  sessionStorage.removeItem("cuntong.watch.user");
  render();
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  const username = $("username").value.trim();
  try {
    const r = await api("/api/v1/auth/login", { method: "POST", body: JSON.stringify({ username, password: $("password").value }) });
    app.token = r.token;
    app.user = username;
    sessionStorage.setItem("cuntong.watch.token", app.token);
    sessionStorage.setItem("cuntong.watch.user", username);
    await refresh();
  } catch (err) {
    $("login-error").textContent = `登录失败：${err.message}`;
  }
  render();
});
$("logout").addEventListener("click", signOut);
$("leave").addEventListener("click", () => stopWatching(true));
window.addEventListener("pagehide", () => { if (app.watching) stopWatching(true); });

render();
refresh();
setInterval(refresh, 3000);
