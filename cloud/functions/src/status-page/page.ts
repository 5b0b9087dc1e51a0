/**
 * The fleet status page: one HTML document with its CSS and script inline (under a per-response
 * CSP nonce), no framework and no build. The script polls `fleet/data` (one page of sites) or
 * `fleet/data/sites/<id>` every two seconds and redraws only the data, so the search box keeps
 * focus and the page never reloads. Everything is text first: state is a word and a symbol, colour
 * only repeats it; tables have captions and header cells; every control is a link, a button or a
 * labelled input, so the keyboard reaches all of it; sizes are in rem so 200 % zoom reflows.
 */

const CSS = `
:root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --muted: #57606a;
  --line: #d0d7de; --bg: #fff; --fg: #1f2328; --accent: #0969da; }
@media (prefers-color-scheme: dark) { :root { --ok: #3fb950; --warn: #d29922; --bad: #f85149;
  --muted: #9198a1; --line: #3d444d; --bg: #0d1117; --fg: #e6edf3; --accent: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 1rem/1.5 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
a { color: var(--accent); }
:focus-visible { outline: 0.2rem solid var(--accent); outline-offset: 0.15rem; }
.skip { position: absolute; left: -100rem; } .skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: 0.5rem; }
header, main { padding: 0.75rem 1.25rem; max-width: 110rem; margin: 0 auto; }
header { border-bottom: 1px solid var(--line); }
h1 { font-size: 1.5rem; margin: 0 0 0.5rem; } h2 { font-size: 1.25rem; margin: 1.25rem 0 0.5rem; }
.summary { display: flex; flex-wrap: wrap; gap: 0.5rem 1.5rem; margin: 0; }
.summary div { display: flex; gap: 0.4rem; } .summary dt { color: var(--muted); } .summary dd { margin: 0; font-weight: 600; }
.meta { color: var(--muted); font-size: 0.9rem; display: flex; flex-wrap: wrap; gap: 0.5rem 1rem; align-items: center; }
form.search { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: end; margin: 0.75rem 0; }
form.search label { display: flex; flex-direction: column; font-weight: 600; }
input, select, button { font: inherit; padding: 0.35rem 0.6rem; border: 1px solid var(--line); border-radius: 0.3rem;
  background: var(--bg); color: var(--fg); }
input[type=search] { min-width: min(28rem, 80vw); }
button { cursor: pointer; } button[disabled] { opacity: 0.5; cursor: default; }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 0.4rem; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; padding: 0.5rem 0.75rem; font-weight: 600; }
th, td { text-align: left; vertical-align: top; padding: 0.4rem 0.75rem; border-top: 1px solid var(--line); }
th { white-space: nowrap; } td.devices { min-width: 15rem; }
.hint { font-weight: normal; color: var(--muted); font-size: 0.9rem; } td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
ul.cell { list-style: none; margin: 0; padding: 0; } ul.cell li + li { margin-top: 0.15rem; }
.state { font-weight: 600; white-space: nowrap; }
.state-ok { color: var(--ok); } .state-degraded, .state-warn { color: var(--warn); } .state-offline, .state-bad { color: var(--bad); }
.muted { color: var(--muted); }
nav.pager { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: center; margin: 0.75rem 0; }
.error { border: 0.15rem solid var(--bad); padding: 0.5rem 0.75rem; border-radius: 0.3rem; }
`;

