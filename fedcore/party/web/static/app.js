// fedcore status page: reads the operator API's JSON and draws the party, its peers and jobs,
// or one job (progress, per-round metric charts as inline SVG, log). Read-only, no libraries.
// Every value from the API goes into the page as text (textContent), never as markup: logs and
// peer errors carry text that other parties chose.
"use strict";

const ROOT = document.querySelector('meta[name="fedcore-root"]').content;
const FINAL = new Set(["succeeded", "failed", "cancelled", "interrupted", "refused"]);
const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 2000;
const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#57606a"];

// ------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path) {
  const response = await fetch(ROOT + path, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    cache: "no-store",
  });
  if (!response.ok) {
    let message = response.statusText;
    try {
      const body = await response.json();
      message = (body.error && body.error.message) || message;
    } catch (_) { /* not JSON: keep the status text */ }
    throw new ApiError(response.status, message);
  }
  return response.json();
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const delta = Date.now() / 1000 - seconds;
  return delta < 1 ? "just now" : `${duration(delta)} ago`;
}

function expiry(seconds) {
  if (seconds === null || seconds === undefined) return el("span", { class: "muted" }, "unknown");
  const days = (seconds - Date.now() / 1000) / 86400;
  const text = days < 0 ? `expired ${when(seconds)}` : `${when(seconds)} (in ${Math.floor(days)} days)`;
  return el("span", { class: days < 0 ? "bad" : days < 30 ? "warn" : "" }, text);
}

function badge(state) {
  return el("span", { class: `state state-${state}`, "data-state": state }, state);
}

function table(headers, rows, attrs) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : [el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "none"))]));
}

function short(value, width = 160) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > width ? text.slice(0, width - 1) + "…" : text;
}

function stamp() {
  document.getElementById("refreshed").textContent = `updated ${when(Date.now() / 1000)}`;
}

function showError(error) {
  const main = document.getElementById("main");
  const hint = error.status === 401
    ? "Not authorized: open this page once as …/?token=<the token in the party's [api] token_file>."
    : `The daemon did not answer: ${error.message}`;
  main.replaceChildren(el("p", { class: "bad", id: "error" }, hint));
}

// ------------------------------------------------------------------ home: party, peers, jobs

function peersTable(peers) {
  const rows = peers.map((p) => el("tr", { "data-peer": p.id },
    el("td", {}, p.id),
    el("td", { class: "mono" }, p.address || "—"),
    el("td", {}, el("span", { class: p.reachable ? "good" : "bad" }, p.reachable ? "reachable" : "unreachable"),
      p.error ? el("div", { class: "muted small" }, short(p.error, 120)) : null),
    el("td", {}, expiry(p.cert_expires)),
    el("td", {}, ago(p.last_seen))));
  return table(["peer", "address", "reachable", "certificate expires", "last seen"], rows, { id: "peers" });
}

function jobsTable(jobs, id) {
  const rows = jobs.map((j) => el("tr", { "data-job": j.job_id },
    el("td", { class: "mono" }, el("a", { href: `${ROOT}jobs/${encodeURIComponent(j.job_id)}` }, j.job_id)),
    el("td", {}, badge(j.state)),
    el("td", {}, j.script),
    el("td", {}, (j.parties || []).join(", ")),
    el("td", {}, j.step || "—"),
    el("td", {}, when(j.started)),
    el("td", {}, duration(j.seconds)),
    el("td", {}, j.initiator || "—")));
  return table(["job", "state", "script", "parties", "step", "started", "duration", "initiator"], rows, { id });
}

async function home() {
  const [status, list] = await Promise.all([api("api/v1/status"), api("api/v1/jobs")]);
  document.getElementById("party").textContent = status.party;
  document.title = `fedcore · ${status.party}`;
  const running = list.jobs.filter((j) => !FINAL.has(j.state));
  const past = list.jobs.filter((j) => FINAL.has(j.state));
  document.getElementById("main").replaceChildren(
    el("section", {},
      el("h1", {}, "Party ", el("span", { id: "party-id" }, status.party)),
      el("p", {}, el("span", { id: "jobs-running" }, status.jobs_running), " running job(s), ",
        `${(status.peers || []).length} peer(s)`)),
    el("section", {}, el("h2", {}, "Peers"), peersTable(status.peers || [])),
    el("section", {}, el("h2", {}, "Running jobs"), jobsTable(running, "running-jobs")),
    el("section", {}, el("h2", {}, "Past jobs"), jobsTable(past, "past-jobs")));
  stamp();
  return true; // the home page keeps refreshing
}

