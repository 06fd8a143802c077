// Read: paste or upload -> /v1/feeds/score (NDJSON, streamed) -> documents with their
// statements highlighted by label, boilerplate greyed, a summary with evidence, and an
// editor on the current statement (keyboard: j/k, 1-n, 0, Enter).
import { api } from "./api.js";
import {
  $, CONFIG, LABELS, MODEL, chipHtml, chipsHtml, escapeHtml, guard, labelClass, labelName, loadModel,
  pct, renderLegend, setModelBadge, showError, showStatus,
} from "./common.js";
import {
  applyLabelKey, bindKeys, documentId, editorHtml, rememberDocument, saveAnnotation, scoresHtml,
  scoresTitle, toggleFromButton,
} from "./annotate.js";

const EVIDENCE_SHOWN = 3;
const GENERATED_ID = /^(article|line|item)-\d+$/;
const docs = [];        // {source, title, model_version, statements[], el}
let order = [];         // [docIndex, statementIndex] of content statements, reading order
let current = -1;       // position in `order`

function statementHtml(d, i, s) {
  if (s.boilerplate) {
    return `<li class="st boilerplate" data-d="${d}" data-i="${i}" title="boilerplate (${escapeHtml(s.boilerplate)}): not scored">
      <span>${escapeHtml(s.text)}</span><span class="tags"><span class="chip none">boilerplate</span></span></li>`;
  }
  const cls = s.labels.length ? `has-${labelClass(s.labels[0])}` : "";
  return `<li class="st ${cls}" data-d="${d}" data-i="${i}" title="${escapeHtml(scoresTitle(s.scores, MODEL?.thresholds))}">
    <span class="text">${escapeHtml(s.text)}</span><span class="tags">${chipsHtml(s.labels)}</span></li>`;
}

function summaryHtml(doc) {
  const summary = doc.summary ?? {};
  const counts = summary.label_counts ?? {};
  const on = summary.labels ?? [];
  const items = on.map((l) => {
    const evidence = doc.statements.filter((s) => s.labels?.includes(l))
      .sort((a, b) => b.scores[l] - a.scores[l]).slice(0, EVIDENCE_SHOWN);
    return `<li>${chipHtml(l)} in ${counts[l]} statement(s); strongest:
      <ul>${evidence.map((s) => `<li><a href="#" data-jump="${s.index}">“${escapeHtml(s.text.slice(0, 160))}${s.text.length > 160 ? "…" : ""}”</a> (${pct(s.scores[l])})</li>`).join("")}</ul></li>`;
  }).join("");
  return `<div class="summary"><strong>Summary:</strong> ${summary.statements ?? 0} statements scored, ${summary.boilerplate ?? 0} boilerplate skipped.
    ${on.length ? `<ul>${items}</ul>` : ` No stance found (${chipHtml("none")}).`}</div>`;
}

/** Statements are added in chunks, one per animation frame: a 1,000-statement document
 * paints its first screen at once and the page stays responsive while the rest arrive. */
function renderStatements(list, d, statements) {
  const chunk = CONFIG.console.render_chunk;
  return new Promise((resolve) => {
    let at = 0;
    const step = () => {
      const end = Math.min(at + chunk, statements.length);
      let html = "";
      for (let i = at; i < end; i++) html += statementHtml(d, i, statements[i]);
      list.insertAdjacentHTML("beforeend", html);
      at = end;
      if (at < statements.length) requestAnimationFrame(step); else resolve();
    };
    step();
  });
}

async function addDocument(article, fallbackText) {
  if (article.error && !article.statements) {
    showError(`${article.id ?? "an item"}: ${article.error}`);
    return;
  }
  const d = docs.length;
  const source = article.id && !GENERATED_ID.test(article.id) ? String(article.id) : documentId(
    article.statements.map((s) => s.text).join("\n") || fallbackText);
  const doc = { ...article, source, statements: article.statements.map((s) => ({ ...s, labels: s.labels ?? [] })) };
  docs.push(doc);
  setModelBadge(doc.model_version);
  const title = doc.title || doc.statements[0]?.text?.slice(0, 90) || `Document ${d + 1}`;
  const section = document.createElement("article");
  section.className = "doc";
  section.setAttribute("aria-labelledby", `doc-${d}-title`);
  section.innerHTML = `<div class="doc-head"><h2 id="doc-${d}-title">${escapeHtml(title)}</h2>
    <span class="hint">source <code>${escapeHtml(source)}</code> · scored by model <code>${escapeHtml(doc.model_version ?? "?")}</code>
    ${/^https?:\/\//i.test(doc.url ?? "") ? ` · <a href="${escapeHtml(doc.url)}" rel="noreferrer noopener" target="_blank">original</a>` : ""}</span></div>
    ${summaryHtml(doc)}<ol class="statements" aria-label="Statements of ${escapeHtml(title)}"></ol>`;
  doc.el = section;
  $("#documents").append(section);
  await renderStatements(section.querySelector("ol"), d, doc.statements);
  doc.statements.forEach((s, i) => { if (!s.boilerplate) order.push([d, i]); });
  try { rememberDocument(doc); } catch (err) { showError(err); }
}

