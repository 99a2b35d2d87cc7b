// The customer screen: polls /state, shows one simple screen at a time, posts the buttons.
// An ES module; the DOM helpers and the i18n are the ones every page shares (/ui/*, served
// by this agent from common/web), the words are in screen-i18n.js.
import { $, h } from "/ui/dom.js";
import { register, t, translate } from "/ui/i18n.js";
import { STRINGS } from "/screen-i18n.js";

register(STRINGS);
const SCORES = [5, 4, 3, 2, 1];
const SECTIONS = ["idle", "choose", "waiting", "call", "rating"];
let state = null;
let choosing = false;
let formValues = {};
let formShown = null;
let strokes = [];
let startedAt = 0;
let language = "cmn";
let elderly = false;
let playing = null;  // the prompt {key, text, audio} the screen shows and last spoke
let touched = Date.now();  // the last touch, or the moment a timed screen appeared
let timedScreen = null;  // "choose" or "rating" while one of those is up
let reading = false;  // 先刷身份证: the card is being read

async function post(path, body) {
  const r = await fetch(path, {method: "POST", body: JSON.stringify(body || {})});
  if (r.ok) { state = await r.json(); render(); }
  return r.ok;
}

function show(section) {
  for (const s of SECTIONS) $(s).hidden = s !== section;
}

// The sentence on the screen is the one spoken: both come from the same catalogue row.
function current(inCall) {
  if (timedScreen && stillThere()) return state.prompts.still_there;
  if (!state.locked && inCall && state.sign) return state.prompts.sign;
  if (!state.locked && inCall && state.form) return state.prompts.form;
  if (choosing && state.phase === "idle" && !state.locked) {
    if (state.step) return state.voice;  // "请把身份证放在读卡区" while the card is read
    if (state.id_read) return state.id_read.said;  // read, or why not, in plain words
    return state.prompts.choose;
  }
  return state.voice;
}

function speak(said, again) {
  const audio = $("voice");
  audio.volume = Math.max(0, Math.min(1, state.volume / 100));
  if (!again && playing && playing.audio === said.audio) return;
  playing = said;
  // called back: the chime first, then the sentence, so someone sitting nearby looks up
  const chimeFirst = state.chime && !again;
  audio.onended = chimeFirst ? () => { audio.onended = null; audio.src = said.audio; audio.play().catch(() => {}); } : null;
  audio.src = chimeFirst ? "/chime.wav" : said.audio;
  audio.currentTime = 0;
  audio.play().catch(() => {});  // no sound device: the text is still there
}

// Generous timeouts, announced: a minute (or 45 s) before a screen gives up, it asks
// "您还在吗?" out loud; any touch starts the wait again.
function idleFor() { return (Date.now() - touched) / 1000; }
function stillThere() {
  const limit = state.timeouts[timedScreen];
  return limit && idleFor() >= limit.after_s - limit.warn_s;
}
function timeUp() {
  const limit = state.timeouts[timedScreen];
  if (!limit || idleFor() < limit.after_s) return;
  touched = Date.now();
  if (timedScreen === "choose") { choosing = false; post("/forget_id"); render(); }
  else if (timedScreen === "rating") post("/rate", {score: null});
}

function render() {
  if (!state) return;
  const phase = state.phase;
  const timed = state.locked ? null : phase === "rating" ? "rating"
    : phase === "idle" && choosing ? "choose" : null;
  if (timed !== timedScreen) { timedScreen = timed; touched = Date.now(); }
  const inCall = ["connecting", "in_call", "reconnecting"].includes(phase);
  const said = current(inCall);
  $("message").textContent = said.text;
  $("form-says").textContent = state.prompts.form.text;
  $("sign-says").textContent = state.prompts.sign.text;
  $("language-says").textContent = state.prompts.language.text;
  $("ring-back").textContent = state.prompts["ring_back.button"].text;
  $("ring-back").hidden = !state.ring_back_offer;
  speak(said, false);
  if (state.locked) show(null);  // out of service: the message only, nothing to press
  else if (phase === "idle") show(choosing ? "choose" : "idle");
  else if (phase === "waiting") show("waiting");
  else if (phase === "rating") show("rating");
  else show("call");
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
  renderIdRead();
  renderForm(inCall ? state.form : null);
  $("sign").hidden = !(inCall && state.sign);
}