// ------------------------------------------------------------------ one job

function lastProgress(events) {
  const byParty = new Map();
  for (const e of events || []) byParty.set(e.party, e);
  return [...byParty.values()];
}

function progressTable(job) {
  const rows = lastProgress(job.progress).map((e) => {
    const fraction = e.total ? Math.max(0, Math.min(1, (e.done || 0) / e.total)) : null;
    return el("tr", { "data-party": e.party },
      el("td", {}, e.party),
      el("td", {}, e.step || "—"),
      el("td", {}, fraction === null ? "—" : el("span", { class: "bar" },
        el("span", { class: "fill", "data-fraction": fraction.toFixed(3) }),
        el("span", { class: "bar-text" }, `${e.done}/${e.total}`))),
      el("td", {}, e.message || ""),
      el("td", {}, when(e.at)));
  });
  return table(["party", "step", "progress", "message", "at"], rows, { id: "progress" });
}

function outcomesTable(job) {
  const rows = Object.entries(job.outcomes || {}).map(([party, outcome]) => {
    const failed = outcome && typeof outcome === "object" && "error" in outcome && "kind" in outcome;
    return el("tr", { "data-party": party },
      el("td", {}, party),
      el("td", {}, el("span", { class: failed ? "bad" : "good" }, failed ? "failed" : "ok")),
      el("td", { class: "mono small" }, failed
        ? `${outcome.error}${outcome.step ? ` (step ${outcome.step})` : ""}` : short(outcome)));
  });
  return table(["party", "outcome", "result or error"], rows, { id: "outcomes" });
}

function statesList(job) {
  return el("ol", { id: "states", class: "states" }, (job.states || []).map((s) =>
    el("li", {}, badge(s.state), " ", when(s.at), s.reason ? el("span", { class: "muted" }, ` ${s.reason}`) : null)));
}

// metric name -> party -> [[round, value]...], names with at least one finite number
function metricSeries(rows) {
  const series = new Map();
  for (const row of rows || []) {
    for (const [name, value] of Object.entries(row)) {
      if (name === "round" || name === "party" || typeof value !== "number" || !isFinite(value)) continue;
      if (!series.has(name)) series.set(name, new Map());
      const byParty = series.get(name);
      const party = row.party || "";
      if (!byParty.has(party)) byParty.set(party, []);
      byParty.get(party).push([row.round, value]);
    }
  }
  const first = ["accuracy", "loss"];
  const names = [...series.keys()].sort((a, b) =>
    (first.includes(a) ? first.indexOf(a) : 9) - (first.includes(b) ? first.indexOf(b) : 9) || a.localeCompare(b));
  return names.map((name) => [name, series.get(name)]);
}

// axis bounds on round numbers (steps of 1, 2, 2.5 or 5 times a power of ten), about four steps
function niceAxis(values) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
  const raw = (hi - lo) / 4, power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(+v.toPrecision(12));
  return { lo, hi, ticks };
}

