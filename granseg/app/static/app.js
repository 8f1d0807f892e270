// granseg serve: front-end (plain JS + canvas, no build step, nothing downloaded).
// Coordinates sent to the server are (x, y) in pixels of the original image.
"use strict";

const $ = (id) => document.getElementById(id);
const PALETTE = ["#e6194b", "#3cb44b", "#ffe119", "#f58230", "#911eb4", "#46f0f0", "#f032e6", "#d2f53c",
  "#fabed4", "#008080"];

const S = {
  info: null, imageId: null, meta: null, tab: "click",
  points: [], labels: [], box: null, g: 1.0, mode: 1,
  history: [], future: [], editing: null, objects: [], hideObjects: false,
  seq: 0, shownSeq: 0, inflight: false, queued: null,
  image: null, maskImg: null, overlayImg: null, autoImg: null, thumbs: [],
  folder: [], folderIndex: -1, job: null, drag: null, openedAt: 0, firstMaskMs: null, sent: 0,
};
window.granseg = S;  // for tests and debugging

// ---- HTTP -------------------------------------------------------------------------------------------------
async function api(method, url, body, raw) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.body = raw ? body : JSON.stringify(body);
    options.headers["Content-Type"] = raw ? "application/octet-stream" : "application/json";
  }
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, options);
    if (response.status === 503 && attempt < 3) { await sleep(300 * (attempt + 1)); continue; }
    const isJson = (response.headers.get("content-type") || "").includes("json");
    const data = isJson ? await response.json() : await response.blob();
    if (!response.ok) throw new Error((data && data.detail) || `HTTP ${response.status}`);
    return data;
  }
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function status(text, isError) {
  const footer = $("status");
  footer.textContent = text;
  footer.classList.toggle("error", !!isError);
}
function busy(text) {
  $("busy").hidden = !text;
  $("busy-text").textContent = text || "";
  document.body.dataset.busy = text ? "1" : "0";
}
function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("could not load a picture"));
    img.src = src;
  });
}

// ---- opening images -------------------------------------------------------------------------------------------
async function openMeta(meta) {
  S.imageId = meta.id; S.meta = meta; S.openedAt = performance.now(); S.firstMaskMs = null;
  resetPrompts(); S.editing = null; S.autoImg = null; S.overlayImg = null;
  S.image = await loadImage(`/api/images/${meta.id}/display.jpg`);
  const canvas = $("canvas");
  canvas.width = meta.width; canvas.height = meta.height;
  $("drop-hint").hidden = true;
  fitCanvas();
  for (const [id, fmt] of [["export-coco", "coco"], ["export-png", "png"], ["export-polygons", "polygons"]]) {
    $(id).href = `/api/images/${meta.id}/export?format=${fmt}`;
  }
  draw();
  busy("Embedding the image (once; then cached)…");
  try {
    const out = await api("POST", `/api/images/${meta.id}/embed`);
    S.readyAt = performance.now();
    status(`${meta.name} (${meta.width}×${meta.height}) ready` +
      (out.cached ? " (cached embedding)" : ` (embedded in ${out.embed_ms} ms)`) + ": click on an object.");
  } catch (err) { status(err.message, true); }
  finally { busy(null); }
  await refreshObjects();
  document.body.dataset.imageId = meta.id;
}

async function uploadFile(file) {
  if (!file) return;
  if (S.info && file.size > S.info.max_upload_bytes) {
    status(`${file.name} is larger than the upload limit (${(S.info.max_upload_bytes / 1e6).toFixed(1)} MB)`, true);
    return;
  }
  busy("Uploading…");
  S.uploadStartedAt = performance.now();
  try {
    const meta = await api("POST", `/api/upload?name=${encodeURIComponent(file.name)}`, file, true);
    busy(null);
    await openMeta(meta);
    refreshRecent();
  } catch (err) { busy(null); status(err.message, true); }
}