// 先刷身份证: optional; the card read shows masked (张*三), never its photo; a card whose
// holder is 60 or over sets "我已满 60 岁" (the desk takes the age from the signed read).
function renderIdRead() {
  const read = state.id_read;
  $("read-id").textContent = reading ? t("reading") : state.prompts["id_first.button"].text;
  $("read-id").disabled = reading;
  $("read-id").hidden = !state.can_read_id;  // no reader, or no key to sign with
  $("id-read").hidden = !read || read.outcome !== "passed";
  $("id-read").dataset.outcome = read ? read.outcome : "";
  if (read && read.outcome === "passed") {
    $("id-read-name").textContent = read.name || "";
    $("id-read-number").textContent = read.id_number || "";
    if (read.elderly && !elderly) { elderly = true; $("elderly").setAttribute("aria-pressed", "true"); }
  }
}

function renderForm(form) {
  $("form").hidden = !form;
  if (!form) { formShown = null; return; }
  if (formShown === form.form_id) return;
  formShown = form.form_id;
  formValues = {};
  $("form-title").textContent = form.title || t("formTitle");
  $("fields").replaceChildren(...form.fields.map((f) => {
    const options = f.kind === "confirm" ? [[true, t("yesConfirm")], [false, t("no")]]
      : f.kind === "choice" ? f.options.map((o) => [o, o]) : null;
    if (!options) {
      const input = h("input", { oninput: () => { formValues[f.name] = input.value; } });
      return h("div", { class: "field" }, h("p", {}, f.label || f.name), input);
    }
    const row = h("div", { class: "row" }, options.map(([value, text]) => {
      const b = h("button", { class: "choice", "aria-pressed": "false", onclick: () => {
        formValues[f.name] = value;
        for (const other of row.children) other.setAttribute("aria-pressed", "false");
        b.setAttribute("aria-pressed", "true");
      } }, text);
      return b;
    }));
    return h("div", { class: "field" }, h("p", {}, f.label || f.name), row);
  }));
}

function trouble() {
  // the catalogue's sentence when the agent ever answered; this page's own words otherwise
  $("message").textContent = state ? state.prompts.trouble.text : t("trouble");
}

async function poll() {
  try {
    const r = await fetch("/state");
    if (r.ok) { state = await r.json(); render(); }
    else trouble();
  } catch (e) {
    trouble();
  }
  if (state) timeUp();
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
  document.addEventListener("pointerdown", () => { touched = Date.now(); }, true);
  $("start").onclick = () => { choosing = true; render(); };
  $("again").onclick = () => { if (state && playing) speak(playing, true); };
  $("elderly").onclick = () => {
    elderly = !elderly;
    $("elderly").setAttribute("aria-pressed", String(elderly));
  };
  $("back").onclick = () => { choosing = false; post("/forget_id"); render(); };
  $("read-id").onclick = async () => {
    if (reading) return;
    reading = true;
    render();
    try {
      // the answer comes when the card is read (or not); /state meanwhile says what to do
      if (!(await post("/read_id"))) trouble();
    } finally {
      reading = false;
      render();
    }
  };
  $("cancel").onclick = () => post("/end");
  $("ring-back").onclick = () => post("/ring_back");
  $("hangup").onclick = () => post("/end");
  $("skip").onclick = () => post("/rate", {score: null});
  $("submit").onclick = async () => {
    if (state.form) await post("/answer", {form_id: state.form.form_id, values: formValues});
  };
  $("scores").replaceChildren(...SCORES.map((score) =>
    h("button", { onclick: () => post("/rate", {score}) }, t(`score${score}`))));
  setupPad();
}

async function buildMenu() {
  // The menu comes with the first state: the agent decides which businesses to offer.
  const r = await fetch("/state");
  state = await r.json();
  $("menu").replaceChildren(...state.menu.map((item) => h("button", { "data-code": item.code,
    onclick: async () => { choosing = false; await post("/ask", {business: item.code, language, elderly}); } },
    item.label)));
  $("languages").replaceChildren(...state.languages.map((lang) => {
    const b = h("button", { class: "choice", "data-code": lang.code,
      "aria-pressed": String(lang.code === language), onclick: () => {
        language = lang.code;
        for (const other of $("languages").children) other.setAttribute("aria-pressed", "false");
        b.setAttribute("aria-pressed", "true");
      } }, lang.label);
    return b;
  }));
  render();
}

translate(document, "title");
setup();
buildMenu().then(poll);
