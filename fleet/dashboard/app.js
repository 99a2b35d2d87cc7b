// Fleet dashboard: an ES module, hash routes, polling the fleet API every 2 s on live pages.
// All text from the API goes through textContent (h()), never innerHTML. The DOM helpers,
// the i18n and the sign-in are the ones every page shares (/ui/*, common/web).
import { $, h, toast } from "/ui/dom.js";
import { lang, register, t, toggleLang, translate } from "/ui/i18n.js";
import { forget, loginForm, remembered, signOut } from "/ui/login.js";
import { lineChart } from "./chart.js";
import { STRINGS } from "./i18n.js";
import { firstError, mergePatch } from "./schema.js";

register(STRINGS);
// Operators sign in with their cloud account; the token lives in this tab only (/ui/login.js).
const SIGN_IN = "cuntong";
const view = $("view");
let token = remembered(SIGN_IN).token;
let timer = null;

function showAccount() {
  $("login").hidden = !!token;
  $("who").hidden = !token;
  $("logout").hidden = !token;
  $("who").textContent = remembered(SIGN_IN).user;
}
loginForm($("login"), SIGN_IN, {
  onSignedIn: (signedIn) => {
    token = signedIn.token;
    showAccount();
    render();
  },
  onFailed: (err) => toast(`${t("loginFailed")} (${err.status || t("network")})`),
});
$("logout").addEventListener("click", async () => {
  await signOut(SIGN_IN, token);
  token = "";
  showAccount();
  render();
});

const badge = (text, cls) => h("span", { class: `badge ${cls || text}` }, t(text));
const fmt = (iso) => (iso ? new Date(iso).toLocaleString(lang() === "zh" ? "zh-CN" : "en-GB") : "—");

async function api(path, opts) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(path, Object.assign({ headers }, opts || {}));
  if (r.status === 401) {
    token = "";
    forget(SIGN_IN);
    showAccount();
    throw new Error(t("loginFirst"));
  }
  if (!r.ok) {
    const text = await r.text();
    const err = new Error(`${r.status} ${text.slice(0, 200)}`);
    err.status = r.status;
    try { err.detail = JSON.parse(text).detail; } catch (_) { err.detail = null; }
    throw err;
  }
  return r.status === 204 ? null : r.json();
}
function table(cols, rows, onClick) {
  if (!rows.length) return h("p", { class: "muted" }, t("none"));
  return h("table", {},
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, t(c[0]))))),
    h("tbody", {}, rows.map((r) => h("tr", onClick ? { class: "click", onclick: () => onClick(r) } : {},
      cols.map((c) => h("td", {}, c[1](r)))))));
}
function stackedBar(states, total) {
  const colors = { succeeded: "#1f8a4c", rolled_back: "#60a5fa", running: "#d08a00", rolling_back: "#d08a00",
    failed: "#c0392b", timed_out: "#8e44ad", cancelled: "#b0b8c1", pending: "#eef1f5" };
  return h("div", { class: "bar", title: JSON.stringify(states) },
    Object.entries(states).map(([s, n]) => h("span", { style: `width:${(100 * n) / (total || 1)}%;background:${colors[s] || "#999"}` })));
}

// --- pages ---------------------------------------------------------------------------

