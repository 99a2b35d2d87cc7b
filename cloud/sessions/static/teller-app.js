// The teller desk page: sign in, set a state, take offers (ring + countdown), run the call
// (teller-call.js), end it with an outcome and notes, wrap up. Plain ES modules, no library.
// Text from the server always goes through textContent (h()), never innerHTML. The DOM
// helpers, the i18n and the sign-in are the ones every page shares (/ui/*, common/web).

import { $, h, mmss, toast } from "/ui/dom.js";
import { lang, register, t, toggleLang, translate } from "/ui/i18n.js";
import { LoginError, loginForm, remembered, signOut as endSignIn } from "/ui/login.js";
import { STRINGS, LANGUAGES } from "./teller-i18n.js";
import { Call, closeWorkflow } from "./teller-call.js";

register(STRINGS);
const SIGN_IN = "cuntong.teller"; // this page's sign-in in sessionStorage (/ui/login.js)
const WRAP_UP_S = 120; // the desk's default wrap-up limit (routing.Policy.wrap_up_limit)
const OUTCOMES = { done: "completed", not_done: "abandoned" }; // -> workflow outcome
// A ring-back's note stays over the video this long into the call: the customer chose
// 有空了叫我 and may still be walking back while the terminal rings for them.
const RING_BACK_NOTE_MS = 60_000;

const app = {
  get lang() { return lang(); }, // the shared choice (/ui/i18n.js)
  token: remembered(SIGN_IN).token,
  user: remembered(SIGN_IN).user,
  me: null, // GET /api/v1/teller/me
  offer: null, // the open offer message
  call: null, // the Call in progress
  accepting: null, // the session whose accept is on its way (its grant is not here yet)
  rejoining: null, // the session whose media this page is taking back (after a reload)
  rejoinFailed: null, // ... and one it could not: the call can only be ended from here
  wrap: null, // {session, endsAt, recorded: {outcome, notes, reference}, call}
  ending: null, // the end dialog's submission under way, {wait: AbortController while
  // the core's answer to a posting is awaited}; a second submission meanwhile is ignored
  socket: null,
  ringing: false,
  bannerKey: null,
  businesses: [], // the catalogue: [{code, name_zh, name_en, risk}]
  rings: 0,
};
window.tellerApp = app; // for the browser tests and for support staff poking at a desk

function businessName(code) {
  const b = app.businesses.find((x) => x.code === code);
  return b ? b[`name_${app.lang}`] : code;
}

// --- small helpers ------------------------------------------------------------------------

// One banner at a time; `only` clears it only if that banner is the one showing.
function banner(key, only) {
  if (key === null && only && app.bannerKey !== only) return;
  app.bannerKey = key;
  $("banner").hidden = !key;
  $("banner").textContent = key ? t(key) : "";
  $("banner").className = `banner${key && !["errLink", "errVideo", "errPeerGone"].includes(key) ? " bad" : ""}`;
}

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status} ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

