// Pieces shared by Read and Review: score bars, the label editor, the keyboard flow and
// saving a correction as an annotation; plus the session's fallback review queue.
import { api } from "./api.js";
import { CONFIG, LABELS, MODEL, analyst, chipHtml, escapeHtml, labelName, pct, typingIn } from "./common.js";

const QUEUE_KEY = "stance.sessionQueue";
const DONE_KEY = "stance.sessionDone";

export function scoresTitle(scores, thresholds) {
  return LABELS.map((l) => `${labelName(l)}: ${pct(scores?.[l])}${thresholds?.[l] != null ? ` (threshold ${pct(thresholds[l])})` : ""}`).join("\n");
}

export function scoresHtml(scores, thresholds) {
  return `<div class="scores" aria-label="scores per label">${LABELS.map((l) => {
    const s = scores?.[l] ?? 0;
    const t = thresholds?.[l];
    return `<div>${chipHtml(l)} <strong>${pct(s)}</strong>${t != null ? ` <span class="hint">threshold ${pct(t)}</span>` : ""}
      <div class="bar" aria-hidden="true"><span style="width:${(100 * s).toFixed(1)}%"></span>${t != null ? `<i style="left:${(100 * t).toFixed(1)}%"></i>` : ""}</div></div>`;
  }).join("")}</div>`;
}

/** The toggle buttons + save for one statement; `draft` is a Set of label names. */
export function editorHtml(draft, saveLabel = "Save") {
  const toggles = LABELS.map((l, i) => `<button type="button" class="toggle chip l${i + 1}" data-label="${l}" aria-pressed="${draft.has(l)}"
      aria-label="${escapeHtml(labelName(l))} (key ${i + 1})"><span class="key">${i + 1}</span> ${escapeHtml(labelName(l))}</button>`).join("");
  return `<div class="editor" role="group" aria-label="Correct the labels">${toggles}
    <button type="button" class="toggle chip none" data-label="none" aria-pressed="${draft.size === 0}" aria-label="none (key 0)"><span class="key">0</span> none</button>
    <button type="button" class="primary save" data-action="save">${saveLabel} (Enter)</button></div>`;
}

/** Apply key `1`-`n` / `0` to a draft; returns true when the key was a label key. */
export function applyLabelKey(key, draft) {
  if (key === "0") { draft.clear(); return true; }
  const i = Number(key) - 1;
  if (Number.isInteger(i) && i >= 0 && i < LABELS.length) {
    const l = LABELS[i];
    if (draft.has(l)) draft.delete(l); else draft.add(l);
    return true;
  }
  return false;
}

export function toggleFromButton(button, draft) {
  const l = button.dataset.label;
  if (l === "none") draft.clear();
  else if (draft.has(l)) draft.delete(l);
  else draft.add(l);
}

/** Save one correction (labels in schema order) as an annotation; returns the API answer. */
export async function saveAnnotation(text, labels, source) {
  const ordered = LABELS.filter((l) => labels.has(l));
  const answer = await api.annotate([{ text, labels: ordered, source }], analyst());
  markDone(text);
  return answer;
}

/** Keyboard flow: j/k move, 1-n toggle, 0 none, Enter save (s skip where offered). */
export function bindKeys(handlers) {
  document.addEventListener("keydown", (event) => {
    if (typingIn(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    const k = event.key;
    let handled = true;
    if (k === "j") handlers.next?.();
    else if (k === "k") handlers.prev?.();
    // Enter saves, also right after a label was toggled with the mouse (focus on a toggle);
    // on any other button it keeps its own meaning.
    else if (k === "Enter" && (!(event.target instanceof HTMLButtonElement) || event.target.classList.contains("toggle"))) handlers.save?.();
    else if (k === "s" && handlers.skip) handlers.skip();
    else if (/^[0-9]$/.test(k)) handled = handlers.label?.(k) ?? false;
    else handled = false;
    if (handled) event.preventDefault();
  });
}

/** A stable source id for a pasted document (FNV-1a of its text): its statements then
 * group together in training folds however often it is pasted. */
export function documentId(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `console-${h.toString(16).padStart(8, "0")}`;
}

// ------------------------------------------------------------------ session queue (fallback)

const norm = (t) => t.trim().replace(/\s+/g, " ").toLowerCase();

/** Distance of the closest label to its threshold: small = the model is unsure. */
export function margin(scores, thresholds) {
  let best = Infinity;
  for (const l of LABELS) {
    if (scores?.[l] == null) continue;
    best = Math.min(best, Math.abs(scores[l] - (thresholds?.[l] ?? 0.5)));
  }
  return best;
}

function readJson(key, fallback) {
  try { return JSON.parse(sessionStorage.getItem(key)) ?? fallback; } catch { return fallback; }
}

/** Remember a scored document's statements for the fallback review queue (this tab only). */
export function rememberDocument(doc) {
  const thresholds = MODEL?.thresholds ?? {};
  const content = doc.statements.filter((s) => !s.boilerplate);
  const fresh = content.map((s, i) => ({
    key: norm(s.text), text: s.text, source: doc.source, title: doc.title ?? null,
    before: content[i - 1]?.text ?? null, after: content[i + 1]?.text ?? null,
    scores: s.scores, labels: s.labels, margin: margin(s.scores, thresholds), version: doc.model_version,
  }));
  const byKey = new Map(readJson(QUEUE_KEY, []).map((q) => [q.key, q]));
  for (const q of fresh) byKey.set(q.key, q);
  const kept = [...byKey.values()].sort((a, b) => a.margin - b.margin).slice(0, CONFIG.console.review_session_max);
  try {
    sessionStorage.setItem(QUEUE_KEY, JSON.stringify(kept));
  } catch (err) {
    throw new Error(`could not keep the document for the review queue (${err.message})`);
  }
}

export function markDone(text) {
  const done = new Set(readJson(DONE_KEY, []));
  done.add(norm(text));
  sessionStorage.setItem(DONE_KEY, JSON.stringify([...done]));
}

/** The session's statements not annotated yet, least sure first. */
export function sessionQueue(n) {
  const done = new Set(readJson(DONE_KEY, []));
  return readJson(QUEUE_KEY, []).filter((q) => !done.has(q.key)).slice(0, n);
}
