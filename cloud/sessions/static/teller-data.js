// The data-channel protocol between teller and terminal (docs/teller-contract, "Data channel"):
// JSON text messages of at most 16 KiB; a longer one travels as base64 chunks
//   {"type":"chunk","id":..,"index":i,"count":n,"data":"<base64 part>"}
// reassembled into the original JSON text. Pure: no DOM, no network, so it is easy to test.

export const MAX_MESSAGE = 16 * 1024;
// Base64 characters per chunk: leaves room for the envelope inside MAX_MESSAGE.
export const CHUNK_CHARS = 12 * 1024;
// A sender that needs more parts than this is refused (a 16 MiB image is already absurd).
export const MAX_PARTS = 1400;
// Kinds a terminal may send us, and the document kinds and image types we show.
export const INBOUND = new Set(["answer", "signature", "document"]);
// id_photo: the photo of the ID card read in this call (shown during the call, never kept).
export const DOCUMENT_KINDS = new Set(["id_card", "voucher", "id_photo"]);
export const IMAGE_TYPES = new Set(["image/jpeg", "image/png"]);

function utf8ToBase64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function base64ToUtf8(b64) {
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

function byteLength(text) {
  return new TextEncoder().encode(text).length;
}

// One message object -> the texts to send (one, or its chunks).
export function encode(message, chunkId) {
  const text = JSON.stringify(message);
  if (byteLength(text) <= MAX_MESSAGE) return [text];
  const b64 = utf8ToBase64(text);
  const count = Math.ceil(b64.length / CHUNK_CHARS);
  const id = chunkId || Math.random().toString(36).slice(2, 12);
  const out = [];
  for (let index = 0; index < count; index++) {
    const data = b64.slice(index * CHUNK_CHARS, (index + 1) * CHUNK_CHARS);
    out.push(JSON.stringify({ type: "chunk", id, index, count, data }));
  }
  return out;
}

export class ProtocolError extends Error {}

// Feeds received texts in; gives back whole messages. Chunks of several messages may
// interleave; a message whose parts stop arriving is dropped after `staleMs`.
export class Reassembler {
  constructor(staleMs = 60000) {
    this.staleMs = staleMs;
    this.partial = new Map(); // id -> {count, parts: [], got, at}
  }

  // Returns a message object, or null while a chunked message is incomplete.
  // Throws ProtocolError on garbage (the caller counts and logs it, never crashes).
  push(text, nowMs) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (err) {
      throw new ProtocolError(`not JSON: ${String(text).slice(0, 40)}`);
    }
    if (msg === null || typeof msg !== "object" || Array.isArray(msg) || typeof msg.type !== "string") {
      throw new ProtocolError("not a message object with a type");
    }
    if (msg.type !== "chunk") return msg;
    return this._chunk(msg, nowMs === undefined ? Date.now() : nowMs);
  }

  _chunk(c, now) {
    const ok = typeof c.id === "string" && Number.isInteger(c.index) && Number.isInteger(c.count)
      && c.count > 0 && c.count <= MAX_PARTS && c.index >= 0 && c.index < c.count
      && typeof c.data === "string";
    if (!ok) throw new ProtocolError("malformed chunk");
    for (const [id, p] of this.partial) if (now - p.at > this.staleMs) this.partial.delete(id);
    let p = this.partial.get(c.id);
    if (!p) {
      p = { count: c.count, parts: new Array(c.count), got: 0, at: now };
      this.partial.set(c.id, p);
    }
    if (p.count !== c.count) throw new ProtocolError(`chunk ${c.id}: count changed`);
    if (p.parts[c.index] === undefined) p.got++;
    p.parts[c.index] = c.data;
    p.at = now;
    if (p.got < p.count) return null;
    this.partial.delete(c.id);
    let text;
    try {
      text = base64ToUtf8(p.parts.join(""));
    } catch (err) {
      throw new ProtocolError(`chunk ${c.id}: bad base64 or UTF-8`);
    }
    return this.push(text, now);
  }
}

// The ready-made forms a teller pushes (the customer sees them in Chinese).
export const FORMS = {
  confirm: {
    title: "确认办理",
    fields: [{ name: "confirm", label: "您确认办理本项业务吗？", kind: "confirm" }],
  },
  risk: {
    title: "风险告知",
    fields: [
      { name: "understood", label: "本人已听取并理解柜员的风险提示", kind: "confirm" },
      { name: "tolerance", label: "您的风险承受能力", kind: "choice", options: ["保守型", "稳健型", "进取型"] },
    ],
  },
  card: {
    title: "选择卡片",
    fields: [
      { name: "card", label: "请选择要办理的卡片", kind: "choice", options: ["借记卡", "社保卡", "乡村振兴卡"] },
      { name: "remark", label: "其他要求（可不填）", kind: "text" },
    ],
  },
};

// A form message for the terminal, with a fresh form id.
export function formMessage(key, seq) {
  const form = FORMS[key];
  if (!form) throw new Error(`unknown form ${key}`);
  return { type: "form", form_id: `${key}-${seq}`, title: form.title, fields: form.fields };
}

// Checks what the terminal sent; returns the message or throws ProtocolError.
export function checkInbound(msg) {
  if (!INBOUND.has(msg.type)) throw new ProtocolError(`unexpected message type ${msg.type}`);
  if (msg.type === "answer" && (typeof msg.values !== "object" || msg.values === null)) {
    throw new ProtocolError("answer without values");
  }
  if (msg.type === "signature") {
    const fine = Array.isArray(msg.strokes) && msg.width > 0 && msg.height > 0
      && msg.strokes.every((s) => Array.isArray(s) && s.every((p) => Array.isArray(p) && p.length >= 2));
    if (!fine) throw new ProtocolError("malformed signature");
  }
  if (msg.type === "document") {
    if (!DOCUMENT_KINDS.has(msg.kind) || !IMAGE_TYPES.has(msg.mime) || typeof msg.data_b64 !== "string") {
      throw new ProtocolError("malformed document");
    }
  }
  return msg;
}