async function overview() {
  const [o, alerts, tree, rolls] = await Promise.all([
    api("/api/v1/fleet/overview"), api("/api/v1/fleet/alerts"), api("/api/v1/fleet/regions"),
    api("/api/v1/fleet/rollouts?limit=5")]);
  const versions = Object.entries(o.versions).map(([comp, counts]) =>
    h("div", {}, h("b", {}, comp), " ", Object.entries(counts).map(([v, n]) => h("span", { class: "badge" }, `${v} × ${n}`))));
  return [
    h("h1", {}, t("overview")),
    h("div", { class: "cards" },
      h("div", { class: "card", id: "kpi-total" }, t("total"), h("div", { class: "kpi" }, o.total)),
      h("div", { class: "card", id: "kpi-online" }, t("online"), h("div", { class: "kpi" }, o.online, h("small", {}, ` / ${o.total}`))),
      h("div", { class: "card" }, t("onlinePct"), h("div", { class: "kpi" }, `${o.online_pct}%`)),
      h("div", { class: "card" }, t("activeAlerts"), h("div", { class: "kpi" }, alerts.length))),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, t("versions")), versions.length ? versions : t("none")),
      h("div", { class: "card tree", id: "region-tree" }, h("h2", {}, t("regions")), regionTree(tree, {}))),
    h("div", { class: "grid2", style: "margin-top:14px" },
      h("div", { class: "card" }, h("h2", {}, t("activeAlerts")), alertTable(alerts.slice(0, 8), false)),
      h("div", { class: "card" }, h("h2", {}, t("rollouts")), rolloutTable(rolls))),
  ];
}

function regionTree(node, path) {
  return h("ul", {}, node.children.map((c) => {
    const p = Object.assign({}, path, { [c.level]: c.name });
    return h("li", {},
      h("span", { class: "node", onclick: () => { location.hash = "#/terminals?" + new URLSearchParams(p); } },
        `${c.name} `, h("span", { class: "muted" }, `${c.online}/${c.total}`)),
      c.level !== "county" ? regionTree(c, p) : null);
  }));
}

async function terminals(params) {
  const q = new URLSearchParams(params);
  const data = await api("/api/v1/fleet/terminals?" + q);
  const field = (name, ph) => h("input", { name, placeholder: ph || t(name), value: params.get(name) || "" });
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const el of e.target.elements) if (el.name && el.value) next.set(el.name, el.value);
    location.hash = "#/terminals?" + next;
  } },
    field("q", t("search")), field("province"), field("city"), field("county"), field("hw_model", t("model")), field("tag", t("tags")),
    h("select", { name: "status" }, ["", "online", "offline"].map((s) =>
      h("option", { value: s, selected: params.get("status") === s ? "selected" : null }, s ? t(s + "_s") : t("all")))),
    h("button", { type: "submit" }, t("filter")));
  const page = Number(params.get("page") || 1);
  const go = (n) => { params.set("page", n); location.hash = "#/terminals?" + params; };
  return [
    h("h1", {}, t("terminals"), " ", h("span", { class: "muted" }, `(${data.total})`)),
    form,
    h("div", { class: "card", id: "terminal-table" }, table([
      ["id", (r) => r.id],
      ["status", (r) => badge(r.status)],
      ["region", (r) => [r.region.province, r.region.city, r.region.county, r.region.village].filter(Boolean).join(" / ")],
      ["model", (r) => r.hw_model],
      ["agent", (r) => r.versions.agent || "—"],
      ["tags", (r) => r.tags.map((x) => h("span", { class: "badge" }, x))],
    ], data.items, (r) => (location.hash = "#/terminal/" + encodeURIComponent(r.id)))),
    h("div", { class: "pager" },
      h("button", { class: "secondary", disabled: page <= 1 ? "disabled" : null, onclick: () => go(page - 1) }, t("prev")),
      `${t("page")} ${page}`,
      h("button", { class: "secondary", disabled: page * data.page_size >= data.total ? "disabled" : null, onclick: () => go(page + 1) }, t("next"))),
  ];
}

const COMMANDS = ["ping", "peripheral_selftest", "collect_logs", "lock_screen", "unlock_screen", "restart_agent", "reboot", "wipe"];

// The desired-shadow editor's draft survives the 2 s refresh (which skips a page being
// edited); the schema is fetched once.
let draft = null;
let schema = null;

