// Trends: share of a label per outlet over time with 95% intervals (hand-drawn SVG: no
// charting library to vendor), outlet and date filters, CSV download of the rows shown.
// Uses GET /v1/trends (feed monitoring); until the service has it, says so.
import { api, hasEndpoint, PATHS } from "./api.js";
import { $, loadModel, LABELS, escapeHtml, guard, labelName, pct, showStatus } from "./common.js";

const W = 900, H = 360, PAD = { l: 56, r: 16, t: 16, b: 48 };
const SERIES = ["#0072b2", "#b36b00", "#007a5a", "#a5487f", "#56b4e9", "#d55e00", "#333333"];
const DASHES = ["", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 4"];
let rows = [];
let versions = []; // [{version, statements}]: the model versions whose scores the figures sum

function emptyState(html) {
  $("#trend-chart").innerHTML = `<div class="empty">${html}</div>`;
  $("#trend-table").replaceChildren();
  $("#csv").disabled = true;
}

function chart(label) {
  const buckets = [...new Set(rows.map((r) => r.bucket))].sort();
  const outlets = [...new Set(rows.map((r) => r.outlet))].sort();
  const x = (b) => PAD.l + (buckets.length < 2 ? (W - PAD.l - PAD.r) / 2 : (buckets.indexOf(b) * (W - PAD.l - PAD.r)) / (buckets.length - 1));
  const maxY = Math.min(1, Math.max(0.05, ...rows.map((r) => r.hi ?? r.share ?? 0)) * 1.1);
  const y = (v) => PAD.t + (1 - v / maxY) * (H - PAD.t - PAD.b);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * maxY);
  const every = Math.max(1, Math.ceil(buckets.length / 8));
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">
    <title id="chart-title">Share of statements labelled ${escapeHtml(labelName(label))}, per outlet</title>
    <desc id="chart-desc">Lines: share per ${escapeHtml($("#t-bucket").value)}; bands: 95% intervals. The table below holds the same figures.</desc>`;
  for (const t of ticks) {
    svg += `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(t)}" y2="${y(t)}" stroke="#e3e7eb"/><text x="${PAD.l - 6}" y="${y(t) + 4}" text-anchor="end" font-size="12">${(100 * t).toFixed(0)}%</text>`;
  }
  buckets.forEach((b, i) => {
    if (i % every === 0) svg += `<text x="${x(b)}" y="${H - PAD.b + 18}" text-anchor="middle" font-size="12">${escapeHtml(String(b).slice(0, 10))}</text>`;
  });
  outlets.forEach((o, k) => {
    const colour = SERIES[k % SERIES.length];
    const pts = rows.filter((r) => r.outlet === o && r.share != null).sort((a, b) => (a.bucket < b.bucket ? -1 : 1));
    const band = pts.filter((r) => r.lo != null && r.hi != null);
    if (band.length) {
      const upper = band.map((r) => `${x(r.bucket)},${y(r.hi)}`);
      const lower = band.slice().reverse().map((r) => `${x(r.bucket)},${y(r.lo)}`);
      svg += `<polygon points="${[...upper, ...lower].join(" ")}" fill="${colour}" opacity="0.15"/>`;
      band.forEach((r) => { svg += `<line x1="${x(r.bucket)}" x2="${x(r.bucket)}" y1="${y(r.lo)}" y2="${y(r.hi)}" stroke="${colour}" opacity="0.6"/>`; });
    }
    svg += `<polyline points="${pts.map((r) => `${x(r.bucket)},${y(r.share)}`).join(" ")}" fill="none" stroke="${colour}" stroke-width="2" stroke-dasharray="${DASHES[k % DASHES.length]}"/>`;
    pts.forEach((r) => { svg += `<circle cx="${x(r.bucket)}" cy="${y(r.share)}" r="3" fill="${colour}"><title>${escapeHtml(o)} ${escapeHtml(r.bucket)}: ${pct(r.share)} (${pct(r.lo)}–${pct(r.hi)}), ${r.labelStatements ?? "?"} of ${r.stanceStatements ?? "?"} stance-bearing statements</title></circle>`; });
    svg += `<g transform="translate(${PAD.l + (k % 4) * 210},${H - 14})"><line x1="0" x2="24" y1="-4" y2="-4" stroke="${colour}" stroke-width="2" stroke-dasharray="${DASHES[k % DASHES.length]}"/><text x="30" y="0" font-size="12">${escapeHtml(o)}</text></g>`;
  });
  $("#trend-chart").innerHTML = svg + "</svg>";
}

function table() {
  $("#trend-table").innerHTML = `<div class="table-wrap"><table class="results"><caption class="sr-only">Trend figures</caption>
    <thead><tr><th scope="col">Bucket</th><th scope="col">Outlet</th><th scope="col">Share</th><th scope="col">95% interval</th><th scope="col">With the label</th><th scope="col">Stance-bearing statements</th><th scope="col">Statements</th><th scope="col">Articles</th></tr></thead>
    <tbody>${rows.map((r) => `<tr><td>${escapeHtml(r.bucket)}</td><td>${escapeHtml(r.outlet)}</td><td>${pct(r.share)}</td><td>${pct(r.lo)} – ${pct(r.hi)}</td>
      <td>${r.labelStatements ?? "–"}</td><td>${r.stanceStatements ?? "–"}</td><td>${r.statements ?? "–"}</td><td>${r.articles ?? "–"}</td></tr>`).join("")}</tbody></table></div>
    <p class="hint" id="trend-versions">Model versions in these figures: ${versions.length
      ? versions.map((v) => `<code>${escapeHtml(v.version)}</code> (${v.statements} statements)`).join(", ") : "none"}</p>`;
}

function csv() {
  const label = $("#t-label").value;
  const quote = (v) => `"${String(v ?? "").replaceAll('"', '""')}"`;
  const lines = [["bucket", "outlet", "label", "share", "ci_low", "ci_high", "label_statements", "stance_statements", "statements", "articles", "model_versions"].join(",")];
  const models = versions.map((v) => v.version).join(" ");
  for (const r of rows) lines.push([r.bucket, r.outlet, label, r.share, r.lo, r.hi, r.labelStatements, r.stanceStatements, r.statements, r.articles, models].map(quote).join(","));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
  link.download = `trends-${label}-${$("#t-bucket").value}.csv`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function show() {
  if (!(await hasEndpoint(PATHS.trends))) {
    emptyState(`<strong>No trend data yet.</strong> Trends come from the monitored feeds: once the service scores the
      outlets' feeds on a schedule (the feed-monitoring endpoints <code>/v1/feeds</code> and <code>${escapeHtml(PATHS.trends)}</code>),
      this page charts each label's share of stance-bearing statements per outlet and ${escapeHtml($("#t-bucket").value)}, with 95% intervals,
      and offers the figures as CSV. Until then, read single texts on the <a href="/">Read</a> page.`);
    return;
  }
  const form = Object.fromEntries(new FormData($("#trend-form")).entries());
  const label = form.label || LABELS[0];
  ({ rows, versions } = await api.trends(form, label));
  if (!rows.length) { emptyState("No statements in this range: widen the dates or clear the outlet filter."); return; }
  chart(label);
  table();
  $("#csv").disabled = false;
  showStatus(`${rows.length} row(s).`);
}

function init() {
  guard(loadModel);
  $("#trend-form").addEventListener("submit", (e) => { e.preventDefault(); guard(show); });
  $("#csv").addEventListener("click", csv);
  guard(show);
}

init();
