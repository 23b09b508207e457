// The live page: one tile per source, fed by Server-Sent Events from /events.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const withToken = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);
const tiles = new Map(); // slug -> {root, data}

function textColor(hex) {
  const n = parseInt(hex.slice(1), 16);
  const r = (n >> 16) & 255, g = (n >> 8) & 255, b = n & 255;
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 ? "#000" : "#fff";
}

function tileFor(source) {
  let tile = tiles.get(source.slug);
  if (tile) return tile;
  const root = document.getElementById("tile-template").content.firstElementChild.cloneNode(true);
  root.dataset.slug = source.slug;
  root.querySelector(".name").textContent = source.name;
  root.querySelector(".name").title = source.id;
  const img = root.querySelector(".video");
  img.src = withToken(`stream/${source.slug}.mjpg`);
  img.alt = source.name;
  document.getElementById("tiles").appendChild(root);
  tile = { root, data: source };
  tiles.set(source.slug, tile);
  return tile;
}

function drawTimeline(canvas, source) {
  const width = canvas.clientWidth || canvas.width;
  canvas.width = width;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  // Show the whole history once it is longer than a minute, up to the hub's window.
  const first = source.timeline.length ? source.timeline[0][1] : source.now;
  const span = Math.min(source.timeline_seconds, Math.max(60, source.now - first));
  const end = source.now, start = end - span;
  let drawn = 0;
  for (const [label, from, to] of source.timeline) {
    const x0 = Math.max(0, ((from - start) / span) * width);
    const x1 = Math.max(x0 + 1, ((to - start) / span) * width);
    if (x1 <= 0) continue;
    ctx.fillStyle = source.colors[label] || "#888";
    ctx.fillRect(x0, 0, x1 - x0, canvas.height);
    drawn += 1;
  }
  canvas.dataset.segments = String(drawn);
  canvas.title = `last ${Math.round(span)} s`;
}

function render(source) {
  const { root } = tileFor(source);
  tiles.get(source.slug).data = source;
  const badge = root.querySelector(".badge");
  root.querySelector(".label").textContent = source.label ?? "–";
  root.querySelector(".score").textContent =
    source.score === null ? "" : `${Math.round(source.score * 100)}%`;
  const version = root.querySelector(".version");
  version.textContent = source.model_version ? `model v${source.model_version}` : "";
  const color = source.label ? source.colors[source.label] : "#444";
  badge.style.background = color;
  badge.style.color = textColor(color);
  root.classList.toggle("down", source.down);
  const waiting = { connecting: "connecting…", offline: "offline…" }[source.state] ?? "reconnecting…";
  root.querySelector(".down-banner").textContent = waiting;
  root.querySelector(".state").textContent = source.down
    ? `${waiting} ${source.detail || ""}`.trim()
    : source.state;
  const s = source.stats;
  const latency = s.latency_ms === null ? "–" : `${Math.round(s.latency_ms)} ms`;
  root.querySelector(".stats").textContent =
    `${s.fps.toFixed(1)} fps · ${latency} · ${s.dropped} dropped · ${s.reconnects} reconnects`;
  root.classList.toggle("alerting", source.alerts.length > 0);
  root.querySelector(".alerts").textContent = source.alerts.length ? `⚠ ${source.alerts.join(", ")}` : "";
  drawTimeline(root.querySelector(".timeline"), source);
}

function connect() {
  const status = document.getElementById("connection");
  const events = new EventSource(withToken("events"));
  events.addEventListener("open", () => { status.textContent = "live"; status.classList.add("ok"); });
  events.addEventListener("error", () => { status.textContent = "connection lost, retrying…"; status.classList.remove("ok"); });
  events.addEventListener("snapshot", (e) => JSON.parse(e.data).sources.forEach(render));
  events.addEventListener("source", (e) => render(JSON.parse(e.data)));
}

connect();
