// The one place the console talks to the API: every path is in PATHS, so a renamed or
// merged endpoint is one edit here. Writes carry the session's token as a Bearer header
// (asked once per browser session, kept in sessionStorage, never in a URL or cookie).
// Errors become ApiError with a message in words from the body's detail / error / problems.

export const PATHS = {
  openapi: "/openapi.json",
  model: "/v1/model",
  feeds: "/v1/feeds/score",
  annotations: "/v1/annotations",
  annotationStats: "/v1/annotations/stats",
  audit: "/v1/annotations/audit",          // the quality issue's list of likely label errors (if present)
  retrain: "/v1/retrain",
  jobs: "/v1/jobs",
  job: (id) => `/v1/jobs/${encodeURIComponent(id)}`,
  cancelJob: (id) => `/v1/jobs/${encodeURIComponent(id)}/cancel`,
  models: "/v1/models",
  promote: (v) => `/v1/models/${encodeURIComponent(v)}/promote`,
  rollback: "/v1/models/rollback",
  reviewNext: "/v1/review/next",          // feed monitoring (service/monitor); fallback when absent
  review: (id) => `/v1/review/${encodeURIComponent(id)}`,
  reviewTemplate: "/v1/review/{statement_id}", // as the OpenAPI spec names the path
  article: (id) => `/v1/articles/${encodeURIComponent(id)}`,
  trends: "/v1/trends",                   // feed monitoring; explanatory empty state when absent
};

const TOKEN_KEY = "stance.apiToken";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

function problemText(p) {
  if (p == null) return "";
  if (typeof p !== "object") return String(p);
  const where = p.field ?? (p.record != null ? `record ${p.record}` : p.line != null ? `line ${p.line}` : p.loc);
  const what = p.message ?? p.msg ?? p.detail ?? JSON.stringify(p);
  return where != null && where !== "" ? `${Array.isArray(where) ? where.join(".") : where}: ${what}` : String(what);
}

/** Words for an error body, whichever of detail / error / problems it has: issue 9's
 * {"error": code, "detail": message, "problems": [...]}, today's {"error": sentence,
 * "detail": [{field, message}]}, FastAPI's {"detail": ...}, or plain text. */
export function errorMessage(body, status, statusText = "") {
  const parts = [];
  const add = (text) => {
    text = String(text ?? "").trim();
    if (text && !parts.some((p) => p.includes(text))) parts.push(text);
  };
  if (body && typeof body === "object") {
    const { detail, error, problems, message } = body;
    const isCode = typeof error === "string" && /^[a-z0-9_.-]+$/.test(error);
    if (typeof error === "string" && !isCode) add(error);          // a sentence: say it first
    else if (error && typeof error === "object") add(error.message ?? JSON.stringify(error));
    if (typeof detail === "string") add(detail);
    else if (Array.isArray(detail)) detail.forEach((d) => add(problemText(d)));
    else if (detail && typeof detail === "object") {
      add(detail.message);
      (detail.problems ?? []).forEach((d) => add(problemText(d)));
    }
    if (typeof message === "string") add(message);
    if (Array.isArray(problems)) problems.forEach((p) => add(problemText(p)));
    if (!parts.length && isCode) add(error.replaceAll("_", " "));   // only a code: better than nothing
  } else if (typeof body === "string") {
    add(body.slice(0, 500));
  }
  if (!parts.length) add(statusText || "request failed");
  return `${status ? `HTTP ${status}: ` : ""}${parts.join("\n")}`;
}

// ------------------------------------------------------------------ token

let askToken = async () => null; // set by common.js (a dialog); returns the token or null

export function setTokenPrompt(fn) { askToken = fn; }
export function hasToken() { return !!sessionStorage.getItem(TOKEN_KEY); }
export function forgetToken() { sessionStorage.removeItem(TOKEN_KEY); }

async function token(force = false) {
  let value = force ? null : sessionStorage.getItem(TOKEN_KEY);
  if (!value) {
    value = await askToken();
    if (!value) throw new ApiError(0, "no API token given: nothing was saved", null);
    sessionStorage.setItem(TOKEN_KEY, value);
  }
  return value;
}

// ------------------------------------------------------------------ requests

function url(path, query) {
  const u = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u.pathname + u.search;
}

async function parse(resp) {
  const type = resp.headers.get("content-type") ?? "";
  if (type.includes("json")) {
    try { return await resp.json(); } catch { return null; }
  }
  return resp.text();
}

/** fetch + JSON + errors in words. `auth`: a write that needs the token (asked for if
 * missing; asked again once if the service says 401/403). */