function itemEl(d, i) { return docs[d].el.querySelector(`li[data-i="${i}"]`); }

function select(pos) {
  if (!order.length) return;
  pos = Math.max(0, Math.min(order.length - 1, pos));
  if (current >= 0 && current < order.length) {
    const [pd, pi] = order[current];
    const prev = itemEl(pd, pi);
    prev.classList.remove("current");
    prev.querySelectorAll(".editor, .scores").forEach((n) => n.remove());
    prev.removeAttribute("aria-current");
  }
  current = pos;
  const [d, i] = order[pos];
  const s = docs[d].statements[i];
  s.draft ??= new Set(s.labels);
  const li = itemEl(d, i);
  li.classList.add("current");
  li.setAttribute("aria-current", "true");
  li.insertAdjacentHTML("beforeend", scoresHtml(s.scores, MODEL?.thresholds) + editorHtml(s.draft));
  li.scrollIntoView({ block: "nearest" });
}

function refreshEditor() {
  const [d, i] = order[current];
  const s = docs[d].statements[i];
  const li = itemEl(d, i);
  li.querySelectorAll(".editor .toggle").forEach((b) => {
    const l = b.dataset.label;
    b.setAttribute("aria-pressed", String(l === "none" ? s.draft.size === 0 : s.draft.has(l)));
  });
  const changed = [...s.draft].sort().join() !== [...(s.saved ?? new Set(s.labels))].sort().join();
  li.querySelector(".tags").innerHTML = chipsHtml(LABELS.filter((l) => s.draft.has(l)))
    + (changed ? ` <span class="dirty">unsaved</span>` : s.saved ? ` <span class="saved">✓ saved</span>` : "");
}

async function saveCurrent() {
  if (current < 0) return;
  const [d, i] = order[current];
  const doc = docs[d];
  const s = doc.statements[i];
  await guard(async () => {
    const answer = await saveAnnotation(s.text, s.draft, doc.source);
    s.saved = new Set(s.draft);
    s.labels = LABELS.filter((l) => s.draft.has(l));
    refreshEditor();
    const names = s.labels.length ? s.labels.map(labelName).join(", ") : "none";
    showStatus(`Saved as ${names} (annotation ${answer.ids?.[0]}, batch ${answer.batch}${answer.created ? "" : ", unchanged"}).`);
  });
}

async function submit(event) {
  event.preventDefault();
  const file = $("#file-input").files[0];
  const text = $("#text-input").value;
  if (!file && !text.trim()) { showError("paste a text or choose a file first"); return; }
  const button = $("#read-submit");
  button.disabled = true;
  await guard(async () => {
    if (!MODEL) await loadModel();
    $("#documents").replaceChildren();
    docs.length = 0; order = []; current = -1;
    showStatus("Scoring…");
    const opts = file ? { format: "auto", contentType: file.type || "application/octet-stream" } : { format: "text", contentType: "text/plain; charset=utf-8" };
    const pending = [];
    await api.scoreFeed(file ?? text, {
      ...opts, onArticle: (article) => pending.push(addDocument(article, text)),
    });
    await Promise.all(pending);
    order.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // documents render concurrently
    const n = docs.reduce((a, d) => a + d.statements.filter((s) => !s.boilerplate).length, 0);
    showStatus(`${docs.length} document(s), ${n} statements scored. Click a statement or press j to start correcting.`);
  });
  button.disabled = false;
}

function init() {
  renderLegend($("#legend"));
  $("#read-form").addEventListener("submit", submit);
  $("#documents").addEventListener("click", (event) => {
    const jump = event.target.closest("[data-jump]");
    if (jump) {
      event.preventDefault();
      const d = Number(jump.closest("article.doc") === null ? 0 : docs.findIndex((x) => x.el === jump.closest("article.doc")));
      const pos = order.findIndex(([od, oi]) => od === d && docs[od].statements[oi].index === Number(jump.dataset.jump));
      if (pos >= 0) select(pos);
      return;
    }
    const toggle = event.target.closest(".editor .toggle");
    if (toggle) {
      const [d, i] = order[current];
      toggleFromButton(toggle, docs[d].statements[i].draft);
      refreshEditor();
      return;
    }
    if (event.target.closest("[data-action=save]")) { saveCurrent(); return; }
    const li = event.target.closest("li.st:not(.boilerplate)");
    if (li) {
      const pos = order.findIndex(([d, i]) => d === Number(li.dataset.d) && i === Number(li.dataset.i));
      if (pos !== current) select(pos);
    }
  });
  bindKeys({
    next: () => select(current + 1),
    prev: () => select(current - 1),
    save: () => saveCurrent(),
    label: (key) => {
      if (current < 0) return false;
      const [d, i] = order[current];
      const ok = applyLabelKey(key, docs[d].statements[i].draft);
      if (ok) refreshEditor();
      return ok;
    },
  });
  guard(loadModel);
}

init();