const SCRIPT = `
"use strict";
const REFRESH_MS = 2000;
const code = new URLSearchParams(location.search).get("code") || "";
const base = location.pathname.replace(/\\/+$/, "");
const $ = (id) => document.getElementById(id);
let timer = 0, paused = false, inFlight = null, lastKey = "";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c);
  return e;
}
const HEALTH = { ok: ["\\u2714", "OK"], degraded: ["\\u25B2", "Degraded"], offline: ["\\u2716", "Offline"] };
function healthCell(h) { const [sym, word] = HEALTH[h] || ["?", h]; return el("span", { class: "state state-" + h }, sym + " " + word); }
function onlineText(d) { return d.online ? "\\u2714 online" : "\\u2716 offline"; }
function bytes(n) { const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + " " + u[i]; }
function time(iso) { if (!iso) return "never"; const d = new Date(iso); if (isNaN(d)) return iso;
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString(); }
function where(m) { if (m.publicPort === undefined) return "not published"; return (m.publicHost ? m.publicHost + " on port " : "port ") + m.publicPort; }
function list(items, empty) { if (!items.length) return el("span", { class: "muted" }, empty); return el("ul", { class: "cell" }, items.map((i) => el("li", {}, i))); }
function refusals(r) { const e = Object.entries(r); return list(e.map(([k, v]) => k + ": " + v), "none"); }

function route() {
  const h = location.hash.replace(/^#/, "");
  const m = /^\\/site\\/(.+)$/.exec(h);
  if (m) return { view: "site", id: decodeURIComponent(m[1]) };
  const p = new URLSearchParams(h.replace(/^\\/?\\??/, ""));
  return { view: "list", q: p.get("q") || "", page: Number(p.get("page")) || 1, size: Number(p.get("size")) || 50 };
}
function listHash(q, page, size) { const p = new URLSearchParams(); if (q) p.set("q", q); if (page > 1) p.set("page", String(page)); if (size !== 50) p.set("size", String(size)); return "#/?" + p; }
function siteHref(id) { return "?code=" + encodeURIComponent(code) + "#/site/" + encodeURIComponent(id); }

async function getJson(path) {
  const res = await fetch(base + path, { headers: { "x-functions-key": code }, cache: "no-store" });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((body.error && (body.error.code + ": " + body.error.message)) || ("HTTP " + res.status));
  return body;
}

function summary(s) {
  const item = (label, value, id) => el("div", {}, el("dt", {}, label), el("dd", { id }, value));
  $("summary").replaceChildren(
    item("Sites", String(s.sites), "sum-sites"),
    item("\\u2714 OK", String(s.sitesOk)), item("\\u25B2 Degraded", String(s.sitesDegraded)), item("\\u2716 Offline", String(s.sitesOffline)),
    item("Devices online", s.devicesOnline + " of " + s.devices),
    item("Live connections", String(s.activeConnections)),
    item("Gateways answering", s.gatewaysUp + " of " + s.gateways));
}

function siteRow(s) {
  return el("tr", { "data-site": s.siteId },
    el("th", { scope: "row" }, el("a", { href: siteHref(s.siteId), "data-focus": "site:" + s.siteId }, s.siteId)),
    el("td", {}, healthCell(s.health)),
    el("td", { class: "devices" }, list(s.devices.map((d) => el("span", { "data-device": d.deviceId }, el("strong", {}, d.deviceId), " " + onlineText(d),
      el("br"), el("span", { class: "muted" }, "last seen " + time(d.lastSeen) + ", module " + d.deployment))), "no device")),
    el("td", {}, list(s.devices.map((d) => d.listenersOnline + " of " + d.listeners + " online"), "-")),
    el("td", {}, list(s.mappings.map((m) => m.name + " \\u2192 " + where(m)), "none")),
    el("td", { class: "num" }, String(s.activeConnections)),
    el("td", { class: "num" }, bytes(s.bytesIn) + " in / " + bytes(s.bytesOut) + " out"),
    el("td", {}, refusals(s.refusals)),
    el("td", {}, list(s.drift, "none")),
    el("td", {}, list(s.lastErrors, "none")));
}

function renderList(data, r) {
  $("view-title").textContent = "Sites";
  $("search-form").hidden = false;
  summary(data.summary);
  const table = el("table", { id: "sites" },
    el("caption", {}, data.total + " site" + (data.total === 1 ? "" : "s") + (data.query ? " matching \\u201C" + data.query + "\\u201D" : "") + ", page " + data.page + " of " + data.pages),
    el("thead", {}, el("tr", {}, ["Site", "Health", "Devices", "Listeners", "Mappings (public port or host)", "Live connections", "Bytes", "Refusals", "Drift", "Last module errors"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, data.sites.map(siteRow)));
  const pager = el("nav", { class: "pager", "aria-label": "Pages" },
    el("button", { type: "button", id: "prev", disabled: data.page <= 1, "data-focus": "prev" }, "\\u2190 Previous page"),
    el("span", {}, "Page " + data.page + " of " + data.pages),
    el("button", { type: "button", id: "next", disabled: data.page >= data.pages, "data-focus": "next" }, "Next page \\u2192"));
  pager.querySelector("#prev").addEventListener("click", () => { location.hash = listHash(r.q, data.page - 1, r.size); });
  pager.querySelector("#next").addEventListener("click", () => { location.hash = listHash(r.q, data.page + 1, r.size); });
  $("content").replaceChildren(el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Sites table" }, table), pager);
}

function renderSite(data) {
  const s = data.site;
  $("view-title").textContent = "Site " + s.siteId;
  $("search-form").hidden = true;
  const table = (id, caption, heads, rows) => el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    el("table", { id }, el("caption", {}, caption), el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows)));
  const audit = data.audit.records;
  $("content").replaceChildren(
    el("p", {}, el("a", { href: "?code=" + encodeURIComponent(code) + "#/", "data-focus": "back" }, "\\u2190 All sites")),
    el("p", {}, "Health: ", healthCell(s.health), " \\u00B7 device " + s.deviceId + " \\u00B7 profile " + s.profile),
    table("devices", "Devices", ["Device", "Online", "Last seen", "Module (deployment state)", "Listeners", "Desired / applied version"],
      s.devices.map((d) => el("tr", { "data-device": d.deviceId }, el("th", { scope: "row" }, d.deviceId + " / " + d.moduleId),
        el("td", {}, el("span", { class: "state state-" + (d.online ? "ok" : "offline") }, onlineText(d)), " (IoT Hub: " + d.connectionState + ")"),
        el("td", {}, time(d.lastSeen)), el("td", {}, d.deployment + (d.image ? " (image " + d.image + ")" : "") + (d.moduleVersion ? ", version " + d.moduleVersion : "")),
        el("td", {}, d.listenersOnline + " of " + d.listeners + " online (" + d.listenerStatus + ")"),
        el("td", {}, "v" + d.desiredVersion + " / " + (d.appliedVersion === undefined ? "none" : "v" + d.appliedVersion))))),
    table("mappings", "Mappings", ["Mapping", "Public port or host", "Target", "Enabled", "Module state", "Live connections", "Bytes", "Last error"],
      s.mappings.map((m) => el("tr", {}, el("th", { scope: "row" }, m.name), el("td", {}, where(m)), el("td", {}, m.target),
        el("td", {}, m.enabled ? "yes" : "no"), el("td", {}, m.state), el("td", { class: "num" }, String(m.activeConnections)),
        el("td", { class: "num" }, bytes(m.bytesIn) + " in / " + bytes(m.bytesOut) + " out"), el("td", {}, m.lastError || "none")))),
    el("h2", {}, "Refusals by reason"), refusals(s.refusals),
    el("h2", {}, "Drift (desired vs reported)"), list(s.drift, "none"),
    el("h2", {}, "Last module errors"), list(s.lastErrors, "none"),
    data.audit.available
      ? table("audit", "Recent tunnels (audit records, newest first)", ["Time", "Reported by", "Mapping", "Client", "Target", "Bytes", "Duration", "End"],
          audit.length ? audit.map((a) => el("tr", {}, el("td", {}, time(a.time)), el("td", {}, a.side || ""), el("td", {}, a.mapping || ""),
            el("td", {}, a.client || ""), el("td", {}, a.target || ""), el("td", { class: "num" }, bytes(a.bytesIn || 0) + " in / " + bytes(a.bytesOut || 0) + " out"),
            el("td", { class: "num" }, ((a.durationMs || 0) / 1000).toFixed(1) + " s"), el("td", {}, a.end + (a.reason ? " (" + a.reason + ")" : ""))))
            : [el("tr", {}, el("td", { colspan: "8" }, "No audit records yet."))])
      : el("p", { class: "muted" }, "Audit records are not available here (see the IoT Hub route to storage)."));
}

async function refresh() {
  clearTimeout(timer);
  const r = route();
  const key = JSON.stringify(r);
  const focused = document.activeElement && document.activeElement.getAttribute("data-focus");
  try {
    const p = r.view === "site" ? getJson("/data/sites/" + encodeURIComponent(r.id))
      : getJson("/data?q=" + encodeURIComponent(r.q) + "&page=" + r.page + "&pageSize=" + r.size);
    inFlight = p;
    const data = await p;
    if (inFlight !== p) return;
    if (r.view === "site") renderSite(data); else renderList(data, r);
    $("error").hidden = true;
    $("updated").textContent = "Updated " + new Date(data.generatedAt).toLocaleTimeString();
    if (key !== lastKey) { lastKey = key; document.title = (r.view === "site" ? "Site " + r.id + " \\u2013 " : "") + "Relay Fleet status"; }
    if (focused) { const again = document.querySelector('[data-focus="' + CSS.escape(focused) + '"]'); if (again && !again.disabled) again.focus(); }
  } catch (err) {
    $("error").hidden = false;
    $("error").textContent = "Could not refresh: " + err.message + " (retrying)";
  }
  if (!paused) timer = setTimeout(refresh, REFRESH_MS);
}

let typing = 0;
$("q").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => { const r = route(); history.replaceState(null, "", listHash($("q").value.trim(), 1, r.size)); refresh(); }, 250); });
$("search-form").addEventListener("submit", (e) => { e.preventDefault(); const r = route(); location.hash = listHash($("q").value.trim(), 1, r.size); });
$("size").addEventListener("change", () => { const r = route(); location.hash = listHash(r.q, 1, Number($("size").value)); });
$("pause").addEventListener("click", () => { paused = !paused; $("pause").textContent = paused ? "Resume live updates" : "Pause live updates";
  $("pause").setAttribute("aria-pressed", String(paused)); if (!paused) refresh(); else clearTimeout(timer); });
window.addEventListener("hashchange", () => { const r = route(); if (r.view === "list") { $("q").value = r.q; $("size").value = String(r.size); } refresh(); $("view-title").focus(); });
const r0 = route(); if (r0.view === "list") { $("q").value = r0.q; $("size").value = String(r0.size); }
if (!code) { $("error").hidden = false; $("error").textContent = "Open this page with its key: /api/fleet?code=<function key>."; } else refresh();
`;

export function statusPageHtml(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Relay Fleet status</title>
<style nonce="${nonce}">${CSS}</style>
</head>
<body>
<a class="skip" href="#content">Skip to the sites</a>
<header>
  <h1>Relay Fleet status</h1>
  <dl class="summary" id="summary" aria-label="Fleet summary"></dl>
  <p class="meta"><span id="updated">Loading…</span>
    <button type="button" id="pause" aria-pressed="false">Pause live updates</button></p>
</header>
<main>
  <h2 id="view-title" tabindex="-1">Sites</h2>
  <form class="search" id="search-form" role="search">
    <label for="q">Search by site id or tag
      <span class="hint" id="q-hint">device id, profile, or health:ok / health:degraded / health:offline</span>
      <input type="search" id="q" name="q" autocomplete="off" spellcheck="false" aria-describedby="q-hint"></label>
    <label for="size">Sites per page
      <select id="size"><option>25</option><option selected>50</option><option>100</option><option>200</option><option>1000</option></select></label>
  </form>
  <p class="error" id="error" role="alert" hidden></p>
  <div id="content" tabindex="-1"></div>
</main>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>`;
}
