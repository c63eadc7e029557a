// camstream station: one WebSocket, one tile per camera, newest frame only; the focus view
// shows one camera large, live or replayed from Kafka (its timeline, a detection's clip).
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
const focusStage = document.getElementById("focus-stage");
const focusBadge = document.getElementById("focus-badge");
const focusNotice = document.getElementById("focus-notice");
const timelineBar = document.getElementById("timeline");
const timelineMarks = document.getElementById("timeline-marks");
const timelineCursor = document.getElementById("timeline-cursor");
const timelineStart = document.getElementById("timeline-start");
const timelineEnd = document.getElementById("timeline-end");
const timelineNote = document.getElementById("timeline-note");
const replayAgainButton = document.getElementById("replay-again");
const detectionButton = document.getElementById("detection-frame");
const downloadLink = document.getElementById("download-clip");
const pauseButton = document.getElementById("pause");
const speedButtons = [...document.querySelectorAll("#replay-controls .speed")];

// The server sends a camera's stats when they change, and names the cameras it forgot:
// both maps shrink with it. Tiles are made when first shown.
const cameras = new Map(); // camera_id -> its latest stats
const tiles = new Map(); // camera_id -> {el, img, fields, url}
let cameraIds = [];
let page = 0;
let focused = null;
let socket = null;

// The focus view's replay. Each request has an id of its own, echoed in everything the
// station sends for it: what an earlier request still had on its way is dropped.
const GAP_NOTICE_MS = 1000; // a gap is shown for about a second, not waited out
const NOTICE_MS = 4000;
const LIVE_WITHIN_MS = 2000; // a moment this close to now is live
const TIMELINE_REFRESH_MS = 30000;
const view = {
  id: 0,
  mode: "live", // "live", "replay" (frames coming) or "ended" (a clip played to its end)
  speed: 1,
  paused: false,
  clip: null, // the detection event whose clip is shown
  url: null, // the replayed image's blob URL
  timeline: null, // {start, end} in ms, and the camera it is of
  noticeTimer: null,
  dimTimer: null,
};

function pad(n, width = 2) { return String(n).padStart(width, "0"); }

// A capture time (ns since the epoch) as local time with milliseconds, with its date unless
// it is today's.
function formatTime(ns) {
  const d = new Date(Number(ns) / 1e6);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

function formatClock(ns) { return formatTime(ns).slice(-12, -4); } // HH:MM:SS

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
    el, img: el.querySelector("img"), url: null, meta: null,
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
  tile.meta = meta;
  // The delay a watcher sees: from capture to this page showing the frame (decoded), not to
  // the station sending it. Same machine clock as the camera's on one box; across machines,
  // as good as their clocks' sync.
  const captureMs = Number(meta.capture_ts_ns) / 1e6;
  tile.img.onload = () => shown(tile, Date.now() - captureMs);
  tile.delay.textContent = `${Math.round(meta.delay_ms)} ms`;
  // A frame passed on without detection (stale, or load shed) says nothing about faces: the
  // tile keeps its outline from the last analysed frame. (The reason's text is not shown.)
  tile.faces.textContent = meta.skipped ? "skipped" : `faces ${meta.faces}`;
  if (!meta.skipped) tile.el.classList.toggle("alert", meta.faces > 0);
  if (focused === meta.camera_id && view.mode === "live") {
    showInFocus(url, meta, "live");
    focusCaption.textContent = `${meta.camera_id} · ${formatTime(meta.capture_ts_ns)} · seq ${meta.seq} · ${Math.round(meta.delay_ms)} ms · faces ${meta.faces}`;
  }
}

// Each tile's delays as shown, over its last SHOWN_WINDOW frames (the station's window for
// its own figures), in data-shown-delays-ms: what the benchmark reads off the page.
const SHOWN_WINDOW = 256;
function shown(tile, delayMs) {
  tile.shownDelays = (tile.shownDelays || []).concat(Math.round(delayMs)).slice(-SHOWN_WINDOW);
  tile.el.dataset.shownDelaysMs = tile.shownDelays.join(",");
  tile.delay.textContent = `${Math.round(delayMs)} ms`;
}

