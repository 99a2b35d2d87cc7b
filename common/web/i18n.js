// The one i18n of every page (served at /ui/i18n.js by the cloud and by the agent).
//
// ONE fallback rule: a key is looked up in the current language, then in Chinese (zh), and
// if neither has it the key itself is shown. Chinese is the default language.
//
// Each page registers its dictionaries once: register({zh: {...}, en: {...}}); several
// registrations merge. The choice is kept in localStorage under "cuntong.lang", so one
// switch serves every page of that browser. Markup opts in with attributes:
//   data-i18n="key"        -> textContent      data-i18n-ph="key"    -> placeholder
//   data-i18n-label="key"  -> aria-label       data-i18n-alt="key"   -> alt
// No DOM is touched at import time (node imports this module to check dictionaries).

export const LANGS = ["zh", "en"];
export const DEFAULT = "zh";
const KEY = "cuntong.lang";
const dictionaries = { zh: {}, en: {} };

function stored() {
  try {
    return globalThis.localStorage ? globalThis.localStorage.getItem(KEY) : null;
  } catch (err) {
    return null; // storage disabled: the default
  }
}

let current = LANGS.includes(stored()) ? stored() : DEFAULT;

export function register(dicts) {
  for (const [lang, words] of Object.entries(dicts)) {
    dictionaries[lang] = Object.assign(dictionaries[lang] || {}, words);
  }
}

export const lang = () => current;

export function setLang(next) {
  current = LANGS.includes(next) ? next : DEFAULT;
  try {
    globalThis.localStorage.setItem(KEY, current);
  } catch (err) {
    /* not kept: this page still switches */
  }
  return current;
}

export const toggleLang = () => setLang(current === "zh" ? "en" : "zh");

export function t(key) {
  const mine = dictionaries[current] && dictionaries[current][key];
  if (mine !== undefined) return mine;
  const zh = dictionaries.zh[key];
  return zh !== undefined ? zh : key;
}

// Applies the dictionaries to the marked-up elements under `root`, the document's language
// and (given a key) its title.
export function translate(root = document, titleKey = null) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  if (titleKey) document.title = t(titleKey);
  root.querySelectorAll("[data-i18n]").forEach((n) => (n.textContent = t(n.dataset.i18n)));
  root.querySelectorAll("[data-i18n-ph]").forEach((n) => (n.placeholder = t(n.dataset.i18nPh)));
  root.querySelectorAll("[data-i18n-label]").forEach((n) => n.setAttribute("aria-label", t(n.dataset.i18nLabel)));
  root.querySelectorAll("[data-i18n-alt]").forEach((n) => (n.alt = t(n.dataset.i18nAlt)));
}
