// One accepted call on the teller desk: media (teller-media.js), the data channel to the
// customer's screen (teller-data.js), the customer panel and the workflow checklist.
// The page (teller-app.js) creates a Call on accept and drops it when the call ends.

import { $, h } from "/ui/dom.js";
import { joinRoom } from "./teller-media.js";
import { encode, Reassembler, ProtocolError, checkInbound, formMessage, FORMS } from "./teller-data.js";
import { STEPS, LANGUAGES } from "./teller-i18n.js";

// Steps the terminal performs (common/wire/call.py DEVICE_STEPS): the teller asks for them
// and they pass on the terminal's signed, cloud-verified result, never by a tick here.
const DEVICE_STEPS = new Set(["id_card_read", "face_match", "liveness", "active_liveness",
  "card_read", "pin_entry", "voucher_capture", "e_signature"]);
// The cloud's own call, made with the data of the terminal's signed ID read.
const CLOUD_STEPS = new Set(["id_online_check"]);
const SECOND_PERSON = new Set(["supervisor_authorisation"]);

// The desk's offer names codes ("cash_deposit"); the panel gives objects ({code, name_zh, ...}).
const codeOf = (v) => (v && typeof v === "object" ? v.code : v);

function b64ToBlob(b64, mime) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type: mime });
}

const refusal = (why) => Object.assign(new Error(why), { [why]: true });