function shadowEditor(id, shadow) {
  if (!draft || draft.id !== id) draft = { id, text: JSON.stringify(shadow.desired, null, 2), error: "", dirty: false };
  const error = h("div", { class: "field-error", id: "shadow-error" }, draft.error);
  const apply = h("button", { id: "shadow-apply", disabled: draft.error ? "disabled" : null }, t("applyShadow"));
  const box = h("textarea", { id: "shadow-edit", rows: "6", spellcheck: "false" });
  box.value = draft.text;
  const show = (message) => {
    draft.error = message;
    error.textContent = message;
    apply.disabled = !!message;
    box.classList.toggle("invalid", !!message);
  };
  // Check as the operator types: JSON first, then the schema the API enforces.
  const validate = () => {
    let doc;
    try { doc = JSON.parse(box.value); } catch (e) { show(`JSON: ${e.message}`); return null; }
    const bad = schema ? firstError(schema, doc) : null;
    show(bad ? `${bad.field}: ${bad.error}` : "");
    return bad ? null : doc;
  };
  box.addEventListener("input", () => { draft.text = box.value; draft.dirty = true; validate(); });
  apply.addEventListener("click", async () => {
    const doc = validate();
    if (!doc) return;
    try {
      await api(`/api/v1/fleet/shadows/${encodeURIComponent(id)}/desired`, { method: "PATCH", body: JSON.stringify(mergePatch(shadow.desired, doc)) });
      draft = null;
      toast(t("shadowSent"));
      render();
    } catch (e) {
      // The API's refusal names the field too (what the dashboard's check did not catch).
      show(e.detail && e.detail.field ? `${e.detail.field}: ${e.detail.error}` : e.message);
    }
  });
  if (draft.error) box.classList.add("invalid");
  return h("div", { id: "shadow-editor" }, h("label", { for: "shadow-edit" }, t("editDesired")), box, error,
    h("div", { class: "actions" }, apply,
      h("button", { class: "secondary", onclick: () => { draft = null; render(); } }, t("cancel"))));
}

