// Review: one statement at a time with its context; the same keyboard flow as Read, plus
// skip. The queue is the feed-monitoring queue (GET /v1/review/next) when the service has
// it, else the statements of documents read in this tab that the model is least sure of.
import { api, hasEndpoint, PATHS } from "./api.js";
import { $, CONFIG, LABELS, MODEL, analyst, chipsHtml, escapeHtml, fmtDate, guard, labelName, loadModel, renderLegend, showStatus } from "./common.js";
import { applyLabelKey, bindKeys, editorHtml, markDone, saveAnnotation, scoresHtml, sessionQueue, toggleFromButton } from "./annotate.js";

let queue = [];
let pos = 0;
let live = false;      // true: the service's queue; false: this tab's fallback queue
let savedToday = 0;

function today() { return new Date().toISOString().slice(0, 10); }

// Today's batches (UTC days, as the service names them): corrections posted to
// /v1/annotations go to api-DAY, answers to the feed queue to review-DAY.
const TODAY_BATCHES = ["api-", "review-"];

async function countToday() {
  let name;
  try { name = analyst(); } catch { $("#today-counter").textContent = "Annotations today: enter your name to count them"; return; }
  const pages = await Promise.all(TODAY_BATCHES.map((prefix) =>
    api.annotations({ view: "history", annotator: name, batch: `${prefix}${today()}`, page_size: 1 })));
  savedToday = pages.reduce((sum, data) => sum + data.total, 0);
  $("#today-counter").textContent = `Annotations today (${name}): ${savedToday}`;
}

function contextHtml(item) {
  if (live) {
    const c = item.context;
    const link = /^https?:\/\//i.test(c.url ?? "") ? ` · <a href="${escapeHtml(c.url)}" rel="noreferrer noopener" target="_blank">original</a>` : "";
    return `<p class="context">${c.title ? `<strong>${escapeHtml(c.title)}</strong> · ` : ""}${escapeHtml(c.outlet)} · ${escapeHtml(fmtDate(c.published))}${link}</p>`
      + (c.before ? `<p class="context">… ${escapeHtml(c.before)}</p>` : "")
      + (c.missing ? `<p class="hint">No surrounding sentences: ${escapeHtml(c.missing)}</p>` : "");
  }
  return (item.title ? `<p class="context"><strong>${escapeHtml(item.title.slice(0, 160))}</strong></p>` : "")
    + (item.before ? `<p class="context">… ${escapeHtml(item.before)}</p>` : "");
}

function render() {
  const card = $("#review-card");
  if (!queue.length || pos >= queue.length) {
    card.innerHTML = live
      ? `<p class="empty">The review queue is empty: every stored statement the model is unsure of has been annotated.</p>`
      : `<p class="empty">Nothing to review in this tab yet. Read a text on the <a href="/">Read</a> page: its statements
         the model is least sure of (closest to a label threshold) come here, one at a time.</p>`;
    return;
  }
  const item = queue[pos];
  item.labels ??= LABELS.filter((l) => (item.scores?.[l] ?? 0) >= (MODEL?.thresholds?.[l] ?? 0.5));
  item.draft ??= new Set(item.labels);
  const following = live ? item.context.after : item.after;
  const after = following ? `<p class="context after">${escapeHtml(following)} …</p>` : "";
  card.innerHTML = `<p class="hint">Statement ${pos + 1} of ${queue.length} · the model says ${chipsHtml(item.labels)}
      ${item.version ? ` (model <code>${escapeHtml(item.version)}</code>)` : ""}${item.saved ? ' · <span class="saved">✓ saved</span>' : ""}</p>
    ${contextHtml(item)}
    <p class="target" id="review-text">${escapeHtml(item.text)}</p>${after}
    ${scoresHtml(item.scores, MODEL?.thresholds)}${editorHtml(item.draft, "Save and next")}`;
}

/** The sentences before and after each queued statement, from its stored article (the
 * queue names the article, not the neighbours). One request per article. */
async function addNeighbours(items) {
  const ids = [...new Set(items.map((it) => it.articleId))];
  const articles = new Map(await Promise.all(ids.map(async (id) => {
    try { return [id, await api.article(id)]; } catch (err) { return [id, err]; }
  })));
  for (const item of items) {
    const article = articles.get(item.articleId);
    if (article instanceof Error) { item.context.missing = article.message; continue; }
    const content = article.statements.filter((st) => !st.boilerplate).sort((a, b) => a.position - b.position);
    const at = content.findIndex((st) => st.id === item.id);
    item.context.before = at > 0 ? content[at - 1].text : null;
    item.context.after = at >= 0 && at < content.length - 1 ? content[at + 1].text : null;
  }
}

async function load() {
  live = await hasEndpoint(PATHS.reviewNext) && await hasEndpoint(PATHS.reviewTemplate, "post");
  if (live) {
    $("#queue-source").textContent = "Queue: stored statements from the monitored feeds, chosen by uncertainty and diversity.";
    queue = await api.reviewNext(CONFIG.console.review_batch);
    await addNeighbours(queue);
  } else {
    $("#queue-source").textContent = "Queue: statements of the documents read in this tab, least sure first (closest to a label threshold). "
      + "The service's feed queue appears here once it is available.";
    queue = sessionQueue(CONFIG.console.review_session_max);
  }
  pos = 0;
  render();
}

async function save() {
  const item = queue[pos];
  if (!item) return;
  await guard(async () => {
    const labels = LABELS.filter((l) => item.draft.has(l));
    if (live) {
      await api.reviewSave(item.id, labels, analyst());
      markDone(item.text);
    } else {
      await saveAnnotation(item.text, item.draft, item.source);
    }
    item.saved = true;
    showStatus(`Saved as ${labels.length ? labels.map(labelName).join(", ") : "none"}.`);
    await countToday();
    next();
  });
}

async function skip() {
  const item = queue[pos];
  if (!item) return;
  await guard(async () => {
    if (live) await api.reviewSkip(item.id, analyst());
    queue.splice(pos, 1);
    showStatus("Skipped.");
    if (pos >= queue.length && live) await load(); else render();
  });
}

function next() {
  if (pos < queue.length - 1) { pos += 1; render(); return; }
  if (live) { guard(load); return; }
  queue = sessionQueue(CONFIG.console.review_session_max); // saved ones drop out
  pos = 0;
  render();
}

function prev() { if (pos > 0) { pos -= 1; render(); } }

function init() {
  renderLegend($("#legend"));
  $("#review-next").addEventListener("click", next);
  $("#review-prev").addEventListener("click", prev);
  $("#review-skip").addEventListener("click", skip);
  $("#review-card").addEventListener("click", (event) => {
    const toggle = event.target.closest(".editor .toggle");
    if (toggle && queue[pos]) { toggleFromButton(toggle, queue[pos].draft); render(); }
    if (event.target.closest("[data-action=save]")) save();
  });
  $("#analyst-name").addEventListener("change", () => guard(countToday));
  bindKeys({
    next, prev, save, skip,
    label: (key) => {
      if (!queue[pos]) return false;
      const ok = applyLabelKey(key, queue[pos].draft);
      if (ok) render();
      return ok;
    },
  });
  guard(async () => { await loadModel(); await load(); });
  guard(countToday);
}

init();