async function openFolderIndex(index) {
  if (!S.folder.length) return;
  S.folderIndex = (index + S.folder.length) % S.folder.length;
  $("folder-select").value = String(S.folderIndex);
  try {
    await openMeta(await api("POST", "/api/folder/open", { path: S.folder[S.folderIndex] }));
  } catch (err) { status(err.message, true); }
}

async function refreshRecent() {
  const select = $("recent-select");
  const recent = await api("GET", "/api/recent");
  select.innerHTML = '<option value="">Recent…</option>';
  for (const meta of recent) {
    const option = document.createElement("option");
    option.value = meta.id; option.textContent = `${meta.name} (${meta.objects} objects)`;
    select.appendChild(option);
  }
}

// ---- prompts, undo/redo -------------------------------------------------------------------------------------------
function snapshot() { return { points: S.points.map((p) => p.slice()), labels: S.labels.slice(), box: S.box && S.box.slice() }; }
function restore(snap) { S.points = snap.points; S.labels = snap.labels; S.box = snap.box; }
function pushHistory() { S.history.push(snapshot()); S.future = []; }
function resetPrompts() { S.points = []; S.labels = []; S.box = null; S.history = []; S.future = []; clearMask(); }
function clearMask() {
  S.maskImg = null; S.thumbs = []; S.seq++; S.shownSeq = S.seq; S.queued = null;
  document.body.dataset.maskArea = ""; renderThumbs(); draw();
}
function hasPrompt() { return S.labels.includes(1) || S.box !== null; }

function addPoint(x, y, label) {
  if (!S.imageId || S.tab !== "click") return;
  pushHistory(); S.points.push([x, y]); S.labels.push(label);
  requestMask(true);
}
function setBox(box) { pushHistory(); S.box = box; requestMask(true); }
function undo() { if (!S.history.length) return; S.future.push(snapshot()); restore(S.history.pop()); afterEdit(); }
function redo() { if (!S.future.length) return; S.history.push(snapshot()); restore(S.future.pop()); afterEdit(); }
function clearPrompts() { if (!S.points.length && !S.box) return; pushHistory(); S.points = []; S.labels = []; S.box = null; afterEdit(); }
function afterEdit() { if (hasPrompt()) requestMask(true); else { clearMask(); } draw(); }

function setG(value, fromSlider) {
  S.g = Math.min(1, Math.max(0.1, Math.round(value * 100) / 100));
  if (!fromSlider) $("g-slider").value = String(S.g);
  $("g-value").textContent = S.g.toFixed(2);
  renderThumbs();
  if (hasPrompt()) requestMask(false);
}

// ---- mask requests: one in flight, the latest queued, stale answers dropped ---------------------------------
function requestMask(withThumbs) {
  if (!S.imageId || !hasPrompt()) return;
  const seq = ++S.seq;
  const body = { points: S.points, labels: S.labels, box: S.box, granularity: S.g, thumbnails: withThumbs,
    seq, sentAt: performance.now() };
  if (S.queued && S.queued.thumbnails) body.thumbnails = true;
  if (S.inflight) { S.queued = body; return; }
  sendMask(body);
}

async function sendMask(body) {
  S.inflight = true; S.sent++;
  const imageId = S.imageId;
  try {
    const t0 = performance.now();
    const out = await api("POST", `/api/images/${imageId}/predict`, body);
    const t1 = performance.now();
    if (imageId === S.imageId && body.seq > S.shownSeq) {
      S.shownSeq = body.seq;
      S.maskImg = await loadImage(out.mask);
      S.lastTimings = { queued: t0 - body.sentAt, fetch: t1 - t0, decode: performance.now() - t1, server: out.compute_ms };
      if (out.thumbnails) S.thumbs = out.thumbnails;
      draw(); renderThumbs();
      const ms = performance.now() - body.sentAt;  // event -> request -> answer -> mask decoded and drawn
      if (S.firstMaskMs === null) {
        S.firstMaskMs = performance.now() - S.openedAt;
        if (S.uploadStartedAt) S.uploadToFirstMaskMs = performance.now() - S.uploadStartedAt;
        S.uploadStartedAt = null;
      }
      const body_ = document.body.dataset;
      body_.maskArea = String(out.area); body_.maskG = String(out.granularity); body_.maskSeq = String(body.seq);
      body_.lastRoundTripMs = ms.toFixed(1);
      status(`g = ${Number(out.granularity).toFixed(2)}: ${out.area} pixels, score ${out.score} ` +
        `(${ms.toFixed(0)} ms round trip, ${out.compute_ms} ms on the server)`);
    }
  } catch (err) {
    status(err.message, true);
  } finally {
    S.inflight = false;
    if (S.queued) { const next = S.queued; S.queued = null; sendMask(next); }
  }
}

