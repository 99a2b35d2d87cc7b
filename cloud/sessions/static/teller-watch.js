// The supervisor's page: calls in progress, and listening in on one (watch and listen only).
// DOM helpers, i18n and sign-in are the ones every page shares (/ui/*, common/web).
import { $, h, mmss } from "/ui/dom.js";
import { lang, register, t, toggleLang, translate } from "/ui/i18n.js";
import { forget, loginForm, remembered } from "/ui/login.js";
import { STEPS, WATCH } from "./teller-i18n.js";
import { watchRoom } from "./teller-media.js";

register(WATCH);
const SIGN_IN = "cuntong.watch"; // this page's sign-in in sessionStorage (/ui/login.js)
const app = {
  token: remembered(SIGN_IN).token,
  user: remembered(SIGN_IN).user,
  live: [],
  names: {}, // business code -> {name_zh, name_en, ...} (GET /teller/businesses)
  watching: null, // { session, call }
  steps: null, // { session, workflow, error }: the session whose steps are open
};

// Steps a machine performs (common/wire/call.py DEVICE_STEPS, and the cloud's own online
// check): only these can be overridden, by a supervisor, when the device failed or is missing.
const MACHINE_STEPS = new Set(["id_card_read", "face_match", "liveness", "active_liveness",
  "card_read", "pin_entry", "voucher_capture", "e_signature", "id_online_check"]);
// Steps a second person gives (the serving teller cannot: the API answers 403): the
// supervisor's authorisation of a high-risk business, given from this page.
const SECOND_PERSON = new Set(["supervisor_authorisation"]);

async function api(path, init = {}) {
  const headers = { "Content-Type": "application/json" };
  if (app.token) headers.Authorization = `Bearer ${app.token}`;
  const r = await fetch(path, { ...init, headers });
  if (r.status === 401 && app.token) signOut();
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || "");
    throw Object.assign(new Error(detail || `HTTP ${r.status}`), { status: r.status });
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
        onclick: () => watch(c.session) }, t("listen")),
        h("button", { type: "button", class: "secondary show-steps", onclick: () => openSteps(c.session) },
          t("showSteps"))));
  });
  $("live").replaceChildren(...rows);
  $("none").hidden = app.live.length > 0;
  $("live-count").textContent = app.live.length ? `(${app.live.length})` : "";
  $("watching").hidden = !app.watching;
  $("watching-session").textContent = app.watching ? `#${app.watching.session.slice(-8)}` : "";
  renderSteps();
}

// --- a session's steps, and the override of a device step (supervisors only: the API
// answers 403 to anyone else, and the teller's own page has no such button) ------------

async function openSteps(session) {
  app.steps = { session, workflow: null, error: "" };
  await loadSteps();
}

async function loadSteps() {
  const open = app.steps;
  if (!open) return;
  try {
    open.workflow = await api(`/api/v1/workflow/${encodeURIComponent(open.session)}`);
    open.error = "";
  } catch (err) {
    open.workflow = null;
    open.error = err.status === 404 ? t("noWorkflow") : t("errSteps") + err.message;
  }
  renderSteps();
}

async function override(step, reason) {
  const open = app.steps;
  try {
    open.workflow = await api(`/api/v1/workflow/${encodeURIComponent(open.session)}/steps/${step}/override`,
      { method: "POST", body: JSON.stringify({ reason }) });
    open.error = "";
  } catch (err) {
    open.error = t("errOverride") + err.message;
  }
  renderSteps();
}

async function authorise(step) {
  const open = app.steps;
  try {
    open.workflow = await api(`/api/v1/workflow/${encodeURIComponent(open.session)}/steps`,
      { method: "POST", body: JSON.stringify({ step, passed: true, detail: {} }) });
    open.error = "";
  } catch (err) {
    open.error = t("errAuthorise") + err.message;
  }
  renderSteps();
}

function renderSteps() {
  const open = app.steps;
  $("steps-card").hidden = !open;
  if (!open) return;
  $("steps-session").textContent = `#${open.session.slice(-8)}`;
  $("steps-error").textContent = open.error || "";
  const wf = open.workflow;
  if (!wf) { $("sup-steps").replaceChildren(); return; }
  // keep what the supervisor is typing across the 3-second refresh
  const typing = document.getElementById("override-reason");
  const draft = typing ? typing.value : "";
  const done = new Map(wf.done.map((r) => [r.step, r]));
  $("sup-steps").replaceChildren(...wf.steps.map((step) => {
    const rec = done.get(step);
    const next = !wf.outcome && wf.next_step === step;
    const state = rec ? (rec.passed ? "done" : "failed") : next ? "next" : "";
    const words = rec ? (rec.passed ? t("stepDone") : t("stepFailed")) : next ? t("stepNext") : t("stepLater");
    const kids = [h("span", { class: "step-name" }, STEPS[lang()][step] || step), " · ", h("span", { class: "muted" }, words)];
    if (rec && rec.detail && rec.detail.override) {
      kids.push(h("div", { class: "hint" }, `${t("overridden")} (${rec.actor}): ${rec.detail.reason}`));
    }
    if (next && MACHINE_STEPS.has(step)) {
      const reason = h("textarea", { id: "override-reason", rows: "2", placeholder: t("overrideReason"), "aria-label": t("overrideReason") });
      reason.value = draft;
      kids.push(h("div", { class: "override-form" }, reason,
        h("button", { type: "button", class: "override", "data-step": step,
          onclick: () => override(step, reason.value.trim()) }, t("override"))));
    }
    if (next && SECOND_PERSON.has(step)) {
      kids.push(h("button", { type: "button", class: "authorise", "data-step": step,
        onclick: () => authorise(step) }, t("authorise")));
    }
    return h("li", { class: state, "data-step": step }, kids);
  }));
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
  if (app.steps && !app.live.some((c) => c.session === app.steps.session)) app.steps = null;
  else if (app.steps && !document.activeElement.matches("#override-reason")) await loadSteps();
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
  app.steps = null;
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
$("close-steps").addEventListener("click", () => { app.steps = null; render(); });
window.addEventListener("pagehide", () => { if (app.watching) stopWatching(true); });

render();
refresh();
setInterval(refresh, 3000);