export async function request(method, path, { query, json, body, headers, auth = false, raw = false } = {}) {
  const send = async (force) => {
    const h = { Accept: "application/json", ...(headers ?? {}) };
    if (json !== undefined) h["Content-Type"] = "application/json";
    if (auth) h.Authorization = `Bearer ${await token(force)}`;
    return fetch(url(path, query), {
      method, headers: h, body: json !== undefined ? JSON.stringify(json) : body, credentials: "omit",
    });
  };
  let resp;
  try {
    resp = await send(false);
    if (auth && (resp.status === 401 || resp.status === 403)) {
      forgetToken();
      resp = await send(true);
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError(0, `the service did not answer (${err.message}); is it running?`, null);
  }
  if (!resp.ok) {
    const data = await parse(resp);
    if (auth && (resp.status === 401 || resp.status === 403)) forgetToken();
    throw new ApiError(resp.status, errorMessage(data, resp.status, resp.statusText), data);
  }
  return raw ? resp : parse(resp);
}

export const get = (path, query) => request("GET", path, { query });
export const post = (path, json, opts = {}) => request("POST", path, { json, auth: true, ...opts });

// ------------------------------------------------------------------ capabilities

let spec = null;

/** True when the app's OpenAPI lists `method path` (endpoints of branches not merged yet). */
export async function hasEndpoint(path, method = "get") {
  if (!spec) {
    try { spec = await get(PATHS.openapi); } catch { spec = { paths: {} }; }
  }
  const entry = spec.paths?.[path];
  return !!(entry && entry[method.toLowerCase()]);
}

// ------------------------------------------------------------------ endpoints

export const api = {
  model: () => get(PATHS.model),
  models: () => get(PATHS.models),
  jobs: (limit = 10) => get(PATHS.jobs, { limit }),
  job: (id) => get(PATHS.job(id)),
  retrain: (config) => post(PATHS.retrain, config ? { config } : {}),
  cancelJob: (id) => post(PATHS.cancelJob(id), undefined),
  promote: (version) => post(PATHS.promote(version), undefined),
  rollback: (version) => post(PATHS.rollback, version ? { version } : {}),
  annotations: (query) => get(PATHS.annotations, query),
  annotationStats: () => get(PATHS.annotationStats),
  annotate: (records, annotator) => post(PATHS.annotations, { annotations: records, annotator }),
  audit: () => get(PATHS.audit),

  /** Score a feed or pasted text; calls `onArticle` for each NDJSON line as it arrives. */
  async scoreFeed(body, { format = "auto", contentType = "text/plain", onArticle }) {
    const resp = await request("POST", PATHS.feeds, {
      query: { format, boilerplate: "true" }, body, headers: { "Content-Type": contentType }, raw: true,
    });
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buffer += value;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (line) onArticle(JSON.parse(line));
      }
      if (done) break;
    }
    if (buffer.trim()) onArticle(JSON.parse(buffer));
  },

  /** Stored article with its statements (GET /v1/articles/{id}: ArticleOut). */
  article: (id) => get(PATHS.article(id)),

  /** The review queue (GET /v1/review/next: ReviewNext {model_version, strategy, items:
   * [ReviewItem {id, text, outlet, article_id, title, url, published_at, scores, labels,
   * uncertainty, model_version}]}), as the page's items. */
  async reviewNext(n) {
    const data = await get(PATHS.reviewNext, { n });
    return data.items.map((it) => ({
      id: it.id,
      text: it.text,
      context: { title: it.title, outlet: it.outlet, published: it.published_at, url: it.url },
      articleId: it.article_id,
      scores: it.scores,
      labels: it.labels,
      uncertainty: it.uncertainty,
      version: it.model_version ?? data.model_version,
    }));
  },
  /** POST /v1/review/{id}: ReviewAnswer is either {labels} ([] = no stance) or {skip: true}. */
  reviewSave: (id, labels, annotator) => post(PATHS.review(id), { labels, annotator }),
  reviewSkip: (id, annotator) => post(PATHS.review(id), { skip: true, annotator }),

  /** GET /v1/trends (TrendsOut {bucket, from, to, labels, interval, share_of, model_versions:
   * [{version, statements}], rows: [TrendRow {outlet, bucket_start, articles, statements,
   * stance_articles, stance_statements, labels: {name: {statements, articles, share, low, high}}}]})
   * for one label, flattened to {rows: [{bucket, outlet, share, lo, hi, labelStatements,
   * stanceStatements, statements, articles}], versions: [{version, statements}]}. */
  async trends(query, label) {
    const data = await get(PATHS.trends, { ...query, label });
    const rows = data.rows.map((r) => {
      const cell = r.labels[label] ?? {};
      return {
        bucket: r.bucket_start, outlet: r.outlet, share: cell.share ?? null, lo: cell.low ?? null, hi: cell.high ?? null,
        labelStatements: cell.statements ?? null, stanceStatements: r.stance_statements,
        statements: r.statements, articles: r.articles,
      };
    });
    return { rows, versions: data.model_versions };
  },
};