function renderThumbs() {
  // Rebuild the strip only when the thumbnails changed; a g change only moves the highlight.
  const strip = $("thumbs");
  if (strip.thumbs !== S.thumbs) {
    strip.thumbs = S.thumbs;
    strip.innerHTML = "";
    for (const thumb of S.thumbs) {
      const cell = document.createElement("div");
      cell.className = "thumb";
      cell.dataset.g = String(thumb.granularity);
      cell.title = `g = ${thumb.granularity.toFixed(1)}: ${thumb.area} pixels`;
      cell.innerHTML = `<img alt="" src="${thumb.src}"><span>${thumb.granularity.toFixed(1)}</span>`;
      cell.addEventListener("click", () => setG(thumb.granularity, false));
      strip.appendChild(cell);
    }
  }
  for (const cell of strip.children) cell.classList.toggle("active", Math.abs(Number(cell.dataset.g) - S.g) < 0.005);
}

// ---- drawing --------------------------------------------------------------------------------------------------
function draw() {
  const canvas = $("canvas"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!S.image) return;
  ctx.drawImage(S.image, 0, 0, canvas.width, canvas.height);
  if (S.overlayImg && !S.hideObjects) ctx.drawImage(S.overlayImg, 0, 0);
  if (S.tab === "auto") { if (S.autoImg) ctx.drawImage(S.autoImg, 0, 0); return; }
  if (S.maskImg) ctx.drawImage(S.maskImg, 0, 0);
  const scale = Math.max(canvas.width, canvas.height) / 600;
  const box = S.drag && S.drag.box ? S.drag.box : S.box;
  if (box) {
    ctx.strokeStyle = "#ffd400"; ctx.lineWidth = 2 * scale; ctx.setLineDash([6 * scale, 4 * scale]);
    ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]); ctx.setLineDash([]);
  }
  S.points.forEach(([x, y], i) => {
    ctx.beginPath(); ctx.arc(x, y, 5 * scale, 0, 2 * Math.PI);
    ctx.fillStyle = S.labels[i] === 1 ? "#22c55e" : "#ef4444"; ctx.fill();
    ctx.lineWidth = 1.5 * scale; ctx.strokeStyle = "#fff"; ctx.stroke();
  });
}

function fitCanvas() {
  // Scale the canvas (CSS pixels) to fill the stage; its own pixels stay the image's pixels.
  const canvas = $("canvas"), stage = $("stage");
  const scale = Math.min((stage.clientWidth - 16) / canvas.width, (stage.clientHeight - 16) / canvas.height);
  canvas.style.width = `${Math.max(1, Math.floor(canvas.width * scale))}px`;
  canvas.style.height = `${Math.max(1, Math.floor(canvas.height * scale))}px`;
}

function imageXY(event) {
  const canvas = $("canvas"), rect = canvas.getBoundingClientRect();
  const x = (event.clientX - rect.left) * canvas.width / rect.width;
  const y = (event.clientY - rect.top) * canvas.height / rect.height;
  return [Math.min(canvas.width - 1, Math.max(0, Math.round(x))), Math.min(canvas.height - 1, Math.max(0, Math.round(y)))];
}