async function api(path, opts) {
  const o = Object.assign({ method: "GET" }, opts || {});
  o.headers = Object.assign({ "Content-Type": "application/json" }, o.headers || {});
  if (app.token) o.headers.Authorization = `Bearer ${app.token}`;
  let r;
  try {
    r = await fetch(path, o);
  } catch (err) {
    throw new ApiError(0, "network");
  }
  if (!r.ok) {
    let detail = "";
    try { detail = (await r.json()).detail; } catch (err) { /* not JSON */ }
    if (r.status === 401 && app.token) signOut("errExpired");
    throw new ApiError(r.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return r.status === 204 ? null : r.json();
}

// Plain words for a failed request (the server's English detail goes to the console).
function explain(err) {
  if (!(err instanceof ApiError || err instanceof LoginError)) return t("errGeneric") + err.message;
  console.warn("teller api:", err.status, err.detail);
  const key = { 0: "errNetwork", 401: "errExpired", 409: "errConflict", 502: "errMedia", 503: "errDesk" }[err.status];
  if (key) return t(key);
  if (err.status === 403) return t(/second person/.test(err.detail) ? "errSecondPerson" : "errForbidden");
  return t("errGeneric") + err.status;
}
const fail = (err) => toast(explain(err));

// --- the ring: a WebAudio tone, nothing downloaded ------------------------------------------

let audio = null;
function unlockAudio() {
  // Browsers start audio only after a user gesture: signing in is one.
  if (!audio && window.AudioContext) audio = new AudioContext();
  if (audio && audio.state === "suspended") audio.resume().catch(() => {});
}
// After a reload there was no sign-in click: the first click or key anywhere will do.
document.addEventListener("pointerdown", unlockAudio);
document.addEventListener("keydown", unlockAudio);

function ringBurst() {
  if (!audio) return;
  if (audio.state === "running") app.rings++; // bursts actually played (tests read this)
  const now = audio.currentTime;
  const gain = audio.createGain();
  gain.connect(audio.destination);
  gain.gain.setValueAtTime(0, now);
  for (const [start, stop] of [[0, 0.4], [0.6, 1.0]]) {
    gain.gain.linearRampToValueAtTime(0.18, now + start + 0.02);
    gain.gain.setValueAtTime(0.18, now + stop - 0.02);
    gain.gain.linearRampToValueAtTime(0, now + stop);
  }
  for (const f of [450, 900]) {
    const osc = audio.createOscillator();
    osc.frequency.value = f;
    osc.connect(gain);
    osc.start(now);
    osc.stop(now + 1.05);
  }
}
function ring(on) {
  if (on === app.ringing) return;
  app.ringing = on;
  clearInterval(ring.timer);
  if (on) {
    ringBurst();
    ring.timer = setInterval(ringBurst, 2500);
  }
}

// --- sign-in ----------------------------------------------------------------------------

loginForm($("login"), SIGN_IN, {
  before: unlockAudio, // signing in is the user gesture that lets the ring play
  onSignedIn: async ({ token, user }) => {
    app.token = token;
    app.user = user;
    banner(null);
    await enterDesk();
  },
  onFailed: (err) => {
    banner(err.status === 401 ? "errLogin" : err.status === 0 ? "errNetwork" : null);
    if (err.status !== 401 && err.status !== 0) fail(err);
  },
});

$("logout").addEventListener("click", async () => {
  if (app.call) return; // finish the call first
  await api("/api/v1/teller/me/state", { method: "POST", body: JSON.stringify({ state: "offline" }) }).catch(() => null);
  signOut(null);
});

function signOut(why) {
  endSignIn(SIGN_IN, app.token); // the server forgets the token too (best effort)
  app.token = "";
  app.me = null;
  if (app.socket) app.socket.close();
  app.socket = null;
  app.offer = null;
  ring(false);
  showView();
  render();
  banner(why);
}

async function enterDesk() {
  showView();
  try {
    app.me = await api("/api/v1/teller/me");
  } catch (err) {
    banner({ 403: "errForbidden", 404: "errNoProfile", 503: "errDesk" }[err.status] || "errNetwork");
    return;
  }
  connectEvents();
  app.businesses = await api("/teller/businesses").catch(() => []);
  maybeRejoin();
  render();
  const current = document.querySelector(`#states [data-state="${app.me.state}"]`);
  (current || document.querySelector("#states button")).focus();
}

function showView() {
  const inside = !!app.token;
  $("login-view").hidden = inside;
  $("desk").hidden = !inside;
  $("who").hidden = $("logout").hidden = !inside;
  $("who").textContent = app.user;
  if (!inside) $("username").focus();
}

// --- the desk's events --------------------------------------------------------------------

function connectEvents(delay = 1000) {
  if (!app.token) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/teller/events?token=${encodeURIComponent(app.token)}`);
  app.socket = ws;
  let alive = false;
  const ping = setInterval(() => ws.readyState === 1 && ws.send("ping"), 20000);
  ws.addEventListener("message", (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch (err) { return; }
    if (msg.type === "hello") {
      alive = true;
      banner(null, "errLink");
      refreshMe();
    } else {
      onEvent(msg);
    }
  });
  ws.addEventListener("close", () => {
    clearInterval(ping);
    if (app.socket !== ws || !app.token) return;
    banner("errLink");
    const next = alive ? 1000 : Math.min(delay * 2, 10000);
    setTimeout(() => app.socket === ws && connectEvents(next), next);
  });
}

// The browser knows before the socket does when the network goes: say so, and reconnect
// at once when it is back rather than waiting for the back-off.
window.addEventListener("offline", () => {
  if (!app.token) return;
  banner("errLink");
  if (app.socket) app.socket.close();
});
window.addEventListener("online", () => {
  if (app.token && (!app.socket || app.socket.readyState > 1)) connectEvents();
});

async function refreshMe() {
  try {
    app.me = await api("/api/v1/teller/me");
  } catch (err) {
    return;
  }
  if (app.me.state === "wrap-up" && !app.wrap && app.me.session) startWrap(app.me.session, null, false);
  if (app.me.state !== "wrap-up" && app.wrap && !app.call) app.wrap = null;
  maybeRejoin();
  render();
}

function onEvent(msg) {
  if (msg.type === "offer") {
    app.offer = msg;
    ring(true);
    render();
    $("accept").focus();
    // Who is calling, if the terminal read the ID card (masked; best effort).
    api(`/api/v1/teller/sessions/${encodeURIComponent(msg.session)}`).then((panel) => {
      if (app.offer === msg && panel.customer) { msg.customer = panel.customer; render(); }
    }).catch(() => {});
  } else if (msg.type === "ring_back") {
    // The customer of the open offer chose to be called back after it was made.
    if (app.offer && app.offer.session === msg.session) { app.offer.ring_back = true; render(); }
  } else if (msg.type === "offer_withdrawn") {
    if (app.offer && app.offer.session === msg.session) {
      app.offer = null;
      ring(false);
      toast(t("offerWithdrawn") + (msg.cause || ""));
      refreshMe();
    }
  } else if (msg.type === "liveness") {
    if (app.call && app.call.session === msg.session) app.call.onLiveness(msg.verdict);
  } else if (msg.type === "step_result") {
    if (app.call && app.call.session === msg.session) app.call.onStepResult(msg);
  } else if (msg.type === "guest") {
    // A supervisor joined (or left) the call to watch and listen: the teller must know.
    if (app.call && app.call.session === msg.session) {
      const guests = new Set(app.call.guests || []);
      if (msg.present) guests.add(msg.guest); else guests.delete(msg.guest);
      app.call.guests = [...guests].sort();
      toast(t(msg.present ? "guestJoined" : "guestLeft") + msg.guest);
      render();
    }
  } else if (msg.type === "ended" || msg.type === "failed") {
    if (app.call && app.call.session === msg.session) callOver(msg);
    else refreshMe();
  }
}

// --- offer --------------------------------------------------------------------------------

async function accept() {
  const offer = app.offer;
  if (!offer) return;
  ring(false);
  app.offer = null;
  let grant;
  app.accepting = offer.session;
  try {
    grant = await api(`/api/v1/teller/sessions/${encodeURIComponent(offer.session)}/accept`, { method: "POST" });
  } catch (err) {
    fail(err);
    refreshMe();
    return;
  } finally {
    app.accepting = null;
  }
  await startCall(offer, grant);
}

// The desk has us in a call this page holds no media for (the page was reloaded or the
// browser crashed mid-call): take a fresh grant and carry on. The panel and the workflow
// checklist come back from the server; the terminal follows our new feed.
async function rejoin(session) {
  app.rejoining = session;
  render();
  let grant;
  try {
    grant = await api(`/api/v1/teller/sessions/${encodeURIComponent(session)}/rejoin`, { method: "POST" });
  } catch (err) {
    app.rejoinFailed = session; // not again: the call can still be ended (orphan())
    if (err.status !== 409) fail(err); // 409: it ended meanwhile
    return;
  } finally {
    app.rejoining = null;
    render();
  }
  const call = grant.call; // what the offer said, and when the call connected
  await startCall(Object.assign({ type: "offer" }, call), grant, call.connected_at);
}

function maybeRejoin() {
  const session = orphan();
  if (session && app.rejoinFailed !== session) rejoin(session);
}

async function startCall(offer, grant, connectedAt) {
  const call = new Call({ api, t, lang: () => app.lang, toast, banner, fail, businessName }, offer);
  if (connectedAt) call.startedAt = connectedAt * 1000;
  if (offer.guests) call.guests = offer.guests; // a rejoin: who listens in already
  app.call = call;
  app.wrap = null;
  app.me = Object.assign({}, app.me, { state: "busy", session: offer.session });
  render();
  $("hangup").focus();
  await Promise.all([
    call.join(grant).catch((err) => console.warn("join:", err)),
    call.loadPanel().catch(fail),
    call.loadWorkflow().catch(fail),
  ]);
  render();
}

async function decline() {
  const offer = app.offer;
  if (!offer) return;
  ring(false);
  app.offer = null;
  render();
  await api(`/api/v1/teller/sessions/${encodeURIComponent(offer.session)}/decline`, { method: "POST" }).catch(fail);
  refreshMe();
}

$("accept").addEventListener("click", accept);
$("decline").addEventListener("click", decline);

// --- state selector -----------------------------------------------------------------------

async function setState(state) {
  if (!app.me || app.call || app.me.state === state) return;
  try {
    await api("/api/v1/teller/me/state", { method: "POST", body: JSON.stringify({ state }) });
    if (app.wrap) app.wrap = null; // leaving wrap-up closes it
  } catch (err) {
    fail(err);
  }
  await refreshMe();
}
document.querySelectorAll("#states button").forEach((b) => b.addEventListener("click", () => setState(b.dataset.state)));

// --- ending: outcome, notes, transfer -----------------------------------------------------

function openEnd(mode) {
  const d = $("end-dialog");
  d.dataset.mode = mode; // "call": still connected; "wrap": the call is over
  $("transfer-choice").hidden = mode !== "call";
  $("end-form").elements.outcome.value = "done";
  $("transfer-fields").hidden = true;
  $("end-error").hidden = true;
  $("end-core").hidden = true;
  $("notes").value = "";
  fillTransfer();
  d.showModal();
  $("end-form").querySelector("input[name=outcome]").focus();
}

function fillTransfer() {
  const opts = (pairs, current) => pairs.map(([code, name]) =>
    h("option", { value: code, selected: code === current ? "" : null }, name));
  const offer = (app.call && app.call.offer) || {};
  $("transfer-business").replaceChildren(...opts(app.businesses.map((b) => [b.code, b[`name_${app.lang}`]]), offer.business));
  $("transfer-language").replaceChildren(...opts(Object.entries(LANGUAGES[app.lang]), offer.language));
}

$("end-form").addEventListener("change", () => {
  $("transfer-fields").hidden = $("end-form").elements.outcome.value !== "transfer";
});
// While the core's answer to a posting is awaited, cancelling the dialog stops the waiting
// only: the posting stays with the cloud, whose reconciler settles it, and 办结 again asks
// for the answer (same idempotency key, never a second posting).
function stopCoreWait() {
  if (!app.ending || !app.ending.wait) return;
  app.ending.wait.abort();
  app.ending = null; // a new submission may start at once
  if (app.call) app.call.ending = null;
  $("end-confirm").disabled = false;
}
$("end-cancel").addEventListener("click", () => { stopCoreWait(); $("end-dialog").close(); });
$("end-dialog").addEventListener("cancel", stopCoreWait); // Escape

// The core's answer, in the dialog: 处理中, 成功 with the core's reference, 失败 by name.
function showCore(p) {
  const el = $("end-core");
  if (!p || p.status === "none") { el.hidden = true; return; }
  const reason = (r) => (STRINGS[app.lang][`core_${r}`] ? `${t(`core_${r}`)} (${r})` : r);
  el.textContent = {
    sending: t("corePending"), pending: t("corePending"),
    applied: `${t("coreApplied")}${p.reference}`,
    refused: `${t("coreRefused")}${reason(p.reason)}`,
  }[p.status] || "";
  el.className = `core-status ${p.status === "sending" ? "pending" : p.status}`;
  el.dataset.status = p.status;
  el.hidden = false;
}

$("end-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (app.ending) return; // one submission at a time: a second click or Enter does nothing
  const run = { wait: null };
  const mode = $("end-dialog").dataset.mode;
  const outcome = $("end-form").elements.outcome.value;
  const notes = $("notes").value.trim();
  const call = mode === "call" ? app.call : app.wrap && app.wrap.call;
  // A call without media here (the page was reloaded mid-call) still ends by its id.
  const session = mode === "call" ? (call ? call.session : orphan()) : app.wrap.session;
  const label = t({ done: "outcomeDone", not_done: "outcomeNotDone", transfer: "outcomeTransfer" }[outcome]);
  const showError = (msg) => { $("end-error").textContent = msg; $("end-error").hidden = false; };
  $("end-error").hidden = true;
  app.ending = run;
  $("end-confirm").disabled = true;
  let posted = null;
  if (call && mode === "call") call.ending = { outcome, notes }; // "ended" may come first
  try {
    if (outcome === "transfer") {
      await resolved(session, false);
      if (notes) { // on the timeline too; the workflow stays open for the session
        await api(`/api/v1/workflow/${encodeURIComponent(session)}/notes`, { method: "POST",
          body: JSON.stringify({ text: notes }) }).catch((err) => { if (![404, 409].includes(err.status)) throw err; });
      }
      await api(`/api/v1/teller/sessions/${encodeURIComponent(session)}/transfer`, { method: "POST",
        body: JSON.stringify({ business: $("transfer-business").value, language: $("transfer-language").value, cause: notes || label }) });
    } else {
      // A business that posts to the core: 处理中 until the core answers, then 成功 with its
      // reference (kept in the wrap-up) or 失败 with its reason (the dialog stays open).
      // Only while that answer is awaited may 取消 / Escape stop the waiting (run.wait).
      const wait = new AbortController();
      const core = {
        status: (p) => {
          posted = p;
          run.wait = ["sending", "pending"].includes(p.status) ? wait : null;
          showCore(p);
        },
        ask: (field) => prompt(t(field === "account" ? "coreAccount" : "coreAmount")),
        signal: wait.signal,
      };
      if (call) await call.finish(OUTCOMES[outcome], notes, core);
      else await closeWorkflow(api, session, OUTCOMES[outcome], notes, core); // after a reload
      await resolved(session, outcome === "done");
      if (mode === "call") {
        // The outcome and the teller's notes travel as the hang-up cause (kept with the session).
        await api(`/api/v1/teller/sessions/${encodeURIComponent(session)}/hang-up`, { method: "POST",
          body: JSON.stringify({ cause: `${label}${notes ? "｜" + notes : ""}`.slice(0, 200) }) });
      }
    }
    $("end-dialog").close();
    const reference = posted && posted.status === "applied" ? posted.reference : null;
    // The very object the desk's "ended" takes for its wrap-up (call.ending), now with the
    // core's reference: that wrap-up may start before this point or after it (it first
    // waits for the media to close), and shows the reference either way.
    const recorded = Object.assign((mode === "call" && call && call.ending) || {},
      { outcome, notes, reference });
    if (mode === "call" && call) {
      await callOver({ type: "ended", session, cause: label }, recorded);
      // The desk's "ended" may have come first and opened the wrap-up with the outcome
      // alone (call.ending): give it the core's reference too.
      if (app.wrap && app.wrap.session === session) { app.wrap.recorded = recorded; render(); }
    } else if (mode === "call") { startWrap(session, null, recorded); refreshMe(); }
    else { app.wrap.recorded = recorded; render(); }
    toast(t("outcomeSaved") + (reference ? ` · ${t("coreApplied")}${reference}` : ""));
  } catch (err) {
    if (err.coreWaiting) { toast(t("coreWaiting")); return; } // the teller closed the dialog
    if (call && mode === "call") call.ending = null;
    if (err.coreRefused) showCore(err.posting); // by name, in the dialog
    else if (err.coreInDoubt) {
      showCore(err.posting);
      showError(t(err.posting.status === "applied" ? "coreInDoubtApplied" : "coreInDoubtPending"));
    }
    else if (err.coreField) showError(t("errCoreField") + t(err.field === "account" ? "coreAccount" : "coreAmount"));
    else {
      if (posted) showCore(null); // 处理中 no longer holds: what went wrong is below
      showError(err.incomplete ? t("errIncomplete") : err.rejected ? t("errRejected") : explain(err));
    }
  } finally {
    if (app.ending === run) {
      app.ending = null;
      $("end-confirm").disabled = false;
    }
  }
});

// First-contact resolution, for the KPI; an older desk without the route is no reason to fail.
async function resolved(session, yes) {
  await api(`/api/v1/teller/sessions/${encodeURIComponent(session)}/outcome`,
    { method: "POST", body: JSON.stringify({ resolved: yes }) }).catch((err) => {
    if (err.status !== 404 && err.status !== 405) throw err;
  });
}

// The desk has us in a call this page holds no media for (reloaded mid-call) and is not
// about to (an accept or a rejoin on its way).
const orphan = () => (!app.call && !app.accepting && !app.rejoining && app.me
  && app.me.state === "busy" && app.me.session) || null;

$("hangup").addEventListener("click", () => (app.call || orphan()) && openEnd("call"));
$("transfer").addEventListener("click", () => {
  if (!app.call) return;
  openEnd("call");
  $("end-form").elements.outcome.value = "transfer";
  $("transfer-fields").hidden = false;
});

// The call is over (we ended it, the customer did, or it failed): media down, wrap-up on.
async function callOver(msg, recorded) {
  const call = app.call;
  if (!call) return;
  app.call = null;
  recorded = recorded || call.ending || null;
  await call.leave();
  banner(null, "errVideo");
  banner(null, "errPeerGone");
  toast((msg.type === "failed" ? t("callFailed") : t("callEnded")) + (msg.cause || ""));
  // A failed call frees the teller at once; any other ending (a transfer too) is wrapped up.
  if (msg.type !== "failed") startWrap(call.session, call, recorded);
  await refreshMe();
  render();
}

function startWrap(session, call, recorded) {
  app.wrap = { session, call, recorded, endsAt: Date.now() + WRAP_UP_S * 1000 };
  render();
  $("wrap-done").focus();
}

$("wrap-done").addEventListener("click", async () => {
  try {
    await api("/api/v1/teller/me/wrap-up-done", { method: "POST" });
  } catch (err) {
    if (err.status !== 409) { fail(err); return; } // 409: the desk already ended it
  }
  app.wrap = null;
  await refreshMe();
  render();
});

// --- the customer screen tools ------------------------------------------------------------

document.querySelectorAll("[data-form]").forEach((b) => b.addEventListener("click", () => app.call && app.call.pushForm(b.dataset.form)));
document.querySelectorAll("[data-capture]").forEach((b) => b.addEventListener("click", () => app.call && app.call.capture(b.dataset.capture)));
$("ask-sign").addEventListener("click", () => app.call && app.call.askSign());
$("screen").addEventListener("submit", (e) => {
  e.preventDefault();
  if (app.call) app.call.syncScreen($("screen-title").value, $("screen-text").value);
});

// --- language -----------------------------------------------------------------------------

$("lang").addEventListener("click", () => {
  toggleLang();
  render();
});

function translateStatic() {
  translate(document, "brand");
  $("lang").textContent = t("langSwitch");
  if (app.bannerKey) $("banner").textContent = t(app.bannerKey);
}

// --- rendering ----------------------------------------------------------------------------

function render() {
  translateStatic();
  const state = app.me ? app.me.state : "offline";
  // The state controls appear once the desk has told us where we stand.
  $("states").hidden = $("state-badge").hidden = !(app.token && app.me);
  $("state-badge").textContent = t(state);
  $("who").textContent = (app.me && app.me.name) || app.user; // display name once /me says it
  document.querySelectorAll("#states button").forEach((b) => {
    b.setAttribute("aria-checked", String(b.dataset.state === state));
    b.disabled = !!app.call || state === "busy";
  });
  $("offer").hidden = !app.offer;
  if (app.offer) {
    const o = app.offer;
    $("offer-facts").replaceChildren(
      h("div", {}, h("b", {}, businessName(o.business))),
      h("div", {}, `${t("language")}：${LANGUAGES[app.lang][o.language] || o.language}`),
      o.customer ? h("div", {}, `${t("name")}：${o.customer.name}`) : null,
      o.elderly ? h("span", { class: "badge major" }, t("elderly")) : null,
      o.ring_back ? h("div", { id: "offer-ring-back", class: "ring-back" }, t("ringBackOffer")) : null);
  }
  // A ring-back: the customer may have stepped away; the terminal rings them back.
  const calledBack = !!(app.call && app.call.offer.ring_back && Date.now() - app.call.startedAt < RING_BACK_NOTE_MS);
  $("ring-back-note").hidden = !calledBack;
  $("ring-back-note").textContent = calledBack ? t("ringBackCall") : "";
  $("wrapup").hidden = !app.wrap || !!app.call;
  if (app.wrap) {
    const rec = app.wrap.recorded;
    $("wrap-outcome").replaceChildren(rec
      ? h("div", {}, `${t("outcome")}：`, h("b", {}, t({ done: "outcomeDone", not_done: "outcomeNotDone", transfer: "outcomeTransfer" }[rec.outcome])), rec.notes ? ` · ${rec.notes}` : "",
        rec.reference ? h("div", { id: "wrap-core", class: "core-status applied" }, `${t("coreApplied")}${rec.reference}`) : null)
      : h("button", { type: "button", class: "secondary", id: "record-outcome", onclick: () => openEnd("wrap") }, t("recordOutcome")));
  }
  const idle = { available: "idleAvailable", break: "idleBreak", offline: "idleOffline" }[state];
  $("idle").textContent = app.call ? ($("remote").videoWidth ? "" : t("remoteWaiting")) : app.offer || app.wrap ? "" : t(idle || "idleOffline");
  $("transfer").disabled = !app.call;
  $("hangup").disabled = !app.call && !orphan();
  if (orphan()) $("idle").textContent = t(app.rejoinFailed === orphan() ? "idleOrphan" : "rejoining");
  if (app.rejoining) $("idle").textContent = t("rejoining");
  // The session's tail is enough to read out to a colleague; the whole id is the tooltip.
  $("call-session").textContent = app.call ? `#${app.call.session.slice(-8)}` : "";
  $("call-session").title = app.call ? app.call.session : "";
  const guests = (app.call && app.call.guests) || [];
  $("call-guests").hidden = !guests.length;
  $("call-guests").textContent = guests.length ? t("watching") + guests.join("、") : "";
  const shown = app.call || (app.wrap && app.wrap.call);
  if (shown) shown.render();
  else {
    $("customer-body").replaceChildren(h("div", { class: "muted" }, t("noCustomer")));
    $("steps").replaceChildren();
    $("replies").replaceChildren();
    $("signature-box").hidden = $("documents-box").hidden = true;
    document.querySelectorAll("#tools button").forEach((b) => (b.disabled = true));
  }
  if (!app.call) document.querySelectorAll("#tools button").forEach((b) => (b.disabled = true));
}

// Countdowns and the call clock.
setInterval(() => {
  if (app.offer) {
    const left = Math.max(0, Math.ceil(app.offer.expires - Date.now() / 1000));
    $("offer-left").textContent = left;
    if (left === 0) { app.offer = null; ring(false); render(); refreshMe(); }
  }
  if (app.call) {
    $("call-time").textContent = mmss((Date.now() - app.call.startedAt) / 1000);
    if (!$("ring-back-note").hidden && Date.now() - app.call.startedAt >= RING_BACK_NOTE_MS) render();
    if ($("remote").videoWidth && $("idle").textContent) $("idle").textContent = "";
  }
  if (app.wrap && !app.call) {
    const left = Math.max(0, Math.ceil((app.wrap.endsAt - Date.now()) / 1000));
    $("wrap-left").textContent = left;
    if (left === 0) { app.wrap = null; refreshMe(); }
  }
}, 250);

// --- keyboard -----------------------------------------------------------------------------

document.addEventListener("keydown", (e) => {
  if ($("end-dialog").open) return; // the dialog has its own keys (Esc closes it)
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (app.offer && e.key === "Enter" && !typing && document.activeElement.id !== "decline") { e.preventDefault(); accept(); return; }
  if (app.offer && e.key === "Escape") { e.preventDefault(); decline(); return; }
  if (!e.altKey) return;
  const action = { 1: () => setState("available"), 2: () => setState("break"), 3: () => setState("offline"),
    e: () => (app.call || orphan()) && openEnd("call"), w: () => app.wrap && !app.call && $("wrap-done").click() }[e.key.toLowerCase()];
  if (action) { e.preventDefault(); action(); }
});

// --- start --------------------------------------------------------------------------------

translateStatic();
if (app.token) enterDesk(); else showView();
render();
