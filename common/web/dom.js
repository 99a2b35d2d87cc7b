// Small DOM helpers every page uses (served at /ui/dom.js by the cloud and by the agent).
// Text from a server always goes in through h() (text nodes), never innerHTML.

export const $ = (id) => document.getElementById(id);

// h("div", {class: "x", onclick: fn}, "text", child, [more]): one element. Attributes that
// are null, undefined or false are left out; "on..." attributes become event listeners;
// kids may nest in arrays and null/undefined kids are skipped.
export function h(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) n.setAttribute(k, v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined) continue;
    n.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return n;
}

// A short message in the page's #toast element; a newer one replaces it.
let toastTimer = null;
export function toast(msg, ms = 3000) {
  const el = $("toast");
  el.textContent = msg;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), ms);
}

// Seconds as "mm:ss" (call clocks, elapsed times).
export function mmss(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}