function bindCanvas() {
  const canvas = $("canvas");
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("mousedown", (e) => {
    if (!S.imageId || S.tab !== "click") return;
    S.drag = { button: e.button, start: imageXY(e), box: null };
  });
  canvas.addEventListener("mousemove", (e) => {
    if (!S.drag || S.drag.button !== 0) return;
    const [x, y] = imageXY(e), [x0, y0] = S.drag.start;
    const threshold = 6 * canvas.width / canvas.getBoundingClientRect().width;
    if (Math.abs(x - x0) > threshold && Math.abs(y - y0) > threshold) {
      S.drag.box = [Math.min(x, x0), Math.min(y, y0), Math.max(x, x0), Math.max(y, y0)]; draw();
    }
  });
  window.addEventListener("mouseup", (e) => {
    const drag = S.drag; S.drag = null;
    if (!drag) return;
    if (drag.box) { setBox(drag.box); return; }
    if (e.target !== canvas) return;
    const [x, y] = drag.start;
    addPoint(x, y, drag.button === 2 ? 0 : S.mode);
  });
  const stage = $("stage");
  stage.addEventListener("dragover", (e) => { e.preventDefault(); stage.classList.add("dragover"); });
  stage.addEventListener("dragleave", () => stage.classList.remove("dragover"));
  stage.addEventListener("drop", (e) => {
    e.preventDefault(); stage.classList.remove("dragover");
    if (e.dataTransfer.files.length) uploadFile(e.dataTransfer.files[0]);
  });
}

// ---- objects ----------------------------------------------------------------------------------------------------
async function refreshObjects() {
  if (!S.imageId) return;
  S.objects = await api("GET", `/api/images/${S.imageId}/objects`);
  document.body.dataset.objects = String(S.objects.length);
  renderObjects();
  const blob = await api("GET", `/api/images/${S.imageId}/objects/overlay`);
  const url = URL.createObjectURL(blob);
  S.overlayImg = await loadImage(url);
  URL.revokeObjectURL(url);
  draw();
}

function renderObjects() {
  const list = $("objects");
  list.innerHTML = "";
  for (const obj of S.objects) {
    const li = document.createElement("li");
    li.dataset.id = obj.id;
    li.className = (obj.hidden ? "hidden-object " : "") + (S.editing === obj.id ? "editing" : "");
    li.innerHTML = `<span class="swatch" style="background:${PALETTE[(obj.id - 1) % PALETTE.length]}"></span>
      <input class="name" value="" title="Rename"><span class="g">g ${Number(obj.granularity).toFixed(2)}</span>
      <button class="small hide">${obj.hidden ? "show" : "hide"}</button>
      <button class="small edit" title="Load its clicks and g to re-edit">edit</button>
      <button class="small delete" title="Delete">✕</button>`;
    li.querySelector(".name").value = obj.name;
    li.querySelector(".name").addEventListener("change", (e) => patchObject(obj.id, { name: e.target.value }));
    li.querySelector(".hide").addEventListener("click", () => patchObject(obj.id, { hidden: !obj.hidden }));
    li.querySelector(".edit").addEventListener("click", () => editObject(obj));
    li.querySelector(".delete").addEventListener("click", () => deleteObject(obj.id));
    list.appendChild(li);
  }
  $("commit").textContent = S.editing ? "Update" : "Commit";
  $("editing").hidden = !S.editing;
  $("editing").textContent = S.editing ? `re-editing object ${S.editing} (Esc twice to stop)` : "";
}

