// The label page: one collected frame at a time; keys 1-9 label it, s skips, u undoes, arrows move.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const withToken = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);
const POLL_MS = 3000; // new frames, other pages' counts, and this page's lease kept

// One id per tab (kept across reloads): the server leases frames to it and undoes its decisions.
let page = sessionStorage.getItem("label-page");
if (!page) {
  page = Array.from({ length: 16 }, () => Math.floor(Math.random() * 36).toString(36)).join("");
  sessionStorage.setItem("label-page", page);
}

let frame = null; // the frame shown
let state = null; // labels and counts
let queue = Promise.resolve(); // actions run one after another, each on the frame shown then
let pending = 0;
let renders = 0;

const $ = (id) => document.getElementById(id);

function setBusy(delta) {
  pending += delta;
  document.body.classList.toggle("busy", pending > 0);
  document.body.dataset.idle = pending === 0 ? "1" : "0";
}

function enqueue(action) {
  setBusy(1);
  queue = queue.then(action).catch((error) => status(String(error))).finally(() => setBusy(-1));
  return queue;
}

function status(text) {
  $("status").textContent = text || "";
}

async function call(path, body) {
  const response = await fetch(withToken(path), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ page, ...body }),
  });
  const data = await response.json().catch(() => ({}));
  if (response.ok || (response.status === 409 && data.state)) {
    render(data);
    status(data.error || data.message || "");
    return data;
  }
  throw new Error(data.error || `${response.status} ${response.statusText}`);
}

function formatTime(seconds) {
  const m = Math.floor(seconds / 60);
  const s = (seconds - m * 60).toFixed(1).padStart(4, "0");
  return `${m}:${s}`;
}

function renderState() {
  if (!state) return;
  const tally = $("tally");
  tally.replaceChildren();
  const entries = [...Object.entries(state.counts), ...Object.entries(state.other_counts)];
  for (const [label, count] of entries) {
    const item = document.createElement("span");
    item.dataset.label = label;
    item.append(`${label} `);
    const number = document.createElement("b");
    number.textContent = String(count);
    item.append(number);
    tally.append(item);
  }
  const skipped = document.createElement("span");
  skipped.dataset.label = "";
  skipped.textContent = `skipped ${state.skipped}`;
  tally.append(skipped);
  $("left").textContent = `${state.left} left of ${state.collected}`;
  $("left").dataset.left = String(state.left);

  const list = $("labels");
  if (list.dataset.labels !== state.labels.join("\n")) {
    list.dataset.labels = state.labels.join("\n");
    list.replaceChildren();
    state.labels.forEach((label, i) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.label = label;
      if (i < state.keyed) {
        const key = document.createElement("kbd");
        key.textContent = String(i + 1);
        button.append(key);
      }
      const name = document.createElement("span");
      name.textContent = label;
      button.append(name);
      if (state.new_labels.includes(label)) {
        const mark = document.createElement("span");
        mark.className = "new";
        mark.textContent = "new";
        button.append(mark);
      }
      const count = document.createElement("span");
      count.className = "count";
      button.append(count);
      button.addEventListener("click", () => {
        button.blur(); // so Space or Enter next does not press it again on the next frame
        enqueue(() => assign(label));
      });
      item.append(button);
      list.append(item);
    });
  }
  for (const button of list.querySelectorAll("button")) {
    button.querySelector(".count").textContent = String(state.counts[button.dataset.label] ?? 0);
    button.classList.toggle("predicted", !!frame && frame.label === button.dataset.label);
  }
}

function render(view) {
  state = view.state;
  frame = view.frame;
  const box = document.querySelector(".image-box");
  box.classList.toggle("nothing", !frame);
  if (frame) {
    const image = $("image");
    if (image.dataset.id !== frame.id) {
      image.src = withToken(frame.image_url);
      image.dataset.id = frame.id;
      image.alt = `frame ${frame.frame} of ${frame.source}`;
    }
    $("predicted").textContent = frame.label;
    $("score").textContent = `${Math.round(frame.score * 100)}%`;
    $("window").textContent = frame.window_label
      ? `window ${frame.window_label} ${Math.round(frame.window_score * 100)}%`
      : "";
    const version = frame.model_version ? ` · model v${frame.model_version}` : "";
    $("where").textContent = `${frame.source} @ ${formatTime(frame.time)} (frame ${frame.frame})${version}`;
    $("where").title = frame.wall_time;
    $("reasons").textContent = frame.reasons.length ? `kept: ${frame.reasons.join(", ")}` : "";
  } else {
    $("empty").textContent = view.message || "nothing left to label";
    for (const id of ["predicted", "score", "window", "where", "reasons"]) $(id).textContent = "";
  }
  for (const id of ["skip", "prev", "next"]) $(id).disabled = !frame;
  document.body.dataset.frame = frame ? frame.id : "";
  renders += 1;
  document.body.dataset.renders = String(renders);
  renderState();
}

function assign(label) {
  if (!frame) return null;
  return call("api/decide", { id: frame.id, action: "assign", label });
}

function skip() {
  if (!frame) return null;
  return call("api/decide", { id: frame.id, action: "skip" });
}

function undo() {
  return call("api/undo", {});
}

function move(direction) {
  if (!frame) return null;
  return call("api/show", { direction, after: frame.id });
}

function show() {
  return call("api/show", { direction: "current", after: frame ? frame.id : null });
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const key = event.key;
  if (key >= "1" && key <= "9") {
    // The label is looked up when the key's turn comes: the list is the same on every frame.
    const n = Number(key) - 1;
    enqueue(() => (state && n < Math.min(state.keyed, state.labels.length) ? assign(state.labels[n]) : null));
  } else if (key === "s" || key === "S") {
    enqueue(skip);
  } else if (key === "u" || key === "U") {
    enqueue(undo);
  } else if (key === "ArrowRight") {
    enqueue(() => move("next"));
  } else if (key === "ArrowLeft") {
    enqueue(() => move("prev"));
  } else {
    return;
  }
  event.preventDefault();
});

const onClick = (id, action) =>
  $(id).addEventListener("click", () => {
    $(id).blur();
    enqueue(action);
  });
onClick("skip", skip);
onClick("undo", undo);
onClick("next", () => move("next"));
onClick("prev", () => move("prev"));

// Keeps the lease on the frame shown, brings new frames in, and other pages' counts.
setInterval(() => {
  if (pending === 0) enqueue(show);
}, POLL_MS);

enqueue(show);
