// The board's script: renders the CLI's JSON documents (/api/...) and re-renders on every poll (server-sent events).
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const tv = params.get("tv") === "1";
  if (tv) document.body.classList.add("tv");
  const main = document.getElementById("main");
  const fresh = document.getElementById("fresh");
  let status = null;

  // Every link and request keeps the token and tv mode.
  function url(path, extra) {
    const q = new URLSearchParams(extra || {});
    if (token) q.set("token", token);
    if (tv) q.set("tv", "1");
    const s = q.toString();
    return path + (s ? (path.includes("?") ? "&" : "?") + s : "");
  }
  // The first render reads synchronously, so the page is complete when it has loaded (a wall screen's first
  // paint, and headless browsers that read the DOM at the load event); later ones wait for events.
  let initial = true;
  async function get(path, extra) {
    if (initial) {
      const x = new XMLHttpRequest();
      x.open("GET", url(path, extra), false);
      x.send();
      return JSON.parse(x.responseText);
    }
    const r = await fetch(url(path, extra), { headers: token ? { Authorization: "Bearer " + token } : {} });
    return r.json();
  }
  function esc(v) {
    return String(v == null ? "" : v).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  const short = v => typeof v === "string" && v ? esc(v.slice(0, 8)) : v && typeof v === "object" ? esc(Object.entries(v).map(([k, w]) => k + " " + w).join(", ")) : "-";
  // The ledger's times are milliseconds since the epoch; the rest RFC 3339.
  const ms = ts => typeof ts === "number" ? ts : Date.parse(ts);
  const fmt = ts => ts == null ? "-" : new Date(ms(ts)).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  function ago(ts) {
    if (!ts) return "-";
    const s = Math.max(0, Math.round((Date.now() - ms(ts)) / 1000));
    return dur(s) + " ago";
  }
  function dur(s) {
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d";
  }
  const since = ts => ts ? dur(Math.max(0, Math.round((Date.now() - ms(ts)) / 1000))) : "-";
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.getAttribute("href") === location.pathname) a.classList.add("here");
    a.href = url(a.getAttribute("href"));
  }

  function role(c) {
    // Text and shape as well as colour: ● live, ○ idle, ■ in place.
    if (c.role === "live") return `<span class="badge live">● LIVE${c.share != null && c.share < 100 ? " " + c.share + "%" : ""}</span>`;
    if (c.role === "idle") return `<span class="badge idle">○ IDLE</span>`;
    return `<span class="badge in-place">■ IN PLACE</span>`;
  }
  function health(c) {
    const full = c.healthy === c.count && c.total === c.count;
    const cls = full ? "ok" : c.healthy === 0 && c.count > 0 ? "bad" : "warn";
    const mark = full ? "✔" : "▲";
    return `<span class="${cls}" data-healthy="${c.healthy}">${mark} ${c.healthy}/${c.count} healthy${c.total !== c.count ? ` (${c.total} up)` : ""}</span>`;
  }
  function cluster(c) {
    const commit = c.commit ? `<span class="sha">${short(c.commit)}</span>` : c.commits.length ? `${c.commits.length} commits` : "-";
    return `<div class="cluster ${esc(c.role)}" data-cluster="${esc(c.cluster)}" data-commit="${esc(c.commit || "")}" data-role="${esc(c.role)}">
      <div><span class="name">${esc(c.cluster)}</span> ${role(c)}</div>
      <div>${commit} <span class="subject">${esc(c.subject || "")}</span></div>
      <div class="ami muted">${esc(c.ami || "no AMI")}${c.baked ? " · baked " + ago(c.baked) : ""}</div>
      <div>${health(c)}</div>
      ${c.strays.length ? `<div class="bad" data-strays="${c.strays.length}">⚠ ${c.strays.length} stray${c.strays.length > 1 ? "s" : ""}</div>` : ""}
      ${(c.terminated || []).map(id => `<div class="bad" data-terminated="${esc(id)}">⚠ ${esc(id)} of this cluster: terminated (by hand?)</div>`).join("")}
      ${c.note ? `<div class="note warn">⚠ ${esc(c.note)}</div>` : ""}
    </div>`;
  }
  function operation(app, op) {
    const p = op.progress || {};
    const states = Object.entries(p.instances || {});
    const what = p.waiting_for || p.phase || "starting";
    const counts = {};
    for (const [, s] of states) counts[s] = (counts[s] || 0) + 1;
    return `<div class="op${op.alive ? "" : " dead"}" data-operation="${esc(op.release_id)}" data-phase="${esc(p.phase || "")}">
      <div>▶ <a href="${url("/op/" + encodeURIComponent(app) + "/" + encodeURIComponent(op.release_id))}">${esc(op.action)}</a>
        ${op.commit ? `<span class="sha">${short(op.commit)}</span>` : ""}${op.cluster ? " to " + esc(op.cluster) : ""}:
        <strong>${esc(what)}</strong> · ${esc(p.phase || "")} ${p.phase_started ? since(p.phase_started) : ""} · total ${since(op.started)} · ${esc(op.actor)}</div>
      ${op.alive ? "" : `<div class="bad">✖ its process is gone: run the same command again to finish it</div>`}
      <div class="muted">${Object.entries(counts).map(([s, n]) => esc(s) + " " + n).join(" · ")}</div>
      <div class="instances">${states.map(([id, s]) => `<span class="inst" data-instance="${esc(id)}" data-state="${esc(s)}" title="${esc(s)}">${esc(id.slice(-6))} ${esc(s)}</span>`).join("")}</div>
    </div>`;
  }
  // The promotion gates of an environment (`release plan`): what could enter next, and what holds it.
  function gatesCell(g) {
    if (!g || (!g.candidate && !g.gates.some(x => !x.open))) return "";
    const cand = g.candidate ? `<span class="sha">${short(g.candidate.commit)}</span>` : "none";
    const verdict = !g.candidate ? "" : g.candidate.commit === g.live ? " · live" : g.eligible ? ` <span class="ok">eligible</span>` : ` <span class="warn">held</span>`;
    return `<div class="gates" data-gates="${esc(g.env)}" title="${esc(g.gates.map(x => x.gate + ": " + x.reason).join("\n"))}">
      <div>next: ${cand}${verdict}${g.auto ? " · auto" : ""}</div>
      ${g.gates.filter(x => !x.open).map(x => `<div class="warn" data-gate="${esc(x.gate)}">⏸ ${esc(x.gate)}: ${esc(x.reason)}</div>`).join("")}
    </div>`;
  }
  function envCell(app, e, g) {
    if (!e) return `<td class="env muted">-</td>`;
    const lock = e.lock ? `<div class="lock ${e.lock.stale ? "bad" : "warn"}">LOCKED by ${esc(e.lock.holder)}${e.lock.doing ? " (" + esc(e.lock.doing) + ")" : ""} ${since(e.lock.acquired)}${e.lock.stale ? " — lease ran out" : ""}</div>` : "";
    const queue = e.queue.length ? `<div class="queue">WAITING ${e.queue.length}: ${e.queue.map(t => esc(t.holder) + " " + esc(t.doing)).join(", ")}</div>` : "";
    const last = e.last ? `<div class="muted">last: ${esc(e.last.action)} ${short(e.last.commit)} by ${esc(e.last.actor)}, ${esc(e.last.outcome)} ${ago(e.last.started)}</div>` : "";
    return `<td class="env" data-env="${esc(e.env)}">
      <div class="clusters">${e.clusters.map(cluster).join("")}</div>
      ${e.operation ? operation(app, e.operation) : ""}${lock}${queue}${gatesCell(g)}
      ${e.note ? `<div class="note warn">⚠ ${esc(e.note)}</div>` : ""}${tv ? "" : last}
    </td>`;
  }
  async function board() {
    if (!status) return;
    const apps = status.apps || [];
    const gates = {};
    for (const a of apps) {
      const doc = await get("/api/gates", { app: a.app }).catch(() => null);
      if (doc && doc.ok) gates[a.app] = doc.envs;
    }
    document.body.style.setProperty("--rows", Math.max(apps.length, 1));
    const envNames = [];
    for (const a of apps) for (const e of a.environments) if (!envNames.includes(e.env)) envNames.push(e.env);
    main.innerHTML = `<table class="board" id="board">
      <thead><tr><th class="app">app</th>${envNames.map(n => `<th>${esc(n)}</th>`).join("")}</tr></thead>
      <tbody>${apps.map(a => `<tr data-app="${esc(a.app)}"><th class="app">${esc(a.app)}</th>${envNames.map(n => envCell(a.app, a.environments.find(e => e.env === n), (gates[a.app] || []).find(g => g.env === n))).join("")}</tr>`).join("")}</tbody>
    </table>`;
  }

  async function history() {
    const apps = ((status && status.apps) || []).map(a => a.app);
    const app = params.get("app") || apps[0] || "";
    const env = params.get("env") || "", outcome = params.get("outcome") || "";
    const doc = await get("/api/history", { app, env, outcome });
    const outcomes = ["", "started", "succeeded", "failed", "rolled-back", "interrupted", "refused", "lost-lock", "superseded", "cancelled", "noop"];
    const form = `<form class="filters" method="get" action="/history">
      ${token ? `<input type="hidden" name="token" value="${esc(token)}">` : ""}
      <label>app <select name="app">${apps.map(a => `<option${a === app ? " selected" : ""}>${esc(a)}</option>`).join("")}</select></label>
      <label>env <input name="env" value="${esc(env)}" size="10"></label>
      <label>outcome <select name="outcome">${outcomes.map(o => `<option value="${o}"${o === outcome ? " selected" : ""}>${o || "any"}</option>`).join("")}</select></label>
      <button>filter</button></form>`;
    if (!doc.ok) { main.innerHTML = form + `<p class="bad">${esc(doc.error.message)}</p>`; return; }
    const rows = (doc.queued || []).map(t => `<tr><td>${esc(fmt(t.arrival))}</td><td>${esc(t.holder)}</td><td>${esc(t.action)}</td><td>${esc(t.env)}</td><td>-</td><td class="sha">${short(t.commit)}</td><td>-</td><td>queued</td></tr>`)
      .concat(doc.records.map(r => `<tr data-release="${esc(r.release_id)}" data-outcome="${esc(r.outcome)}">
        <td><a href="${url("/op/" + encodeURIComponent(app) + "/" + encodeURIComponent(r.release_id))}">${esc(fmt(r.started))}</a></td>
        <td>${esc(r.actor)}</td><td>${esc(r.change || r.action)}${r.gates_overridden ? ` <span class="warn" title="${esc(r.gates_overridden.closed.join("; "))}">gates overridden: ${esc(r.gates_overridden.reason)}</span>` : ""}</td><td>${esc(r.env)}</td><td>${esc(r.cluster || "-")}</td>
        <td class="sha">${short(r.commit)}</td><td class="sha">${short(r.from)} → ${short(r.to || r.commit)}</td>
        <td class="${r.outcome === "succeeded" ? "ok" : r.outcome === "started" ? "" : "bad"}">${esc(r.outcome)}${r.forced ? " (forced)" : ""}</td></tr>`));
    main.innerHTML = form + `<table class="list" id="history"><thead><tr><th>started</th><th>actor</th><th>action</th><th>env</th><th>cluster</th><th>commit</th><th>from → to</th><th>outcome</th></tr></thead><tbody>${rows.join("") || `<tr><td colspan="8" class="muted">no records</td></tr>`}</tbody></table>`;
  }

  async function images() {
    const apps = ((status && status.apps) || []).map(a => a.app);
    let html = "";
    for (const app of apps) {
      const doc = await get("/api/images", { app });
      html += `<h2>${esc(app)}</h2>`;
      if (!doc.ok) { html += `<p class="bad">${esc(doc.error.message)}</p>`; continue; }
      html += `<table class="list" data-images="${esc(app)}"><thead><tr><th>commit</th><th>AMI</th><th>created</th><th>bake key</th><th>running</th></tr></thead><tbody>` +
        (doc.images.map(i => `<tr data-ami="${esc(i.ami)}"><td class="sha">${short(i.commit)}</td><td>${esc(i.ami)}</td><td>${esc(i.created)}</td><td class="sha">${esc((i.bake_key || "").slice(0, 8))}</td>
          <td>${Object.entries(i.running).map(([k, n]) => esc(k) + " ×" + n).join(", ") || "-"}</td></tr>`).join("") || `<tr><td colspan="5" class="muted">no bakes yet</td></tr>`) + `</tbody></table>`;
    }
    main.innerHTML = html;
  }

  async function op(app, release) {
    const doc = await get("/api/operation/" + encodeURIComponent(app) + "/" + encodeURIComponent(release));
    if (!doc.ok) { main.innerHTML = `<p class="bad">${esc(doc.error.message)}</p>`; return; }
    const r = doc.record;
    const p = (doc.operation && doc.operation.progress) || r.progress || {};
    const kv = [["action", r.action], ["app", app], ["env", r.env], ["cluster", r.cluster], ["commit", r.commit], ["AMI", r.ami],
      ["from → to", (r.from || "-") + " → " + (r.to || "-")], ["actor", r.actor + (r.host ? " on " + r.host : "")], ["started", fmt(r.started)],
      ["finished", r.finished ? fmt(r.finished) : "-"], ["outcome", r.outcome + (r.forced ? " (forced)" : "")], ["reason", r.detail || "-"]];
    const phases = Object.entries(r.seconds || {}).map(([k, s]) => `<tr><td>${esc(k)}</td><td>${s.toFixed(1)} s</td></tr>`).join("");
    const list = (name, ids) => ids && ids.length ? `<div>${esc(name)}: ${ids.map(i => `<span class="inst">${esc(i)}</span>`).join(" ")}</div>` : "";
    main.innerHTML = `<h2>${esc(r.action)} ${esc(r.release_id)}</h2>
      <dl class="kv" id="record">${kv.filter(([, v]) => v != null).map(([k, v]) => `<dt>${esc(k)}</dt><dd data-key="${esc(k)}">${esc(v)}</dd>`).join("")}</dl>
      ${doc.operation ? operation(app, doc.operation) : ""}
      <h3>instances</h3>${list("launched", r.new_instances)}${list("retired", r.retired_instances)}
      <div class="instances">${Object.entries(p.instances || {}).map(([id, s]) => `<span class="inst" data-instance="${esc(id)}" data-state="${esc(s)}">${esc(id)} ${esc(s)}</span>`).join("")}</div>
      <h3>phases</h3><table class="list">${phases || `<tr><td class="muted">none recorded</td></tr>`}</table>`;
  }

  function render() {
    const path = location.pathname;
    let m;
    if (path === "/history") return history();
    if (path === "/images") return images();
    if ((m = path.match(/^\/op\/([^/]+)\/([^/]+)$/))) return op(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
    return board();
  }
  function onSnapshot(s) {
    status = s.status;
    fresh.textContent = s.stale ? "⚠ stale: " + s.stale : "read " + (s.read_at || "").replace("T", " ").replace("Z", " UTC");
    fresh.classList.toggle("stale", !!s.stale);
    document.body.dataset.version = s.version;
    return Promise.resolve(render()).catch(e => { main.innerHTML = `<p class="bad">${esc(e)}</p>`; });
  }
  get("/api/status").then(doc => {
    // A status that is not ok (a deleted load balancer, a short cluster) is still the board to show.
    if (doc.apps) return onSnapshot({ status: doc, read_at: doc.read_at, stale: doc.stale, version: 0 });
  }).catch(() => {}).finally(() => { initial = false; });
  const events = new EventSource(url("/api/events"));
  events.addEventListener("snapshot", ev => onSnapshot(JSON.parse(ev.data)));
  events.onerror = () => { fresh.textContent = "⚠ disconnected; retrying…"; fresh.classList.add("stale"); };
})();