function showInFocus(url, meta, mode) {
  focusImg.src = url;
  // What is shown, for whoever looks (and the tests): as tiles carry data-seq.
  focusImg.dataset.seq = meta.seq;
  focusImg.dataset.captureNs = meta.capture_ts_ns;
  focusImg.dataset.mode = mode;
}

function showReplayFrame(meta, jpeg) {
  if (meta.replay_id !== view.id || meta.camera_id !== focused || view.mode !== "replay") return;
  const url = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
  showInFocus(url, meta, "replay");
  if (view.url) URL.revokeObjectURL(view.url);
  view.url = url;
  const detection = view.clip && view.clip.seq === meta.seq;
  focusStage.classList.toggle("detection", Boolean(detection));
  focusCaption.textContent = `${meta.camera_id} · ${formatTime(meta.capture_ts_ns)} · seq ${meta.seq} · faces ${meta.faces}` +
    (detection ? " · the detection" : "");
  placeCursor(meta.capture_ts_ns);
}

function showStatus(status) {
  let changed = false; // which cameras there are
  for (const id of status.removed || []) {
    changed = cameras.delete(id) || changed;
    dropTile(id);
    if (focused === id && view.mode === "live") closeFocus(); // a replay of it plays on
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
  li.dataset.camera = ev.camera_id;
  li.dataset.seq = ev.seq;
  li.title = "play its clip";
  li.addEventListener("click", () => openClip(ev));
  eventsList.prepend(li);
  while (eventsList.children.length > 50) eventsList.lastChild.remove();
}

function openFocus(id) {
  const other = focused !== id;
  if (focused) goLive();
  focused = id;
  focusBox.hidden = false;
  showClip(null);
  showLatest();
  focusCaption.textContent = id;
  if (other || !view.timeline) loadTimeline(id);
  subscribe();
}

function closeFocus() {
  goLive();
  clearNotice();
  focused = null;
  focusBox.hidden = true;
  view.timeline = null;
  subscribe();
}

// --- replay ---

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

// `atNs`, `untilNs`: numbers, or strings of digits (exact: a page's numbers are not, at ns).
function startReplay(atNs, { speed = view.speed, untilNs = null } = {}) {
  if (!focused) return;
  view.id += 1;
  view.mode = "replay";
  view.paused = speed === 0;
  if (speed > 0) view.speed = speed;
  const request = { camera_id: focused, at_ns: atNs, speed: view.paused ? 0 : view.speed, id: view.id };
  if (untilNs !== null) request.until_ns = untilNs;
  send({ replay: request });
  replayAgainButton.hidden = true;
  clearNotice(); // of the replay before
  showMode();
}

// Back to the live frames; `tell`: the station still replays (not when it said it ended).
function goLive(tell = true) {
  if (view.mode === "replay" && tell) send({ live: true });
  view.id += 1;
  view.mode = "live";
  if (view.url) URL.revokeObjectURL(view.url);
  view.url = null;
  focusStage.classList.remove("detection", "dimmed");
  timelineCursor.hidden = true;
  replayAgainButton.hidden = true;
  showLatest();
  showMode();
}

// The focused camera's latest live frame, as its tile shows it.
function showLatest() {
  const tile = focused && tiles.get(focused);
  if (tile && tile.url) showInFocus(tile.url, tile.meta, "live");
  else focusImg.dataset.mode = "live";
}

function showMode() {
  const live = view.mode === "live";
  focusBadge.textContent = live ? "LIVE" : view.mode === "ended" ? "END OF CLIP" :
    view.paused ? "REPLAY · paused" : `REPLAY · ${view.speed}x`;
  focusBadge.className = live ? "live" : "replay";
  for (const button of speedButtons) {
    button.classList.toggle("on", !live && !view.paused && Number(button.dataset.speed) === view.speed);
  }
  pauseButton.classList.toggle("on", !live && view.paused);
}

function notice(text, ms = NOTICE_MS) {
  clearTimeout(view.noticeTimer);
  focusNotice.textContent = text;
  focusNotice.hidden = false;
  view.noticeTimer = setTimeout(() => { focusNotice.hidden = true; }, ms);
}

function clearNotice() {
  clearTimeout(view.noticeTimer);
  focusNotice.hidden = true;
}

function showReplayState(message) {
  if (message.replay_id !== view.id && message.replay_id !== null) return;
  switch (message.state) {
    case "started":
      if (message.before_retention) notice(`oldest available: ${formatTime(message.oldest_ns)}`);
      break;
    case "gap": {
      // The image stays, dimmed, with what is missing; the station sends the next frame
      // about a second later, however long the gap was.
      notice(`no frames for ${Math.round(message.gap_s)} s (${formatClock(message.from_ns)} - ${formatClock(message.to_ns)})`, GAP_NOTICE_MS);
      focusStage.classList.add("dimmed");
      clearTimeout(view.dimTimer);
      view.dimTimer = setTimeout(() => focusStage.classList.remove("dimmed"), GAP_NOTICE_MS);
      break;
    }
    case "live":
      notice(`caught up: live (${message.reason})`);
      goLive(false);
      break;
    case "ended":
      view.mode = "ended";
      replayAgainButton.hidden = !view.clip;
      notice(message.frames ? "end of the clip" : "no frames in this span");
      showMode();
      break;
    case "error":
      notice(message.error, 8000);
      // A replay that failed has ended; one that was refused never began (the station may
      // still play the one before it: stop that too).
      if (message.replay_id === view.id) goLive(message.reason === "bad_request");
      break;
  }
}

// A detection's clip: its span from the station (the rule is the station's), replayed at 1x
// from its start to its end, with its download link and a way to its own frame.
function openClip(ev) {
  openFocus(ev.camera_id);
  showClip(ev);
  playClip();
}

function showClip(ev) {
  view.clip = ev;
  detectionButton.hidden = !ev;
  downloadLink.hidden = !ev;
  replayAgainButton.hidden = true;
  if (ev) downloadLink.href = ev.clip.download;
  else downloadLink.removeAttribute("href");
}

function clipSpan() { // exact, from the link the station made
  const query = new URL(view.clip.clip.download, location.href).searchParams;
  return [query.get("from_ns"), query.get("to_ns")];
}

function playClip() {
  const [fromNs, toNs] = clipSpan();
  startReplay(fromNs, { speed: 1, untilNs: toNs });
}

// --- the timeline: how far back the camera's frames go, and its detections ---

async function loadTimeline(id) {
  timelineMarks.replaceChildren();
  timelineNote.textContent = "reading the recording...";
  timelineStart.textContent = timelineEnd.textContent = "";
  let body;
  try {
    const response = await fetch(`/api/timeline/${encodeURIComponent(id)}`);
    body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
  } catch (error) {
    if (focused === id) timelineNote.textContent = `no timeline: ${error.message}`;
    return;
  }
  if (focused !== id) return;
  if (body.oldest_ns === null) {
    view.timeline = null;
    timelineNote.textContent = "nothing recorded";
    return;
  }
  // In ms: the page's numbers are exact to well under that.
  view.timeline = { camera: id, start: body.oldest_ns / 1e6, end: body.now_ns / 1e6, loaded: Date.now(), body };
  drawTimeline();
}

function drawTimeline() {
  const line = view.timeline;
  if (!line) return;
  line.end = line.body.now_ns / 1e6 + (Date.now() - line.loaded); // the right end is now
  timelineBar.dataset.startMs = line.start;
  timelineBar.dataset.endMs = line.end;
  timelineStart.textContent = formatTime(line.start * 1e6);
  timelineEnd.textContent = "now";
  const marks = line.body.detections.map((d) => {
    const mark = document.createElement("div");
    mark.className = "mark";
    mark.style.left = `${Math.max(0, fraction(d.capture_ns / 1e6)) * 100}%`;
    mark.title = `${formatTime(d.capture_ns)}: ${d.faces} face${d.faces === 1 ? "" : "s"}`;
    return mark;
  });
  timelineMarks.replaceChildren(...marks);
  const count = line.body.detections.length;
  timelineNote.textContent = `${count}${line.body.truncated ? "+" : ""} detection${count === 1 ? "" : "s"}` +
    (line.body.truncated ? " (the first shown)" : "");
}

function fraction(ms) {
  const line = view.timeline;
  return (ms - line.start) / Math.max(1, line.end - line.start);
}

function placeCursor(captureNs) {
  if (!view.timeline) return;
  timelineCursor.style.left = `${Math.min(1, Math.max(0, fraction(Number(captureNs) / 1e6))) * 100}%`;
  timelineCursor.hidden = false;
}

timelineBar.addEventListener("click", (event) => {
  const line = view.timeline;
  if (!line || !focused) return;
  drawTimeline();
  const box = timelineBar.getBoundingClientRect();
  const at = line.start + ((event.clientX - box.left) / box.width) * (line.end - line.start);
  showClip(null);
  if (at > Date.now() - LIVE_WITHIN_MS) {
    goLive();
    return;
  }
  startReplay(Math.round(at * 1e6), { speed: view.paused ? 1 : view.speed });
});

setInterval(() => {
  if (focused && view.timeline && Date.now() - view.timeline.loaded > TIMELINE_REFRESH_MS) loadTimeline(focused);
  else drawTimeline();
}, 5000);

document.getElementById("go-live").addEventListener("click", () => { showClip(null); clearNotice(); goLive(); });
for (const button of speedButtons) {
  button.addEventListener("click", () => {
    view.speed = Number(button.dataset.speed);
    view.paused = false;
    if (view.mode === "replay") send({ replay_speed: view.speed });
    showMode();
  });
}
pauseButton.addEventListener("click", () => {
  if (view.mode !== "replay") return;
  view.paused = !view.paused;
  send({ replay_speed: view.paused ? 0 : view.speed });
  showMode();
});
document.getElementById("step").addEventListener("click", () => {
  if (view.mode !== "replay") return;
  view.paused = true;
  send({ replay_step: 1 });
  showMode();
});
replayAgainButton.addEventListener("click", () => { if (view.clip) playClip(); });
detectionButton.addEventListener("click", () => {
  if (!view.clip) return;
  // Paused on the detection's own frame (1 ms before its capture time: the page's number
  // for it is not exact at ns), to the clip's end step by step.
  startReplay(view.clip.capture_ts_ns - 1e6, { speed: 0, untilNs: clipSpan()[1] });
});
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
      const message = JSON.parse(msg.data);
      if (message.type === "replay") showReplayState(message);
      else showStatus(message);
      return;
    }
    const length = new DataView(msg.data).getUint32(0);
    const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(msg.data, 4, length)));
    const jpeg = new Uint8Array(msg.data, 4 + length);
    if (meta.replay) showReplayFrame(meta, jpeg);
    else showFrame(meta, jpeg);
  });
  socket.addEventListener("close", (event) => {
    // 1013: the station serves as many browsers as it may; it says so in the reason.
    const why = event.code === 1013 && event.reason ? event.reason : "disconnected";
    summary.textContent = `${why}; reconnecting...`;
    showShedding(null);
    goLive(false); // the station ended the replay with the connection
    // The next connection's server knows nothing of what this page holds: it starts afresh.
    for (const id of [...tiles.keys()]) dropTile(id);
    cameras.clear();
    cameraIds = [];
    layout();
    setTimeout(connect, 1000);
  });
}

connect();
