// camstream station: one WebSocket, one tile per camera, newest frame only.
"use strict";

const wall = document.getElementById("wall");
const summary = document.getElementById("summary");
const sheddingBanner = document.getElementById("shedding");
const eventsList = document.getElementById("events");
const pageSizeSelect = document.getElementById("page-size");
const pageLabel = document.getElementById("page-label");
const focusBox = document.getElementById("focus");
const focusImg = document.getElementById("focus-img");
const focusCaption = document.getElementById("focus-caption");

// The server sends a camera's stats when they change, and names the cameras it forgot:
// both maps shrink with it. Tiles are made when first shown.
const cameras = new Map(); // camera_id -> its latest stats
const tiles = new Map(); // camera_id -> {el, img, fields, url}
let cameraIds = [];
let page = 0;
let focused = null;
let socket = null;

function pageSize() { return Number(pageSizeSelect.value); }

function visibleIds() {
  const start = page * pageSize();
  return cameraIds.slice(start, start + pageSize());
}

function makeTile(id) {
  const el = document.createElement("div");
  el.className = "tile";
  el.dataset.camera = id;
  el.innerHTML = '<img alt=""><div class="caption"><span class="id"></span>' +
    '<span class="rate"><span class="fps"></span><span class="analysed"></span></span>' +
    '<span class="delay"></span><span class="faces"></span></div>';
  el.querySelector(".id").textContent = id;
  el.addEventListener("click", () => openFocus(id));
  const tile = {
    el, img: el.querySelector("img"), url: null,
    fps: el.querySelector(".fps"), analysed: el.querySelector(".analysed"), delay: el.querySelector(".delay"), faces: el.querySelector(".faces"),
  };
  tiles.set(id, tile);
  if (cameras.has(id)) showStats(tile, cameras.get(id));
  return tile;
}

function dropTile(id) {
  const tile = tiles.get(id);
  if (!tile) return;
  if (tile.url) URL.revokeObjectURL(tile.url);
  tile.el.remove();
  tiles.delete(id);
}

function layout() {
  const pages = Math.max(1, Math.ceil(cameraIds.length / pageSize()));
  page = Math.min(page, pages - 1);
  pageLabel.textContent = `page ${page + 1}/${pages}`;
  const ids = visibleIds();
  // More tiles per page -> smaller tiles, so a page fits the screen.
  document.documentElement.style.setProperty("--tile", ids.length > 48 ? "140px" : ids.length > 12 ? "200px" : "280px");
  wall.replaceChildren(...ids.map((id) => (tiles.get(id) || makeTile(id)).el));
  subscribe();
}

function subscribe() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const ids = visibleIds();
  if (focused && !ids.includes(focused)) ids.push(focused);
  const message = JSON.stringify({ subscribe: ids });
  // The station takes messages up to 64 KiB (WS_MAX_MESSAGE_BYTES in server.py): a page
  // of ids too long for that asks for every camera instead.
  const fits = new TextEncoder().encode(message).length <= 64 * 1024;
  socket.send(fits ? message : JSON.stringify({ subscribe: "*" }));
}

function showFrame(meta, jpeg) {
  // A frame of a camera the server has just forgotten makes no tile.
  const tile = tiles.get(meta.camera_id) || (cameras.has(meta.camera_id) ? makeTile(meta.camera_id) : null);
  if (!tile) return;
  const url = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
  tile.img.src = url;
  if (tile.url) URL.revokeObjectURL(tile.url);
  tile.url = url;
  tile.img.dataset.seq = meta.seq;
  tile.delay.textContent = `${Math.round(meta.delay_ms)} ms`;
  // A frame passed on without detection (stale, or load shed) says nothing about faces: the
  // tile keeps its outline from the last analysed frame. (The reason's text is not shown.)
  tile.faces.textContent = meta.skipped ? "skipped" : `faces ${meta.faces}`;
  if (!meta.skipped) tile.el.classList.toggle("alert", meta.faces > 0);
  if (focused === meta.camera_id) {
    focusImg.src = url;
    focusCaption.textContent = `${meta.camera_id} · seq ${meta.seq} · ${Math.round(meta.delay_ms)} ms · faces ${meta.faces}`;
  }
}

