// Models: the registry (version, data, CV and gate figures, status and reason), the model
// card, a retrain button with live progress (phase, percent, ETA) and the gate's verdict,
// promote and rollback with confirmation.
import { api } from "./api.js";
import { $, CONFIG, confirmAction, escapeHtml, fmtDate, fmtDuration, guard, loadModel, showStatus } from "./common.js";

const ACTIVE = ["queued", "running", "judging"];
let timer = null;
let watched = null;

/** A metric that may be a number or {value|mean|point, ci...}, found along the first path that exists. */
function figure(root, ...paths) {
  for (const path of paths) {
    let v = root;
    for (const k of path.split(".")) v = v?.[k];
    if (v != null) {
      const n = typeof v === "object" ? (v.value ?? v.mean ?? v.point ?? v.estimate) : v;
      if (typeof n === "number") return n.toFixed(3);
    }
  }
  return "–";
}

function dataText(d) {
  if (!d || !Object.keys(d).length) return "–";
  const parts = [];
  if (d.n_statements != null) parts.push(`${d.n_statements} statements`);
  if (d.n_sources != null) parts.push(`${d.n_sources} documents`);
  if (d.n_holdout != null) parts.push(`${d.n_holdout} held out`);
  return parts.join(", ") || JSON.stringify(d).slice(0, 120);
}

function gateText(m) {
  const g = m.gate;
  const verdict = g ? `${g.promote ? "promote" : "keep current"}: ${g.metric} ${(+g.candidate_score).toFixed(3)} vs ${g.current_score != null ? (+g.current_score).toFixed(3) : "–"} (n=${g.n_heldout ?? "?"})` : "";
  return [verdict, m.reason].filter(Boolean).map(escapeHtml).join("<br>") || "–";
}

function modelRow(m, current) {
  const isCurrent = m.version === current;
  const actions = isCurrent ? "<strong>serving</strong>"
    : `<button type="button" data-promote="${escapeHtml(m.version)}">Promote</button>`;
  return `<tr class="${isCurrent ? "current-model" : ""}">
    <td><code>${escapeHtml(m.version)}</code>${isCurrent ? " <strong>(current)</strong>" : ""}<br><a href="/models/${encodeURIComponent(m.version)}/card">model card</a></td>
    <td>${fmtDate(m.created)}</td><td>${escapeHtml(dataText(m.data))}</td>
    <td>CV macro-F1 ${figure(m.metrics, "cv.transformer.macro_f1", "cv.macro_f1")}<br>held-out macro-F1 ${figure(m.metrics, "holdout.macro_f1", "holdout.transformer.macro_f1", "holdout.metrics.macro_f1")}</td>
    <td>${escapeHtml(m.status ?? "–")}${m.error ? `<br><span class="hint">${escapeHtml(m.error)}</span>` : ""}</td>
    <td>${gateText(m)}</td><td>${actions}</td></tr>`;
}

async function registry() {
  const data = await api.models();
  $("#models tbody").innerHTML = data.models.slice().reverse().map((m) => modelRow(m, data.current)).join("")
    || `<tr><td colspan="7" class="empty">The registry is empty.</td></tr>`;
  return data;
}

function jobHtml(job) {
  const info = job.progress ?? {};  // written by the training process: phase k of n, step, percent, ETA
  const running = ACTIVE.includes(job.state);
  let html = `<p><strong>Job <code>${escapeHtml(job.id)}</code>: <span id="job-state">${escapeHtml(job.state)}</span></strong>
    · config ${escapeHtml(job.config)} · ${job.n_annotations ?? "?"} annotations · started ${fmtDate(job.started_at)}</p>`;
  if (job.state === "running") {
    const where = info.phases ? ` (phase ${info.phase_number} of ${info.phases}, step ${info.step} of ${info.steps})` : "";
    html += `<p>Phase: <span id="job-phase">${escapeHtml((info.phase ?? "starting") + where)}</span>
      · <span id="job-percent">${info.percent != null ? `${info.percent}%` : "…"}</span>
      · ETA ${info.eta_s != null ? fmtDuration(info.eta_s) : "unknown"}</p>
      <progress id="job-progress" max="100" ${info.percent != null ? `value="${info.percent}"` : ""} aria-label="training progress"></progress>`;
  } else if (job.state === "judging") {
    html += `<p>Training done; the gate is comparing <code>${escapeHtml(job.version ?? "")}</code> with the current model.</p>`;
  }
  if (job.gate) {
    html += `<p id="gate-verdict"><strong>Gate:</strong> ${job.gate.promote ? "promoted" : "not promoted"} — ${escapeHtml(job.gate.reason ?? "")}</p>`;
  }
  if (job.state === "succeeded") html += `<p>New version <code>${escapeHtml(job.version)}</code> is now serving.</p>`;
  if (job.error) html += `<p class="hint">Error:</p><pre>${escapeHtml(job.error)}</pre>`;
  if (running && job.log_tail?.length) html += `<details><summary>Log</summary><pre>${escapeHtml(job.log_tail.join("\n"))}</pre></details>`;
  return html;
}