async function commitObject() {
  if (!S.imageId || !hasPrompt()) { status("Click on an object first.", true); return; }
  const body = { points: S.points, labels: S.labels, box: S.box, granularity: S.g };
  try {
    if (S.editing) {
      await api("PATCH", `/api/images/${S.imageId}/objects/${S.editing}`, body);
      status(`object ${S.editing} updated and saved`);
    } else {
      const name = $("object-name").value.trim() || `object ${S.objects.length + 1}`;
      const obj = await api("POST", `/api/images/${S.imageId}/objects`, { ...body, name });
      status(`committed "${obj.name}" (${obj.area} pixels, g = ${obj.granularity}); saved`);
    }
    S.editing = null; $("object-name").value = ""; resetPrompts();
    await refreshObjects();
  } catch (err) { status(err.message, true); }
}

async function patchObject(id, changes) {
  try { await api("PATCH", `/api/images/${S.imageId}/objects/${id}`, changes); await refreshObjects(); }
  catch (err) { status(err.message, true); }
}
async function deleteObject(id) {
  try {
    await api("DELETE", `/api/images/${S.imageId}/objects/${id}`);
    if (S.editing === id) S.editing = null;
    await refreshObjects();
  } catch (err) { status(err.message, true); }
}
function editObject(obj) {
  S.editing = obj.id; resetPrompts();
  S.points = obj.points.map((p) => p.slice()); S.labels = obj.labels.slice(); S.box = obj.box;
  setG(obj.granularity, false); renderObjects(); requestMask(true);
}

async function importExport(file) {
  if (!file || !S.imageId) { status("Open the image first, then re-open its export.", true); return; }
  try {
    const out = await api("POST", `/api/images/${S.imageId}/import`, await file.arrayBuffer(), true);
    status(`re-opened ${out.added} objects from ${file.name}`);
    await refreshObjects();
  } catch (err) { status(err.message, true); }
}

// ---- whole image ------------------------------------------------------------------------------------------------
async function runAuto() {
  if (!S.imageId) return;
  const body = {
    granularity: Number($("auto-g").value), points_per_side: Number($("auto-pps").value), source: $("auto-source").value,
  };
  try {
    S.job = await api("POST", `/api/images/${S.imageId}/auto`, body);
    $("auto-commit").hidden = true; S.autoImg = null; draw();
    while (S.job && (S.job.state === "queued" || S.job.state === "running")) {
      $("auto-progress").max = S.job.total; $("auto-progress").value = S.job.done;
      $("auto-status").textContent = `${S.job.state}: ${S.job.done} / ${S.job.total} prompts`;
      await sleep(250);
      S.job = await api("GET", `/api/jobs/${S.job.id}`);
    }
    $("auto-progress").value = S.job.done;
    $("auto-status").textContent = S.job.state === "done"
      ? `${S.job.count} ${S.job.source === "partition" ? "regions" : "masks"} at g = ${S.job.granularity.toFixed(2)} in ${S.job.seconds} s`
      : `${S.job.state}${S.job.error ? ": " + S.job.error : ""}`;
    document.body.dataset.autoCount = String(S.job.count);
    if (S.job.overlay) { S.autoImg = await loadImage(S.job.overlay); draw(); }
    $("auto-commit").hidden = !(S.job.state === "done" && S.job.count);
    $("auto-commit").textContent = `Add ${S.job.count} as objects`;
  } catch (err) { status(err.message, true); }
}