async function downloadLogs(upload) {
  try {
    const r = await fetch(`/api/v1/fleet/log-uploads/${encodeURIComponent(upload.upload_id)}/bundle`, { headers: { Authorization: `Bearer ${token}` } });
    if (!r.ok) throw new Error(`${r.status} ${(await r.text()).slice(0, 200)}`);
    const url = URL.createObjectURL(await r.blob());
    const a = h("a", { href: url, download: `logs-${upload.terminal_id}-${upload.upload_id}.tgz` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (e) { toast(e.message); }
}

async function terminal(id) {
  const enc = encodeURIComponent(id);
  if (!schema) schema = await api("/api/v1/fleet/shadows/schema").catch(() => null);
  // Null for a reader who is not a fleet operator (the logs are for operators only).
  const uploads = api(`/api/v1/fleet/log-uploads?terminal_id=${enc}`).catch(() => null);
  const [d, tel, shadow, cmds, alerts, broker] = await Promise.all([
    api(`/api/v1/terminals/${enc}`),
    api(`/api/v1/terminals/${enc}/telemetry?minutes=30&step_s=5`).catch(() => ({ series: [] })),
    api(`/api/v1/fleet/shadows/${enc}`).catch(() => null),
    api(`/api/v1/fleet/commands?terminal_id=${enc}&limit=10`),
    api(`/api/v1/fleet/alerts?terminal_id=${enc}`),
    // Null where the broker has no client for it (development mode, revoked, not enrolled).
    api(`/api/v1/fleet/terminals/${enc}/broker`).catch(() => null)]);
  const brokerOp = async (op) => {
    if (op === "disable" && !confirm(t("confirmDisable"))) return;
    try {
      await api(`/api/v1/fleet/terminals/${enc}/broker/${op}`, { method: "POST", body: "{}" });
      toast(t(op === "disable" ? "brokerDisabled" : "brokerEnabled"));
      render();
    } catch (e) { toast(e.message); }
  };
  const logs = await uploads;
  const metrics = (d.health && d.health.metrics) || {};
  const peripherals = (d.health && d.health.peripherals) || {};
  const send = async (name) => {
    if (name === "wipe" && !confirm(t("confirmWipe"))) return;
    try {
      // 收集日志 uploads every log file (redacted, compressed) over HTTPS; see 终端日志 below.
      const args = name === "collect_logs" ? { upload: true } : {};
      await api("/api/v1/fleet/commands", { method: "POST", body: JSON.stringify({ name, terminals: [id], args, confirm: name === "wipe" }) });
      toast(`${t("sent")}: ${t(name)}`);
      render();
    } catch (e) { toast(e.message); }
  };
  const charts = ["cpu_pct", "mem_pct", "temp_c", "rtt_ms"].map((m) => {
    const s = tel.series.find((x) => x.metric === m);
    return h("div", { class: "card chart-card" }, lineChart(s ? s.points : [], t(m)));
  });
  return [
    h("h1", {}, `${t("terminal")} ${d.id} `, badge(d.status)),
    h("div", { class: "grid2" },
      h("div", { class: "card", id: "health" }, h("h2", {}, t("health")),
        h("div", { class: "kv" },
          h("div", {}, t("region")), h("div", {}, [d.region.province, d.region.city, d.region.county, d.region.village].join(" / ")),
          h("div", {}, t("model")), h("div", {}, d.hw_model || "—"),
          h("div", {}, t("agent")), h("div", {}, d.agent_version || "—"),
          Object.entries(metrics).map(([k, v]) => [h("div", {}, t(k)), h("div", {}, Number(v).toFixed(1))]),
          h("div", {}, t("peripherals")), h("div", {}, Object.entries(peripherals).map(([k, v]) => h("span", { class: `badge ${v}` }, `${k}: ${v}`))))),
      h("div", { class: "card" }, h("h2", {}, t("commands")),
        h("div", { class: "actions", id: "command-buttons" }, COMMANDS.map((c) =>
          h("button", { class: c === "wipe" || c === "reboot" ? "danger" : "secondary", "data-command": c, onclick: () => send(c) }, t(c)))),
        // Cut the terminal off the broker at once (no reload), or let it back; audited.
        broker ? h("div", { class: "actions", id: "broker-access" },
          badge(broker.enabled ? "brokerAllowed" : "brokerCut", broker.enabled ? "ok" : "failed"),
          broker.enabled
            ? h("button", { class: "danger", "data-broker": "disable", onclick: () => brokerOp("disable") }, t("disableAtBroker"))
            : h("button", { class: "secondary", "data-broker": "enable", onclick: () => brokerOp("enable") }, t("enableAtBroker"))) : null,
        h("h2", { style: "margin-top:16px" }, t("recent")),
        table([["name", (r) => t(r.name)], ["state", (r) => badge(r.state)], ["created", (r) => fmt(r.created_at)]], cmds))),
    h("h2", { style: "margin-top:18px" }, t("telemetry")),
    h("div", { class: "grid2", id: "charts" }, charts),
    h("div", { class: "grid2", style: "margin-top:14px" },
      h("div", { class: "card" }, h("h2", {}, t("shadow"), " ", shadow ? badge(shadow.in_sync ? "inSync" : "drift", shadow.in_sync ? "ok" : "failed") : null),
        shadow ? h("div", { class: "kv" },
          h("div", {}, `${t("desired")} v${shadow.desired_version}`), h("div", {}, h("code", {}, JSON.stringify(shadow.desired))),
          h("div", {}, `${t("reported")} v${shadow.reported_version}`), h("div", {}, h("code", {}, JSON.stringify(shadow.reported)))) : t("none"),
        shadow ? shadowEditor(id, shadow) : null),
      h("div", { class: "card" }, h("h2", {}, t("alerts")), alertTable(alerts, false))),
    logs ? h("div", { class: "card", id: "log-uploads", style: "margin-top:14px" }, h("h2", {}, t("logUploads")),
      table([["created", (u) => fmt(u.created_at)], ["state", (u) => badge(u.state === "complete" ? "stored" : "uploading", u.state === "complete" ? "ok" : "running")],
        ["size", (u) => `${(u.size / 1024).toFixed(1)} KiB`], ["sha256", (u) => h("code", {}, u.sha256.slice(0, 16))],
        ["", (u) => (u.state === "complete" ? h("button", { class: "secondary", "data-download": u.upload_id, onclick: () => downloadLogs(u) }, t("download")) : null)]], logs)) : null,
  ];
}

function alertTable(rows, actions) {
  const act = async (a, op) => { try { await api(`/api/v1/fleet/alerts/${a.id}/${op}`, { method: "POST", body: "{}" }); render(); } catch (e) { toast(e.message); } };
  const cols = [["severity", (a) => badge(a.severity)], ["kind", (a) => t(a.kind)], ["id", (a) => a.terminal_id || a.subject],
    ["message", (a) => a.message], ["state", (a) => badge(a.state)], ["last", (a) => fmt(a.last_at)]];
  if (actions) cols.push(["", (a) => h("span", { class: "actions" },
    a.state === "open" ? h("button", { class: "secondary", onclick: () => act(a, "ack") }, t("ack")) : null,
    h("button", { class: "secondary", onclick: () => act(a, "clear") }, t("clear")))]);
  return table(cols, rows);
}

async function alerts() {
  return [h("h1", {}, t("alerts")), h("div", { class: "card", id: "alert-table" }, alertTable(await api("/api/v1/fleet/alerts"), true))];
}

function rolloutTable(rows) {
  return table([
    ["name", (r) => r.name], ["group", (r) => r.group], ["phase", (r) => badge(r.phase)],
    ["progress", (r) => h("div", { style: "width:220px" }, stackedBar(r.states, r.total))],
    ["created", (r) => fmt(r.created_at)]], rows, (r) => (location.hash = "#/rollout/" + r.id));
}

async function rollouts() {
  const rows = await api("/api/v1/fleet/rollouts");
  return [h("h1", {}, t("rollouts")), h("div", { class: "card", id: "rollout-table" }, rolloutTable(rows))];
}

// The business guard's record of an abort: each rate's counts on both sides and its p-value.
function guardCard(g) {
  const share = (x, n) => `${x}/${n} (${pct(n ? x / n : null)})`;
  const rows = g.tests || [];
  return h("div", { class: "card", id: "guard-abort", style: "margin-bottom:14px" },
    h("h2", {}, `${t(g.test === "always-valid" ? "guardAbortSequential" : "guardAbort")} · ${t("controlGroup")}: ${g.control_group}`),
    table([
      ["rate", (x) => t(x.rate)], ["newVersion", (x) => share(x.treated, x.treated_of)],
      ["controlGroup", (x) => share(x.control, x.control_of)],
      ["pValue", (x) => (x.p_value === null ? t("tooFew") : x.p_value.toPrecision(3))],
      ["level", (x) => `${x.level.toPrecision(3)} (${x.alternative})`],
      ["breached", (x) => (x.breached ? badge("breached", "failed") : "")]], rows));
}

async function rollout(id) {
  const [r, targets] = await Promise.all([
    api(`/api/v1/fleet/rollouts/${id}`), api(`/api/v1/fleet/rollouts/${id}/targets?limit=200`)]);
  const op = async (name) => { try { await api(`/api/v1/fleet/rollouts/${id}/${name}`, { method: "POST" }); render(); } catch (e) { toast(e.message); } };
  return [
    h("h1", {}, `${t("rollout")} ${r.name} `, badge(r.phase)),
    r.reason ? h("p", { class: "muted" }, `${t("reason")}: ${r.reason}`) : null,
    r.guard_abort ? guardCard(r.guard_abort) : null,
    h("div", { class: "actions", style: "margin-bottom:14px" },
      h("button", { class: "secondary", onclick: () => op("pause") }, t("pause")),
      h("button", { class: "secondary", onclick: () => op("resume") }, t("resume")),
      h("button", { class: "danger", onclick: () => op("cancel") }, t("cancel"))),
    h("div", { class: "card", id: "waves" }, h("h2", {}, t("progress")), table([
      ["wave", (w) => (w.wave === 0 ? "canary" : w.wave)], ["total", (w) => w.total],
      ["progress", (w) => h("div", { style: "width:300px" }, stackedBar(w.states, w.total))],
      ["state", (w) => Object.entries(w.states).map(([s, n]) => h("span", { class: `badge ${s}` }, `${s} ${n}`))]], r.waves)),
    h("div", { class: "card", style: "margin-top:14px" }, h("h2", {}, t("targets")), table([
      ["id", (x) => x.terminal_id], ["wave", (x) => x.wave], ["state", (x) => badge(x.state)], ["last", (x) => fmt(x.updated_at)]], targets,
      (x) => (location.hash = "#/terminal/" + encodeURIComponent(x.terminal_id)))),
  ];
}

// Liveness outcomes per model version (real sessions): by group, one row per day.
function pct(v) { return v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)}%`; }
async function models(params) {
  const group = params.get("group") || "all";
  const data = await api("/api/v1/fleet/model-outcomes?days=30&period=day");
  const groups = [...new Set(data.rows.map((r) => r.group))].sort();
  const rows = data.rows.filter((r) => r.group === group)
    .sort((a, b) => (a.model + b.period_start).localeCompare(b.model + a.period_start));
  return [
    h("h1", {}, t("modelOutcomes")),
    h("p", { class: "muted" }, t("modelOutcomesNote")),
    h("div", { class: "actions", style: "margin-bottom:14px" }, groups.map((g) =>
      h("button", { class: g === group ? "" : "secondary", onclick: () => (location.hash = "#/models?group=" + encodeURIComponent(g)) }, g))),
    h("div", { class: "card", id: "model-outcomes" }, table([
      ["modelVersion", (r) => r.model], ["day", (r) => r.period_start.slice(0, 10)], ["sessions", (r) => r.sessions],
      ["passRate", (r) => pct(r.pass_rate)], ["reviewRate", (r) => pct(r.manual_review_rate)],
      ["overturnRate", (r) => `${pct(r.overturn_rate)} (${r.qa_scored_passes})`]], rows)),
  ];
}

// --- routing -------------------------------------------------------------------------

const LIVE = new Set(["overview", "terminal", "rollouts", "rollout", "alerts"]);
async function render(auto) {
  // The periodic refresh leaves a page alone while its shadow edit is in progress.
  if (auto === true && draft && draft.dirty && location.hash.startsWith("#/terminal/")) {
    clearTimeout(timer);
    timer = setTimeout(() => render(true), 2000);
    return;
  }
  const [path, query] = (location.hash.slice(2) || "overview").split("?");
  const [route, arg] = path.split("/");
  document.querySelectorAll(".sidebar a").forEach((a) =>
    a.classList.toggle("active", a.dataset.route === route || a.dataset.route + "s" === route || route === a.dataset.route.replace(/s$/, "")));
  const pages = { overview, terminals: () => terminals(new URLSearchParams(query || "")), terminal: () => terminal(decodeURIComponent(arg)),
    rollouts, rollout: () => rollout(arg), alerts, models: () => models(new URLSearchParams(query || "")) };
  const page = pages[route] || overview;
  try {
    const content = await page();
    view.replaceChildren(...[content].flat().filter(Boolean));
    view.dataset.page = route;
  } catch (e) {
    view.replaceChildren(h("div", { class: "card" }, h("h2", {}, "⚠"), e.message));
  }
  clearTimeout(timer);
  if (LIVE.has(route)) timer = setTimeout(() => render(true), 2000);
}
function applyLang() {
  translate(document, "brand");
  $("lang").textContent = t("langSwitch");
}
$("lang").addEventListener("click", () => {
  toggleLang();
  applyLang();
  render();
});
window.addEventListener("hashchange", () => render());
applyLang();
showAccount();
render();