function showStatus(status) {
  let changed = false; // which cameras there are
  for (const id of status.removed || []) {
    changed = cameras.delete(id) || changed;
    dropTile(id);
    if (focused === id) closeFocus();
  }
  for (const cam of status.cameras) {
    changed = !cameras.has(cam.camera_id) || changed;
    cameras.set(cam.camera_id, cam);
    const tile = tiles.get(cam.camera_id);
    if (tile) showStats(tile, cam);
  }
  if (changed) {
    cameraIds = [...cameras.keys()].sort();
    layout();
  }
  let stale = 0;
  let withFaces = 0;
  for (const cam of cameras.values()) {
    if (cam.stale) stale += 1;
    else if (cam.faces > 0) withFaces += 1;
  }
  summary.textContent = `${status.camera_count} cameras, ${withFaces} with faces, ${stale} stale`;
  showShedding(status.shedding);
  for (const ev of status.events) addEvent(ev);
}

function showStats(tile, cam) {
  const fps = cam.fps.toFixed(1);
  tile.fps.textContent = `${fps} fps`;
  // The rate of frames analysed, only when it differs from the rate of frames shown.
  const analysed = (cam.analysed_fps ?? cam.fps).toFixed(1);
  const differs = Math.abs((cam.analysed_fps ?? cam.fps) - cam.fps) > 0.05 && analysed !== fps;
  tile.analysed.textContent = differs ? ` · ${analysed} analysed` : "";
  tile.el.classList.toggle("stale", cam.stale);
  let title = `delay p50 ${cam.delay_ms_p50} ms, p95 ${cam.delay_ms_p95} ms, ${cam.frames} frames`;
  if (cam.frames_skipped) {
    title += `, ${cam.frames_skipped} without detection`;
    if (cam.analysed_gap_max_s != null) title += `, longest gap ${cam.analysed_gap_max_s.toFixed(1)} s`;
  }
  tile.el.title = title;
}

function showShedding(shedding) {
  if (!shedding || !shedding.active) {
    sheddingBanner.hidden = true;
    sheddingBanner.textContent = "";
    return;
  }
  const pct = shedding.share * 100;
  const shown = pct > 0 && pct < 1 ? "<1" : String(Math.round(pct));
  sheddingBanner.textContent = `Shedding load: ${shown}% of frames shown without detection` +
    ` (${shedding.frames_skipped} of ${shedding.frames}, last ${shedding.window_s} s)`;
  sheddingBanner.hidden = false;
}

function addEvent(ev) {
  const li = document.createElement("li");
  const text = document.createElement("span");
  const carried = ev.carried ? " (still scene)" : "";
  text.textContent = `${ev.time} ${ev.camera_id}: ${ev.faces} face${ev.faces === 1 ? "" : "s"}${carried}`;
  if (ev.thumbnail) {
    const img = document.createElement("img");
    img.src = ev.thumbnail;
    img.alt = "";
    li.append(img);
  }
  li.append(text);
  li.addEventListener("click", () => openFocus(ev.camera_id));
  eventsList.prepend(li);
  while (eventsList.children.length > 50) eventsList.lastChild.remove();
}

function openFocus(id) {
  focused = id;
  focusBox.hidden = false;
  const tile = tiles.get(id);
  if (tile && tile.url) focusImg.src = tile.url;
  focusCaption.textContent = id;
  subscribe();
}

function closeFocus() {
  focused = null;
  focusBox.hidden = true;
  subscribe();
}

document.getElementById("focus-close").addEventListener("click", closeFocus);
document.getElementById("prev").addEventListener("click", () => { page = Math.max(0, page - 1); layout(); });
document.getElementById("next").addEventListener("click", () => { page += 1; layout(); });
pageSizeSelect.addEventListener("change", () => { page = 0; layout(); });

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("open", () => { summary.textContent = "connected"; subscribe(); });
  socket.addEventListener("message", (msg) => {
    if (typeof msg.data === "string") {
      showStatus(JSON.parse(msg.data));
      return;
    }
    const view = new DataView(msg.data);
    const length = view.getUint32(0);
    const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(msg.data, 4, length)));
    showFrame(meta, new Uint8Array(msg.data, 4 + length));
  });
  socket.addEventListener("close", (event) => {
    // 1013: the station serves as many browsers as it may; it says so in the reason.
    const why = event.code === 1013 && event.reason ? event.reason : "disconnected";
    summary.textContent = `${why}; reconnecting...`;
    showShedding(null);
    // The next connection's server knows nothing of what this page holds: it starts afresh.
    for (const id of [...tiles.keys()]) dropTile(id);
    cameras.clear();
    cameraIds = [];
    layout();
    setTimeout(connect, 1000);
  });
}

connect();