async function follow(jobId) {
  watched = jobId;
  clearTimeout(timer);
  const job = await api.job(jobId);
  $("#job").innerHTML = jobHtml(job);
  const running = ACTIVE.includes(job.state);
  $("#retrain").disabled = running;
  $("#cancel-job").hidden = !running;
  if (running) {
    timer = setTimeout(() => guard(() => follow(jobId)), CONFIG.console.poll_interval_ms);
  } else {
    await registry();
    await jobs();
    await loadModel();
  }
}

async function jobs() {
  const list = await api.jobs(10);
  $("#jobs").innerHTML = list.length ? `<div class="table-wrap"><table class="results"><thead><tr><th scope="col">Job</th><th scope="col">State</th><th scope="col">Config</th><th scope="col">Version</th><th scope="col">Finished</th></tr></thead><tbody>
    ${list.map((j) => `<tr><td><button type="button" class="link" data-job="${escapeHtml(j.id)}">${escapeHtml(j.id)}</button></td><td>${escapeHtml(j.state)}</td><td>${escapeHtml(j.config)}</td>
      <td>${j.version ? `<code>${escapeHtml(j.version)}</code>` : "–"}</td><td>${fmtDate(j.finished_at)}</td></tr>`).join("")}</tbody></table></div>`
    : `<p class="empty">No retraining job yet.</p>`;
  return list;
}

async function retrain(event) {
  event.preventDefault();
  const config = $("#retrain-config").value;
  const ok = await confirmAction(`Start retraining on every stored annotation${config ? ` (config ${config})` : ""}? The current model keeps serving; the gate decides whether the new one replaces it.`, "Start retraining");
  if (!ok) return;
  const job = await api.retrain(config || null);
  showStatus(`Retraining started: job ${job.id}.`);
  await jobs();
  await follow(job.id);
}

async function promote(version) {
  if (!(await confirmAction(`Promote ${version}? It will serve every request from now on (hot swap, no downtime).`, "Promote"))) return;
  const r = await api.promote(version);
  showStatus(`Now serving ${r.current} (was ${r.previous ?? "none"}).`);
  await registry();
  await loadModel();
}

async function rollback() {
  if (!(await confirmAction("Roll back to the previous version? It will serve every request from now on.", "Roll back"))) return;
  const r = await api.rollback(null);
  showStatus(`Rolled back: now serving ${r.current} (was ${r.previous}).`);
  await registry();
  await loadModel();
}

function init() {
  $("#retrain-form").addEventListener("submit", (e) => guard(() => retrain(e)));
  $("#rollback").addEventListener("click", () => guard(rollback));
  $("#cancel-job").addEventListener("click", () => guard(async () => {
    if (watched && await confirmAction("Cancel the running retraining job?", "Cancel job")) {
      await api.cancelJob(watched);
      await follow(watched);
    }
  }));
  document.addEventListener("click", (e) => {
    const p = e.target.closest("[data-promote]");
    if (p) guard(() => promote(p.dataset.promote));
    const j = e.target.closest("[data-job]");
    if (j) guard(() => follow(j.dataset.job));
  });
  guard(loadModel);
  guard(async () => {
    await registry();
    const list = await jobs();
    const active = list.find((j) => ACTIVE.includes(j.state));
    if (active) await follow(active.id);
  });
}

init();