// ---- keyboard, tabs, wiring -------------------------------------------------------------------------------------
function onKey(e) {
  if (e.target instanceof HTMLInputElement && e.target.type === "text") {
    if (e.key === "Enter" && e.target.id === "object-name") commitObject();
    return;
  }
  const key = e.key, ctrl = e.ctrlKey || e.metaKey;
  if (key === "?" || key === "h") { $("help").hidden = !$("help").hidden; }
  else if (key === "Escape") {
    if (!$("help").hidden) $("help").hidden = true;
    else if (!S.points.length && !S.box && S.editing) { S.editing = null; renderObjects(); }
    else clearPrompts();
  }
  else if ((ctrl && key.toLowerCase() === "z" && e.shiftKey) || key === "y" || (ctrl && key === "y")) redo();
  else if (key === "z" || (ctrl && key === "z")) undo();
  else if (key === "c" && !ctrl) clearPrompts();
  else if (key === "n") toggleMode();
  else if (key === "Enter") commitObject();
  else if (/^[0-9]$/.test(key)) setG(key === "0" ? 1.0 : Number(key) / 10, false);
  else if (key === "[" || key === "]") setG(S.g + (key === "]" ? 0.1 : -0.1), false);
  else if (key === "{" || key === "}") setG(S.g + (key === "}" ? 0.01 : -0.01), false);
  else if (key === "v") { S.hideObjects = !S.hideObjects; $("toggle-objects").textContent = S.hideObjects ? "show all" : "hide all"; draw(); }
  else if (key === "a") openFolderIndex(S.folderIndex - 1);
  else if (key === "d") openFolderIndex(S.folderIndex + 1);
  else if (key === "e" && S.imageId) $("export-coco").click();
  else return;
  e.preventDefault();
}
function toggleMode() {
  S.mode = S.mode ? 0 : 1;
  const button = $("mode-toggle");
  button.textContent = S.mode ? "positive" : "negative";
  button.className = "mode " + (S.mode ? "positive" : "negative");
}
function setTab(tab) {
  S.tab = tab;
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === tab);
  $("click-panel").hidden = tab !== "click"; $("auto-panel").hidden = tab !== "auto";
  draw();
}

async function init() {
  bindCanvas();
  window.addEventListener("resize", () => { if (S.image) fitCanvas(); });
  document.addEventListener("keydown", onKey);
  $("file-input").addEventListener("change", (e) => uploadFile(e.target.files[0]));
  $("import-input").addEventListener("change", (e) => { importExport(e.target.files[0]); e.target.value = ""; });
  $("g-slider").addEventListener("input", (e) => setG(Number(e.target.value), true));
  $("mode-toggle").addEventListener("click", toggleMode);
  $("undo").addEventListener("click", undo); $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", clearPrompts); $("commit").addEventListener("click", commitObject);
  $("help-button").addEventListener("click", () => { $("help").hidden = false; });
  $("help-close").addEventListener("click", () => { $("help").hidden = true; });
  $("toggle-objects").addEventListener("click", () => onKey({ key: "v", target: document.body, preventDefault() {} }));
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => setTab(b.dataset.tab));
  $("auto-g").addEventListener("input", (e) => { $("auto-g-value").textContent = Number(e.target.value).toFixed(2); });
  $("auto-run").addEventListener("click", runAuto);
  $("auto-cancel").addEventListener("click", () => S.job && api("POST", `/api/jobs/${S.job.id}/cancel`));
  $("auto-commit").addEventListener("click", async () => {
    const out = await api("POST", `/api/jobs/${S.job.id}/commit`);
    status(`added ${out.added} objects`); $("auto-commit").hidden = true; await refreshObjects();
  });
  $("recent-select").addEventListener("change", async (e) => {
    if (e.target.value) await openMeta(await api("GET", `/api/images/${e.target.value}`));
    e.target.value = "";
  });
  $("folder-select").addEventListener("change", (e) => openFolderIndex(Number(e.target.value)));
  $("prev-image").addEventListener("click", () => openFolderIndex(S.folderIndex - 1));
  $("next-image").addEventListener("click", () => openFolderIndex(S.folderIndex + 1));
  S.info = await api("GET", "/api/info");
  $("model-name").textContent = `model: ${S.info.model}`;
  $("video-tab").hidden = !S.info.video;  // no video session in this version: the tab stays hidden
  if (S.info.folder) {
    S.folder = (await api("GET", "/api/folder")).images;
    $("folder-nav").hidden = false;
    S.folder.forEach((path, i) => {
      const option = document.createElement("option"); option.value = String(i); option.textContent = path;
      $("folder-select").appendChild(option);
    });
  }
  await refreshRecent();
  document.body.dataset.ready = "1";
}
init().catch((err) => status(err.message, true));
