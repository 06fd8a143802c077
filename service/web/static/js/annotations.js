// Annotations: search and filter, a statement's history, conflicts settled in one click,
// the audit list when the service has one, and export (JSONL, the training format).
import { api, hasEndpoint, PATHS } from "./api.js";
import { $, loadModel, analyst, chipHtml, chipsHtml, confirmAction, escapeHtml, fmtDate, guard, labelName, showStatus } from "./common.js";

const EXPORT_PAGE = 1000;
let page = 1;

function filters() {
  const form = new FormData($("#filter-form"));
  return Object.fromEntries([...form.entries()].filter(([, v]) => String(v).trim() !== ""));
}

function rowHtml(a) {
  return `<tr><td>${escapeHtml(a.text)}</td><td>${chipsHtml(a.labels)}</td><td><code>${escapeHtml(a.source)}</code></td>
    <td>${escapeHtml(a.annotator)}</td><td>${escapeHtml(a.batch)}</td><td>${fmtDate(a.created_at)}</td>
    <td><button type="button" class="link" data-history="${a.statement_id}">History</button></td></tr>`;
}

async function search() {
  const data = await api.annotations({ ...filters(), page, page_size: 50 });
  $("#results tbody").innerHTML = data.items.map(rowHtml).join("") || `<tr><td colspan="7" class="empty">No annotation matches.</td></tr>`;
  const pages = Math.max(1, Math.ceil(data.total / data.page_size));
  $("#result-count").textContent = `${data.total} annotation(s) (${data.view === "latest" ? "latest label per statement" : "every annotation"}).`;
  $("#page-info").textContent = `page ${data.page} of ${pages}`;
  $("#prev-page").disabled = data.page <= 1;
  $("#next-page").disabled = data.page >= pages;
}

async function history(statementId) {
  const data = await api.annotations({ view: "history", statement_id: statementId, page_size: 200 });
  const panel = $("#history-panel");
  panel.hidden = false;
  const text = data.items[0]?.text ?? "";
  $("#history").innerHTML = `<p class="target">${escapeHtml(text)}</p><ol>${data.items.map((a) =>
    `<li>${fmtDate(a.created_at)} · <strong>${escapeHtml(a.annotator)}</strong> (${escapeHtml(a.batch)}): ${chipsHtml(a.labels)}</li>`).join("")}</ol>`;
  panel.scrollIntoView({ block: "nearest" });
}

async function stats() {
  const s = await api.annotationStats();
  $("#stats").innerHTML = `<span><strong>${s.statements}</strong> statements</span><span><strong>${s.annotations}</strong> annotations</span>
    ${Object.entries(s.labels).map(([l, n]) => `<span>${chipHtml(l)} ${n}</span>`).join("")}
    <span><strong>${s.conflicts}</strong> conflict(s)</span>`;
  const fill = (sel, values) => {
    const select = $(sel);
    const keep = select.value;
    select.innerHTML = `<option value="">any</option>` + values.map((v) => `<option>${escapeHtml(v)}</option>`).join("");
    select.value = keep;
  };
  fill("#f-batch", s.batches.map((b) => b.name));
  fill("#f-annotator", Object.keys(s.annotators));
  $("#conflicts").innerHTML = s.conflict_list.length ? s.conflict_list.map((c, ci) => `<div class="conflict">
      <p>${escapeHtml(c.text)}</p><p class="hint">now used for training: ${chipsHtml(c.latest ?? [])}</p>
      <ul>${Object.entries(c.by_annotator).map(([who, labels], ai) => `<li><strong>${escapeHtml(who)}</strong>: ${chipsHtml(labels)}
        <button type="button" data-settle="${ci}" data-pick="${ai}">Settle as ${escapeHtml(labels.length ? labels.map(labelName).join(", ") : "none")}</button></li>`).join("")}</ul></div>`).join("")
    : `<p class="empty">No conflicts: every statement's annotators agree.</p>`;
  $("#conflicts").conflicts = s.conflict_list;
}

async function settle(ci, ai) {
  const c = $("#conflicts").conflicts[ci];
  const labels = Object.values(c.by_annotator)[ai];
  const hist = await api.annotations({ view: "history", statement_id: c.statement_id, page_size: 1 });
  const source = hist.items[0]?.source;
  if (!source) throw new Error("could not find the statement's source document");
  const ok = await confirmAction(`Settle “${c.text.slice(0, 120)}” as ${labels.length ? labels.map(labelName).join(", ") : "none"}? This adds your annotation; the latest one is used for training.`, "Settle");
  if (!ok) return;
  await api.annotate([{ text: c.text, labels, source }], analyst());
  showStatus("Conflict settled.");
  await stats();
  await search();
}

async function audit() {
  const box = $("#audit");
  if (!(await hasEndpoint(PATHS.audit))) {
    box.innerHTML = `<p class="empty">The service does not list likely label errors yet. When the quality work adds
      <code>${escapeHtml(PATHS.audit)}</code>, the statements whose label the cross-validated model most doubts appear here.</p>`;
    return;
  }
  let data;
  try {
    data = await api.audit();
  } catch (err) {  // e.g. 409: the serving model has no out-of-fold scores; said in words
    box.innerHTML = `<p class="empty">${escapeHtml(err?.message ?? String(err))}</p>`;
    return;
  }
  const items = data.suspects ?? [];
  const head = `<p class="hint">${data.n_audited} of ${data.n_annotations} annotations audited with ${escapeHtml(data.scores_from ?? "")};
    ${data.n_flagged} flagged. Nothing is changed: correct a statement above to fix its label.</p>`;
  box.innerHTML = items.length ? head + `<ol>${items.map((a) => `<li>${escapeHtml(a.text)} · labelled ${chipsHtml(a.labels ?? [])}
      · model suggests ${chipsHtml(a.suggested_labels ?? [])} <span class="hint">(label quality ${(+a.quality).toFixed(2)}${a.flagged ? ", flagged" : ""})</span></li>`).join("")}</ol>`
    : `<p class="empty">No likely label errors listed.</p>`;
}

async function exportJsonl() {
  const query = { ...filters() };
  const lines = [];
  for (let p = 1; ; p++) {
    const data = await api.annotations({ ...query, page: p, page_size: EXPORT_PAGE });
    for (const a of data.items) lines.push(JSON.stringify({ text: a.text, labels: a.labels, source: a.source, annotator: a.annotator, batch: a.batch, created_at: a.created_at }));
    if (p * data.page_size >= data.total) break;
  }
  const blob = new Blob([lines.join("\n") + "\n"], { type: "application/x-ndjson" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `annotations-${new Date().toISOString().slice(0, 10)}.jsonl`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  showStatus(`Exported ${lines.length} annotation(s).`);
}

function init() {
  guard(loadModel);
  $("#filter-form").addEventListener("submit", (e) => { e.preventDefault(); page = 1; guard(search); });
  $("#prev-page").addEventListener("click", () => { page -= 1; guard(search); });
  $("#next-page").addEventListener("click", () => { page += 1; guard(search); });
  $("#export").addEventListener("click", () => guard(exportJsonl));
  document.addEventListener("click", (e) => {
    const h = e.target.closest("[data-history]");
    if (h) guard(() => history(Number(h.dataset.history)));
    const s = e.target.closest("[data-settle]");
    if (s) guard(() => settle(Number(s.dataset.settle), Number(s.dataset.pick)));
  });
  guard(async () => { await stats(); await search(); });
  guard(audit);
}

init();