function chart(name, byParty) {
  const W = 420, H = 220, L = 52, R = 12, T = 28, B = 34;
  const points = [...byParty.values()].flat();
  const rounds = points.map((p) => p[0]), values = points.map((p) => p[1]);
  const [x0, x1] = rounds.length > 1 && Math.min(...rounds) !== Math.max(...rounds)
    ? [Math.min(...rounds), Math.max(...rounds)] : [Math.min(...rounds) - 1, Math.max(...rounds) + 1];
  const axis = niceAxis(values), y0 = axis.lo, y1 = axis.hi;
  const x = (r) => L + (r - x0) / (x1 - x0) * (W - L - R);
  const y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "data-metric": name, "data-points": points.length, "aria-label": `${name} per round` });
  root.append(svg("text", { x: L, y: 18, class: "chart-title" }, `${name} per round`));
  for (const v of axis.ticks) {  // horizontal grid with value labels
    root.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: L - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, v));
  }
  const ticks = [...new Set(rounds)].sort((a, b) => a - b);
  const every = Math.max(1, Math.ceil(ticks.length / 10));
  ticks.filter((_, i) => i % every === 0).forEach((r) =>
    root.append(svg("text", { x: x(r), y: H - B + 16, class: "tick", "text-anchor": "middle" }, r)));
  root.append(svg("text", { x: (L + W - R) / 2, y: H - 4, class: "tick", "text-anchor": "middle" }, "round"));
  let index = 0;
  for (const [party, series] of byParty) {
    const color = COLORS[index++ % COLORS.length];
    series.sort((a, b) => a[0] - b[0]);
    root.append(svg("polyline", { points: series.map(([r, v]) => `${x(r)},${y(v)}`).join(" "),
      fill: "none", stroke: color, "stroke-width": 2, "data-party": party }));
    for (const [r, v] of series) {
      const dot = svg("circle", { cx: x(r), cy: y(v), r: 3, fill: color, class: "point",
        "data-round": r, "data-value": v });
      dot.append(svg("title", {}, `${party ? party + " " : ""}round ${r}: ${+v.toPrecision(4)}`));
      root.append(dot);
    }
  }
  if (byParty.size > 1 || [...byParty.keys()][0]) {
    const legend = el("div", { class: "legend" }, [...byParty.keys()].map((party, i) =>
      el("span", {}, el("span", { class: "swatch", "data-color": COLORS[i % COLORS.length] }), party || "—")));
    return el("figure", { class: "chart-box" }, root, legend);
  }
  return el("figure", { class: "chart-box" }, root);
}

function colorSwatches(scope) {
  // colours are set from script, not inline style attributes, so the CSP can forbid inline styles
  scope.querySelectorAll(".swatch[data-color]").forEach((s) => { s.style.background = s.dataset.color; });
  scope.querySelectorAll(".fill[data-fraction]").forEach((f) => { f.style.width = `${100 * f.dataset.fraction}%`; });
}

function charts(job) {
  const series = metricSeries(job.metrics);
  if (!series.length) return el("p", { class: "muted", id: "charts" }, "No metrics reported (yet).");
  return el("div", { id: "charts", class: "charts" }, series.map(([name, byParty]) => chart(name, byParty)));
}

async function jobPage(jobId) {
  const [status, job] = await Promise.all([api("api/v1/status"), api(`api/v1/jobs/${encodeURIComponent(jobId)}`)]);
  document.getElementById("party").textContent = status.party;
  document.title = `fedcore · job ${job.job_id}`;
  const facts = [
    ["state", badge(job.state)], ["script", job.script], ["initiator", job.initiator || "—"],
    ["parties", (job.parties || []).join(", ")], ["step", job.step || "—"],
    ["started", when(job.started)], ["duration", duration(job.seconds)],
  ];
  const log = job.log || [];
  const main = document.getElementById("main");
  main.replaceChildren(...[
    el("p", {}, el("a", { href: ROOT }, "← all jobs")),
    el("h1", {}, "Job ", el("span", { id: "job-id", class: "mono" }, job.job_id)),
    el("dl", { id: "facts", class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", { "data-fact": k }, v)])),
    job.error ? el("p", { class: "bad", id: "job-error" }, job.error) : null,
    el("section", {}, el("h2", {}, "Metrics per round"), charts(job)),
    el("section", {}, el("h2", {}, "Progress"), progressTable(job)),
    el("section", {}, el("h2", {}, "Outcomes"), outcomesTable(job)),
    el("section", {}, el("h2", {}, "States"), statesList(job)),
    el("section", {}, el("h2", {}, `Log (${log.length} lines)`), el("pre", { id: "log", class: "log" }, log.join("\n"))),
  ].filter(Boolean));
  colorSwatches(main);
  stamp();
  return !FINAL.has(job.state); // a finished job no longer changes
}

// ------------------------------------------------------------------ start

async function loop(draw) {
  let again = true;
  try {
    again = await draw();
    document.body.dataset.loaded = "true";
  } catch (error) {
    showError(error);
    document.body.dataset.loaded = "error";
    if (error.status === 401 || error.status === 404) return;
  }
  if (again) setTimeout(() => loop(draw), REFRESH_MS);
}

function start() {
  const path = window.location.pathname.slice(new URL(ROOT, window.location.href).pathname.length);
  const match = /^jobs\/([^/]+)$/.exec(path);
  if (match) loop(() => jobPage(decodeURIComponent(match[1])));
  else loop(home);
}

start();
