// The customer screen: polls /state, shows one simple screen at a time, posts the buttons.
"use strict";

const $ = (id) => document.getElementById(id);
const SCORES = [[5, "非常满意"], [4, "满意"], [3, "一般"], [2, "不满意"], [1, "很不满意"]];
const SECTIONS = ["idle", "choose", "waiting", "call", "rating"];
let state = null;
let choosing = false;
let formValues = {};
let formShown = null;
let strokes = [];
let startedAt = 0;

async function post(path, body) {
  const r = await fetch(path, {method: "POST", body: JSON.stringify(body || {})});
  if (r.ok) { state = await r.json(); render(); }
  return r.ok;
}

function show(section) {
  for (const s of SECTIONS) $(s).hidden = s !== section;
}

function render() {
  if (!state) return;
  const phase = state.phase;
  $("message").textContent = choosing && phase === "idle" && !state.locked ? "请选择业务" : state.message;
  if (state.locked) show(null);  // out of service: the message only, nothing to press
  else if (phase === "idle") show(choosing ? "choose" : "idle");
  else if (phase === "waiting") show("waiting");
  else if (phase === "rating") show("rating");
  else show("call");
  const inCall = ["connecting", "in_call", "reconnecting"].includes(phase);
  // The video streams run only while a call is on: no decoding for an empty screen.
  for (const [id, src] of [["teller", "/video/teller.mjpg"], ["self", "/video/self.mjpg"]]) {
    const img = $(id);
    if (inCall && !img.getAttribute("src")) img.src = src;
    if (!inCall && img.getAttribute("src")) img.removeAttribute("src");
  }
  $("pushed").hidden = !(inCall && state.screen);
  if (state.screen) {
    $("pushed-title").textContent = state.screen.title;
    $("pushed-text").textContent = state.screen.text;
  }
  renderForm(inCall ? state.form : null);
  $("sign").hidden = !(inCall && state.sign);
}

function renderForm(form) {
  $("form").hidden = !form;
  if (!form) { formShown = null; return; }
  if (formShown === form.form_id) return;
  formShown = form.form_id;
  formValues = {};
  $("form-title").textContent = form.title || "请确认";
  const box = $("fields");
  box.replaceChildren();
  for (const f of form.fields) {
    const div = document.createElement("div");
    div.className = "field";
    const label = document.createElement("p");
    label.textContent = f.label || f.name;
    div.append(label);
    const options = f.kind === "confirm" ? [[true, "是,确认"], [false, "否"]]
      : f.kind === "choice" ? f.options.map((o) => [o, o]) : null;
    if (options) {
      const row = document.createElement("div");
      row.className = "row";
      for (const [value, text] of options) {
        const b = document.createElement("button");
        b.className = "choice";
        b.textContent = text;
        b.setAttribute("aria-pressed", "false");
        b.onclick = () => {
          formValues[f.name] = value;
          for (const other of row.children) other.setAttribute("aria-pressed", "false");
          b.setAttribute("aria-pressed", "true");
        };
        row.append(b);
      }
      div.append(row);
    } else {
      const input = document.createElement("input");
      input.oninput = () => { formValues[f.name] = input.value; };
      div.append(input);
    }
    box.append(div);
  }
}

async function poll() {
  try {
    const r = await fetch("/state");
    if (r.ok) { state = await r.json(); render(); }
    else $("message").textContent = "终端出了点问题,请稍候";
  } catch (e) {
    $("message").textContent = "终端出了点问题,请稍候";
  }
  setTimeout(poll, 500);
}

function setupPad() {
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  ctx.lineWidth = 4;
  ctx.lineCap = "round";
  let current = null;
  const point = (e) => {
    const r = pad.getBoundingClientRect();
    return [Math.round((e.clientX - r.left) * pad.width / r.width),
            Math.round((e.clientY - r.top) * pad.height / r.height),
            Math.round(performance.now() - startedAt)];
  };
  pad.onpointerdown = (e) => {
    if (!strokes.length) startedAt = performance.now();
    current = [point(e)];
    strokes.push(current);
    pad.setPointerCapture(e.pointerId);
  };
  pad.onpointermove = (e) => {
    if (!current) return;
    const p = point(e);
    const q = current[current.length - 1];
    current.push(p);
    ctx.beginPath(); ctx.moveTo(q[0], q[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
  };
  pad.onpointerup = () => { current = null; };
  $("clear").onclick = () => { strokes = []; ctx.clearRect(0, 0, pad.width, pad.height); };
  $("signed").onclick = async () => {
    if (!strokes.length || !state.sign) return;
    if (await post("/signature", {form_id: state.sign.form_id, width: pad.width,
                                  height: pad.height, strokes})) $("clear").onclick();
  };
}

function setup() {
  $("start").onclick = () => { choosing = true; render(); };
  $("back").onclick = () => { choosing = false; render(); };
  $("cancel").onclick = () => post("/end");
  $("hangup").onclick = () => post("/end");
  $("skip").onclick = () => post("/rate", {score: null});
  $("submit").onclick = async () => {
    if (state.form) await post("/answer", {form_id: state.form.form_id, values: formValues});
  };
  for (const [score, text] of SCORES) {
    const b = document.createElement("button");
    b.textContent = text;
    b.onclick = () => post("/rate", {score});
    $("scores").append(b);
  }
  setupPad();
}

async function buildMenu() {
  // The menu comes with the first state: the agent decides which businesses to offer.
  const r = await fetch("/state");
  state = await r.json();
  for (const item of state.menu) {
    const b = document.createElement("button");
    b.textContent = item.label;
    b.dataset.code = item.code;
    b.onclick = async () => { choosing = false; await post("/ask", {business: item.code}); };
    $("menu").append(b);
  }
  render();
}

setup();
buildMenu().then(poll);