// Notes onto the session's evidence timeline, then finish (which seals the package).
// "completed" is refused while steps are open or after a failed step; a failed step has
// decided the outcome already ("rejected"), which is what gets sealed. No workflow, or one
// sealed already: nothing to do. Resolves the workflow, or null when there is none.
// A business that posts to the core completes through confirm (see confirmWithCore);
// `core` is { status(posting), ask(field), signal }: status hears 处理中 ("sending",
// "pending"), 成功 ("applied", with the core's reference) or 失败 ("refused", with its
// reason); ask(field) gives a catalogue field ("account", "amount_fen"); aborting signal
// stops waiting for a pending answer.
export async function closeWorkflow(api, session, outcome, notes, core = {}) {
  const path = `/api/v1/workflow/${encodeURIComponent(session)}`;
  // A 409 means "sealed already" only if the workflow now has an outcome; otherwise the
  // refusal stands (e.g. the server will not seal a business whose posting is in doubt).
  const closed = (wf) => async (err) => {
    if (err.status !== 409) throw err;
    const now = await api(path).catch(() => null);
    if (now && !now.outcome) throw err;
    return now || wf;
  };
  // Notes go onto the timeline once: a confirm tried again (after the core refused) does
  // not repeat what is there already.
  const addNotes = async (wf) => {
    if (!notes || notesPosted.get(session) === notes) return wf;
    const added = await api(`${path}/notes`, { method: "POST", body: JSON.stringify({ text: notes }) }).catch(closed(wf));
    notesPosted.set(session, notes);
    return added;
  };
  let wf;
  try {
    wf = await api(path);
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
  if (outcome === "completed" && wf.outcome === "rejected") throw refusal("rejected");
  if (outcome === "completed" && wf.next_step) throw refusal("incomplete");
  if (outcome === "completed" && wf.posting && !wf.outcome) {
    // The amount the card's cryptogram covers is the one posted: not asked again.
    const fields = wf.posting.fields.filter((f) => !(f === "amount_fen" && cardAmount(wf) !== null));
    const body = askFields(fields, core.ask || askByPrompt); // before anything is written
    await addNotes(wf);
    return confirmWithCore(api, path, body, core);
  }
  if (outcome !== "completed" && wf.posting && !wf.outcome) {
    // Money may have moved: pending at the core, or applied, is not "not done".
    const posting = await api(`${path}/posting`);
    if (["pending", "applied"].includes(posting.status)) throw Object.assign(refusal("coreInDoubt"), { posting });
  }
  wf = await addNotes(wf);
  const sealed = wf.outcome === "rejected" ? "rejected" : outcome;
  return api(`${path}/finish`, { method: "POST", body: JSON.stringify({ outcome: sealed }) }).catch(closed(wf));
}

const notesPosted = new Map(); // session -> the notes text last put on its timeline

// The amount (fen) the passed card step's verified cryptogram covers, or null.
export function cardAmount(wf) {
  const card = (wf.done || []).find((r) => r.step === "card_read" && r.passed);
  const amount = card && card.detail ? card.detail.amount_fen : undefined;
  return Number.isInteger(amount) ? amount : null;
}

// A business that moves money (its posting asks amount_fen, a core attached): the amount
// is entered before the card is read, so the card's cryptogram covers it. Fen, or null
// when what was typed is not a positive number of yuan.
function amountBeforeCard(ask) {
  const raw = String(ask("amount_fen") ?? "").trim();
  const yuan = Number(raw);
  if (!raw || !Number.isFinite(yuan) || yuan <= 0) return null;
  return Math.round(yuan * 100);
}

const askByPrompt = (field) => prompt(field === "account" ? "核心账号 / core account" : "金额（元）/ amount (yuan)");

// The confirm body from the catalogue's posting fields; a field left empty (or an amount
// that is not a positive number of yuan) is refused here, by name, before anything is sent.
function askFields(fields, ask) {
  const body = {};
  for (const field of fields) {
    const raw = String(ask(field) ?? "").trim();
    if (field === "amount_fen") {
      const yuan = Number(raw);
      if (!raw || !Number.isFinite(yuan) || yuan <= 0) throw Object.assign(refusal("coreField"), { field });
      body.amount_fen = Math.round(yuan * 100);
    } else {
      if (!raw) throw Object.assign(refusal("coreField"), { field });
      body[field] = raw;
    }
  }
  return body;
}

// Confirm until the core has answered. The first confirm posts (the cloud writes the
// posting ahead and sends it once under its idempotency key); while the answer is pending
// (202) we confirm again every 2 s, which asks the core about that key (the cloud's
// reconciler does too) and never posts a second time. 成功 only on the core's yes.
async function confirmWithCore(api, path, body, core) {
  const status = core.status || (() => {});
  status({ status: "sending" });
  const stopped = () => core.signal && core.signal.aborted;
  for (;;) {
    let r;
    try {
      r = await api(`${path}/confirm`, { method: "POST", body: JSON.stringify(body), signal: core.signal });
    } catch (err) {
      if (stopped()) throw refusal("coreWaiting"); // the posting stays with the cloud
      throw err;
    }
    status(r.posting);
    if (r.posting.status === "refused") throw Object.assign(refusal("coreRefused"), { posting: r.posting });
    if (r.posting.status === "applied" || r.posting.status === "none") return r.workflow;
    await new Promise((ok) => {
      const timer = setTimeout(ok, 2000);
      if (core.signal) core.signal.addEventListener("abort", () => { clearTimeout(timer); ok(); }, { once: true });
    });
    if (stopped()) throw refusal("coreWaiting");
  }
}

export class Call {
  // ctx: { api(path, opts), t(key), lang(), toast(msg), banner(key|null), fail(err),
  //        businessName(code) }
  constructor(ctx, offer) {
    this.ctx = ctx;
    this.offer = offer;
    this.session = offer.session;
    this.startedAt = Date.now();
    this.panel = null;
    this.workflow = null;
    this.replies = [];
    this.forms = new Map(); // form_id -> form message
    this.signature = null;
    this.documents = [];
    this.stepNotes = {}; // step -> the last answer about it, in the teller's words
    this.idCard = null; // the masked fields of this call's signed ID read
    // The ID card's photo, shown while the call runs and never kept: an object URL of the
    // bytes the terminal sent over the data channel, shown only when their SHA-256 is the
    // one the terminal signed in the ID read (masked.photo_sha256). Dropped at leave().
    this.idPhoto = null; // { url, sha256 }
    this.idPhotoAsked = false;
    this.idPhotoNote = null;
    this.seq = 0;
    this.reassembler = new Reassembler();
    this.badMessages = 0;
    this.dataOpen = false;
    this.media = null;
    this.stream = null;
    this.queue = Promise.resolve(); // workflow writes, one at a time (the store refuses stale saves)
    this.timers = [];
    this.abort = new AbortController(); // the call ended before the customer's media came
  }

  // --- media --------------------------------------------------------------------------

  async join(grant) {
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    } catch (err) {
      this.ctx.banner("errCamera");
      throw err;
    }
    if (this.abort.signal.aborted) { this.stream.getTracks().forEach((t) => t.stop()); return; }
    $("self").srcObject = this.stream;
    try {
      this.media = await joinRoom(grant, this.stream, (remote) => {
        if ($("remote").srcObject !== remote) $("remote").srcObject = remote;
      }, {
        onData: (text) => this.receive(text),
        signal: this.abort.signal,
        // The customer's terminal republishes after a network change: say so meanwhile.
        onPeer: (state) => this.ctx.banner(state === "gone" ? "errPeerGone" : null, "errPeerGone"),
      });
    } catch (err) {
      if (!this.abort.signal.aborted) this.ctx.banner("errJoin");
      throw err;
    }
    if (this.abort.signal.aborted) { await this.media.leave(); return; } // ended meanwhile
    const channel = this.media.dataChannel;
    channel.addEventListener("open", () => { this.dataOpen = true; this.renderTools(); this.askIdPhoto(); });
    channel.addEventListener("close", () => { this.dataOpen = false; this.renderTools(); });
    if (channel.readyState === "open") { this.dataOpen = true; this.askIdPhoto(); }
    const pc = this.media.publisher; // our own link to the media server
    pc.addEventListener("connectionstatechange", () => {
      const bad = ["disconnected", "failed"].includes(pc.connectionState);
      this.ctx.banner(bad ? "errVideo" : null, "errVideo");
    });
    this.renderTools();
  }

  async leave() {
    this.dropIdPhoto();
    this.abort.abort();
    this.timers.forEach(clearInterval);
    if (this.media) await this.media.leave().catch(() => {});
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    $("remote").srcObject = null;
    $("self").srcObject = null;
    this.dataOpen = false;
  }

  // --- data channel -------------------------------------------------------------------

  send(message) {
    if (!this.media || !this.dataOpen) {
      this.ctx.toast(this.ctx.t("errData"));
      return false;
    }
    for (const text of encode(message)) this.media.send(text);
    return true;
  }

  pushForm(key) {
    const form = formMessage(key, ++this.seq);
    if (!this.send(form)) return;
    this.forms.set(form.form_id, form);
    this.lastForm = form.form_id;
    this.ctx.toast(this.ctx.t("formSent") + form.title);
  }

  capture(kind) {
    if (this.send({ type: "capture", kind })) this.ctx.toast(this.ctx.t("captureRequested") + this.ctx.t(kind));
  }

  askSign() {
    const formId = this.lastForm || `sign-${++this.seq}`;
    if (this.send({ type: "sign", form_id: formId })) this.ctx.toast(this.ctx.t("signRequested"));
  }

  syncScreen(title, text) {
    if (this.send({ type: "screen", title, text })) this.ctx.toast(this.ctx.t("sent"));
  }

  receive(text) {
    let msg;
    try {
      msg = this.reassembler.push(text);
      if (msg === null) return; // more chunks to come
      checkInbound(msg);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.badMessages++; // counted and logged, never fatal
      console.warn("data channel:", err.message);
      return;
    }
    if (msg.type === "answer") this.replies.push(msg);
    if (msg.type === "signature") this.onSignature(msg);
    if (msg.type === "document") this.onDocument(msg);
    this.renderReplies();
    this.renderSteps();
  }

  onSignature(msg) {
    this.signature = msg;
    this.signatures = (this.signatures || 0) + 1; // a customer may be asked to sign again
    const name = `signature-${this.signatures}-${msg.form_id}.png`;
    this.drawSignature();
    $("signature").toBlob((png) => this.keep(name, "e_signature", png), "image/png");
  }

  onDocument(msg) {
    if (msg.kind === "id_photo") { this.onIdPhoto(msg); return; } // shown, never kept
    const n = this.documents.push(msg);
    if (msg.kind === "voucher") {
      const ext = msg.mime === "image/png" ? "png" : "jpg";
      this.keep(`voucher-${n}.${ext}`, "voucher", b64ToBlob(msg.data_b64, msg.mime));
    }
  }

  // --- the ID card's photo (shown during the call only) ---------------------------------

  // Ask the terminal for the photo of the card read in this call, once the signed read has
  // passed and the data channel is open (the photo never goes through the cloud).
  // The terminal hears this page's data channel only once it has subscribed to our feed,
  // which can come after the channel opens (a loaded terminal): a request sent before that
  // is lost. So it is asked again every 5 s until the photo is here (ten times at most).
  askIdPhoto() {
    if (!this.idCard || !this.idCard.photo_sha256 || this.idPhoto || this.idPhotoAsked) return;
    if (!this.media || !this.dataOpen) return;
    this.idPhotoAsked = true;
    for (const text of encode({ type: "capture", kind: "id_photo" })) this.media.send(text);
    this.idPhotoTries = (this.idPhotoTries || 0) + 1;
    if (this.idPhotoTries >= 10) return;
    this.timers.push(setTimeout(() => {
      if (this.idPhoto || this.idPhotoNote === "idPhotoMismatch" || this.abort.signal.aborted) return;
      this.idPhotoAsked = false;
      this.askIdPhoto();
    }, 5000));
  }

  async onIdPhoto(msg) {
    const bytes = Uint8Array.from(atob(msg.data_b64), (c) => c.charCodeAt(0));
    const want = this.idCard && this.idCard.photo_sha256;
    let got = null;
    if (globalThis.crypto && crypto.subtle) {
      const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      got = Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
    }
    if (this.abort.signal.aborted) return; // the call ended meanwhile: show nothing
    if (!want || got !== want) {
      this.idPhotoNote = "idPhotoMismatch"; // not the photo the terminal signed: not shown
      this.renderPanel();
      return;
    }
    this.dropIdPhoto();
    this.idPhoto = { url: URL.createObjectURL(new Blob([bytes], { type: msg.mime })), sha256: got };
    this.idPhotoNote = null;
    this.renderPanel();
  }

  dropIdPhoto() {
    if (this.idPhoto) URL.revokeObjectURL(this.idPhoto.url);
    this.idPhoto = null;
    this.idPhotoAsked = false;
    this.idPhotoTries = 0;
    const img = document.getElementById("id-photo");
    if (img) img.remove();
  }

  // Evidence goes into the session's workflow package as soon as it arrives.
  keep(name, role, blob) {
    if (!this.workflow) return;
    this.write(() => this.ctx.api(`/api/v1/workflow/${encodeURIComponent(this.session)}/files/${encodeURIComponent(name)}?role=${role}`,
      { method: "PUT", body: blob, headers: { "Content-Type": blob.type } }));
  }

  // --- workflow -----------------------------------------------------------------------

  write(action) {
    this.queue = this.queue.then(action).then((wf) => {
      if (wf) this.workflow = wf;
      this.renderSteps();
      return wf;
    }).catch((err) => { this.ctx.fail(err); return null; });
    return this.queue;
  }

  async loadWorkflow() {
    const path = `/api/v1/workflow/${encodeURIComponent(this.session)}`;
    try {
      this.workflow = await this.ctx.api(path);
    } catch (err) {
      if (err.status !== 404) throw err;
      try {
        this.workflow = await this.ctx.api(`${path}/start`, { method: "POST", body: JSON.stringify({ business: codeOf(this.offer.business) }) });
      } catch (err2) {
        // 409: a workflow exists that is not ours to see: the teller who transferred the
        // customer to us started it (the workflow API keeps one per session).
        if (err2.status !== 409) throw err2;
        this.workflowNote = "workflowElsewhere";
      }
    }
    this.renderSteps();
    // A supervisor authorises (or overrides a device step) from their own screen: look for
    // it while such a step is next.
    this.timers.push(setInterval(() => {
      const next = this.workflow && this.workflow.next_step;
      if (next && (SECOND_PERSON.has(next) || DEVICE_STEPS.has(next) || CLOUD_STEPS.has(next))) {
        this.ctx.api(path).then((wf) => { this.workflow = wf; this.renderSteps(); }).catch(() => {});
      }
    }, 3000));
  }

  // Only a failure is recorded by hand for device steps (it rejects the business); other
  // steps (dual recording) the teller marks done.
  recordStep(step, passed) {
    const body = { step, passed, detail: {} };
    return this.write(() => this.ctx.api(`/api/v1/workflow/${encodeURIComponent(this.session)}/steps`,
      { method: "POST", body: JSON.stringify(body) }));
  }

  // Ask the terminal for a device step (a fresh nonce each time), or run the cloud's own
  // online identity check; the answer arrives as a step_result message (onStepResult).
  askStep(step) {
    const base = `/api/v1/workflow/${encodeURIComponent(this.session)}/steps/${step}`;
    const path = CLOUD_STEPS.has(step) ? `${base}/run` : `${base}/ask`;
    const init = { method: "POST" };
    const wf0 = this.workflow;
    if (step === "card_read" && wf0 && wf0.posting && wf0.posting.fields.includes("amount_fen")) {
      const fen = amountBeforeCard(this.ctx.askField || askByPrompt);
      if (fen === null) { // nothing sent: the card is asked only over an amount
        this.stepNotes[step] = this.ctx.t("errCoreField") + this.ctx.t("coreAmount");
        this.renderSteps();
        return Promise.resolve(null);
      }
      init.body = JSON.stringify({ amount_fen: fen });
    }
    this.stepNotes[step] = this.ctx.t(CLOUD_STEPS.has(step) ? "checking" : "asked");
    this.renderSteps();
    return this.write(async () => {
      try {
        const wf = await this.ctx.api(path, init);
        if (wf.notice && CLOUD_STEPS.has(step)) this.stepNotes[step] = wf.notice;
        return wf;
      } catch (err) {
        this.stepNotes[step] = err.message || String(err);
        throw err;
      }
    });
  }

  // The desk forwards each verified (or refused) result of a device step.
  onStepResult(msg) {
    const masked = msg.masked || {};
    if (msg.step === "id_card_read" && msg.passed) {
      if (this.idPhoto && this.idPhoto.sha256 !== masked.photo_sha256) this.dropIdPhoto();
      this.idCard = masked;
      this.askIdPhoto();
    }
    if ((msg.step === "liveness" || msg.step === "active_liveness") && masked.decision) this.verdict = masked;
    const words = msg.passed ? this.ctx.t("passed") : `${this.ctx.t("notPassed")}: ${msg.reason || msg.outcome}`;
    this.stepNotes[msg.step] = masked.customer_text && !msg.passed ? `${words}（${masked.customer_text}）` : words;
    this.ctx.api(`/api/v1/workflow/${encodeURIComponent(this.session)}`)
      .then((wf) => { this.workflow = wf; this.renderPanel(); this.renderSteps(); })
      .catch(() => {});
    this.renderPanel();
    this.renderSteps();
  }

  // Closes the workflow with the teller's notes on its timeline (see closeWorkflow).
  async finish(outcome, notes, core) {
    await this.queue;
    if (!this.workflow) return;
    this.workflow = (await closeWorkflow(this.ctx.api, this.session, outcome, notes, core)) || this.workflow;
    this.renderSteps();
  }

  // --- customer panel -----------------------------------------------------------------

  async loadPanel() {
    const load = async () => {
      try {
        this.panel = await this.ctx.api(`/api/v1/teller/sessions/${encodeURIComponent(this.session)}`);
      } catch (err) {
        if (![404, 405].includes(err.status)) throw err;
        this.panel = null; // an older desk: the offer's facts are all there is
      }
      this.renderPanel();
      this.renderSteps();
    };
    await load();
    // The liveness verdict may arrive during the call.
    this.timers.push(setInterval(() => { if (!this.liveness()) load().catch(() => {}); }, 4000));
  }

  liveness() {
    return (this.panel && this.panel.liveness) || this.verdict || null;
  }

  // The desk tells us when the terminal's liveness verdict arrives.
  onLiveness(verdict) {
    this.verdict = verdict;
    this.renderPanel();
    this.renderSteps();
  }

  // --- rendering ----------------------------------------------------------------------

  render() {
    this.renderPanel();
    this.renderSteps();
    this.renderTools();
    this.renderReplies();
  }

  renderPanel() {
    const t = this.ctx.t, lang = this.ctx.lang();
    const p = Object.assign({}, this.offer, this.panel || {});
    const code = codeOf(p.business);
    const business = (p.business && p.business[`name_${lang}`]) || this.ctx.businessName(code);
    const language = codeOf(p.language);
    // The signed ID read of this call wins over what the terminal said at request time;
    // a card read before queueing (先刷身份证, verified by the desk) shows from the answer.
    const customer = this.idCard || p.id_read || p.customer || {};
    const verdict = this.liveness();
    // The agent's verdict (edge/vision/verdict.py) says "decision": "pass" | "manual_review".
    const live = verdict && verdict.decision === "pass";
    const rows = [
      [t("business"), business],
      [t("language"), LANGUAGES[lang][language] || (p.language && p.language.name) || language],
      [t("elderly"), p.elderly ? t("yes") : t("no")],
      ...(p.ring_back ? [[t("ringBack"), h("span", { id: "panel-ring-back", class: "badge major" }, t("ringBackPanel"))]] : []),
      ...(p.id_read && !this.idCard ? [[t("idRead"), h("span", { id: "id-read-first", class: "badge ok" }, t("idReadFirst"))]] : []),
      [t("terminal"), p.terminal || "—"],
      [t("name"), h("span", { id: "customer-name" }, customer.name || "—")],
      [t("idNumber"), h("span", { id: "customer-id" }, customer.id_number || "—")],
      [t("idPhoto"), this.idPhoto
        ? h("img", { id: "id-photo", class: "id-photo", src: this.idPhoto.url, alt: t("idPhoto") })
        : h("span", { id: "id-photo-none", class: "muted" }, t(this.idPhotoNote || "idPhotoNone"))],
      [t("waited"), typeof p.waited_s === "number" ? `${Math.round(p.waited_s)} ${t("seconds")}` : "—"],
      [t("liveness"), verdict
        ? h("span", { id: "liveness", class: `badge ${live ? "ok" : "failed"}` },
          `${live ? t("passed") : t("notPassed")} · ${t("score")} ${verdict.score}`)
        : h("span", { id: "liveness", class: "muted" }, t("livenessPending"))],
    ];
    if (Array.isArray(p.history) && p.history.length) {
      const time = (iso) => new Date(iso).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
      rows.push([t("history"), h("div", { class: "history" }, p.history.slice(-4).map((e) =>
        h("div", { class: "muted" }, `${time(e.at)} ${t(`s_${e.to}`)}${e.cause ? " · " + e.cause : ""}`)))]);
    }
    $("customer-body").replaceChildren(...rows.flatMap(([k, v]) => [h("div", {}, k), h("div", {}, v)]));
  }

  stepHint(step) {
    if (SECOND_PERSON.has(step)) return "waitingSupervisor";
    if (DEVICE_STEPS.has(step)) return "byTerminal";
    if (CLOUD_STEPS.has(step)) return "byCloud";
    return null;
  }

  renderSteps() {
    const t = this.ctx.t, lang = this.ctx.lang();
    const wf = this.workflow;
    if (!wf) {
      $("steps").replaceChildren(...(this.workflowNote ? [h("li", { class: "note muted" }, t(this.workflowNote))] : []));
      return;
    }
    const done = new Map(wf.done.map((r) => [r.step, r]));
    $("steps").replaceChildren(...wf.steps.map((step) => {
      const rec = done.get(step);
      const isNext = !wf.outcome && wf.next_step === step;
      const cls = rec ? (rec.passed ? "done" : "failed") : isNext ? "next" : "";
      const hint = isNext ? this.stepHint(step) : null;
      const note = this.stepNotes[step];
      const kids = [h("span", { class: "step-name" }, STEPS[lang][step] || step,
        SECOND_PERSON.has(step) && !rec ? h("div", { class: "hint" }, t("needsSupervisor")) : null,
        hint && !SECOND_PERSON.has(step) ? h("div", { class: "hint" }, t(hint)) : null,
        rec && rec.detail && rec.detail.override ? h("div", { class: "hint" }, `${t("overridden")}: ${rec.detail.reason}`) : null,
        note && !rec ? h("div", { class: "hint step-note" }, note) : null)];
      const machine = DEVICE_STEPS.has(step) || CLOUD_STEPS.has(step);
      if (isNext && machine) {
        const readFirst = step === "id_card_read" && this.panel && this.panel.id_read;
        kids.push(h("button", { type: "button", class: "step-ask", "data-step": step,
          onclick: () => this.askStep(step) },
          t(CLOUD_STEPS.has(step) ? "runCheck" : readFirst ? "useIdRead" : "askTerminal")));
      } else if (isNext && !SECOND_PERSON.has(step)) {
        kids.push(h("button", { type: "button", class: "step-do", "data-step": step,
          onclick: () => this.recordStep(step, true) }, t("stepDone")));
      }
      if (isNext && !SECOND_PERSON.has(step)) {
        kids.push(h("button", { type: "button", class: "secondary step-fail", "data-step": step,
          onclick: () => this.recordStep(step, false) }, t("failStep")));
      }
      return h("li", { class: cls, "data-step": step }, kids);
    }));
  }

  renderTools() {
    document.querySelectorAll("#tools button").forEach((b) => { b.disabled = !this.dataOpen; });
  }

  renderReplies() {
    const t = this.ctx.t;
    $("replies").replaceChildren(...this.replies.map((r) => {
      const form = this.forms.get(r.form_id);
      const label = (name) => ((form && form.fields.find((f) => f.name === name)) || { label: name }).label;
      const values = Object.entries(r.values).map(([k, v]) =>
        `${label(k).replace(/[？?：:]$/, "")}：${v === true ? t("yes") : v === false ? t("no") : v}`);
      return h("li", { "data-form": r.form_id }, h("b", {}, form ? form.title : r.form_id), " · ", values.join("；"));
    }));
    $("signature-box").hidden = !this.signature;
    $("documents-box").hidden = !this.documents.length;
    $("documents").replaceChildren(...this.documents.map((d) => h("figure", {},
      h("img", { src: `data:${d.mime};base64,${d.data_b64}`, alt: t(d.kind), "data-kind": d.kind }),
      h("figcaption", {}, t(d.kind)))));
  }

  drawSignature() {
    const s = this.signature, canvas = $("signature");
    const g = canvas.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, canvas.width, canvas.height);
    const k = Math.min(canvas.width / s.width, canvas.height / s.height);
    g.strokeStyle = "#1d2733";
    g.lineWidth = 3;
    g.lineCap = g.lineJoin = "round";
    for (const stroke of s.strokes) {
      g.beginPath();
      stroke.forEach(([x, y], i) => (i ? g.lineTo(x * k, y * k) : g.moveTo(x * k, y * k)));
      g.stroke();
    }
  }
}

export { FORMS };
