// Shared by every page: config from the template, label chips (colour + number + text),
// messages (errors shown in words, never swallowed), the token and confirm dialogs, the
// analyst's name, and the model badge (which version the page's scores come from).
import { api, ApiError, forgetToken, hasToken, setTokenPrompt } from "./api.js";

export const CONFIG = JSON.parse(document.getElementById("console-config").textContent);
export const LABELS = CONFIG.labels;
const ANALYST_KEY = "stance.analyst";
const NAME_OK = /^[\w.@:+-]{1,200}$/;

export const $ = (sel, root = document) => root.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
export const labelName = (name) => name.replaceAll("_", " ");
export const labelClass = (name) => `l${LABELS.indexOf(name) + 1}`;
export const pct = (x) => (x == null ? "–" : `${(100 * x).toFixed(1)}%`);

/** HTML of a label chip: colour, key number and name (never colour alone). */
export function chipHtml(name) {
  if (name === "none") return `<span class="chip none"><span class="key">0</span> none</span>`;
  const i = LABELS.indexOf(name);
  return `<span class="chip ${labelClass(name)}"><span class="key">${i + 1}</span> ${escapeHtml(labelName(name))}</span>`;
}

export function chipsHtml(labels) {
  return labels && labels.length ? labels.map(chipHtml).join(" ") : chipHtml("none");
}

export function renderLegend(target) {
  if (!target) return;
  target.innerHTML = `<span class="hint">Labels:</span> ${LABELS.map(chipHtml).join(" ")} ${chipHtml("none")}`;
}

// ------------------------------------------------------------------ messages

export function showError(err) {
  const box = $("#error-box");
  const text = err instanceof ApiError || err instanceof Error ? err.message : String(err);
  box.textContent = text;
  box.hidden = false;
  if (!(err instanceof ApiError)) console.warn(err); // a bug of ours: keep the stack for the developer
}

export function clearError() { const box = $("#error-box"); box.hidden = true; box.textContent = ""; }

export function showStatus(text) { $("#status-box").textContent = text; }

/** Run an async action; its error is shown in words (never swallowed). */
export async function guard(fn) {
  try {
    clearError();
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  }
}

// ------------------------------------------------------------------ dialogs

function askToken() {
  const dialog = $("#token-dialog");
  const input = $("#token-input");
  input.value = "";
  return new Promise((resolve) => {
    const done = (value) => {
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onClose = () => done(dialog.returnValue === "ok" && input.value.trim() ? input.value.trim() : null);
    dialog.addEventListener("close", onClose);
    $("#token-cancel").onclick = () => { dialog.returnValue = "cancel"; dialog.close(); };
    dialog.showModal();
    input.focus();
  });
}

export function confirmAction(text, okLabel = "Confirm") {
  const dialog = $("#confirm-dialog");
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

// ------------------------------------------------------------------ analyst, token, model

export function analyst() {
  const input = $("#analyst-name");
  const name = (input.value || "").trim();
  if (!name) {
    input.focus();
    throw new Error("enter your name (Analyst, top right) so your annotations are attributed to you");
  }
  if (!NAME_OK.test(name)) throw new Error("the analyst name may hold letters, digits and . _ - @ : + only (1-200)");
  return name;
}

function setupHeader() {
  const input = $("#analyst-name");
  input.value = localStorage.getItem(ANALYST_KEY) ?? "";
  input.addEventListener("change", () => localStorage.setItem(ANALYST_KEY, input.value.trim()));
  const forget = $("#forget-token");
  const refresh = () => { forget.hidden = !hasToken(); };
  forget.addEventListener("click", () => { forgetToken(); refresh(); showStatus("API token forgotten for this tab."); });
  setTokenPrompt(async () => { const t = await askToken(); setTimeout(refresh); return t; });
  refresh();
}

export let MODEL = null;

/** The served model (labels, thresholds, version), shown in the header. */
export async function loadModel() {
  const badge = $("#model-badge");
  try {
    MODEL = await api.model();
    badge.textContent = `model: ${MODEL.version}`;
  } catch (err) {
    badge.textContent = "model: not loaded";
    throw err;
  }
  return MODEL;
}

export function setModelBadge(version) {
  if (version) $("#model-badge").textContent = `model: ${version}`;
}

/** Keys typed into a form field are not console shortcuts. */
export function typingIn(event) {
  const t = event.target;
  return t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))
    || document.querySelector("dialog[open]") !== null;
}

export function fmtDate(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().slice(0, 16).replace("T", " ");
}

export function fmtDuration(seconds) {
  if (seconds == null) return "unknown";
  const m = Math.floor(seconds / 60), s = seconds % 60;
  return m ? `${m} min ${s} s` : `${s} s`;
}

setupHeader();
