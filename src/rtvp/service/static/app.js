// rtvp inspection page: plain JavaScript, no build step, no external resources.
// Talks to /v1/model, /v1/detect, /v1/ask and /v1/ground; draws boxes (and instance masks, see masks.js) on a
// canvas; never uses innerHTML.
"use strict";

const PALETTE = ["#e6194b", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#d62728", "#8c564b",
  "#e377c2", "#bcbd22"];
const $ = (id) => document.getElementById(id);
const state = { file: null, bitmap: null, dets: [], highlight: new Set(), hover: null, model: null, key: "",
  exemplar: null, dragging: null };

function color(classId) { return PALETTE[classId % PALETTE.length]; }

function setStatus(text, kind = "info") {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + kind;
}

function headers() {
  return state.key ? { "Authorization": "Bearer " + state.key } : {};
}

async function api(path, body) {
  const res = await fetch(path, { method: body ? "POST" : "GET", body, headers: headers() });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (res.status === 401) { $("auth-card").hidden = false; }
  if (!res.ok) {
    const msg = data && data.error ? data.error.message : res.status + " " + res.statusText;
    throw new Error(msg);
  }
  return data;
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.entries(props).forEach(([k, v]) => {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  });
  children.forEach((c) => node.append(c));
  return node;
}

// ---------------------------------------------------------------- model info
async function loadModel() {
  try {
    const m = await api("/v1/model");
    state.model = m;
    $("auth-card").hidden = true;
    if (!state.file) setStatus("Ready: choose or drop an image.", "info");
    const info = $("model-info");
    info.replaceChildren(el("strong", { text: m.name }),
      el("span", { class: "muted", text: ` v${m.version} · ${m.device || "?"} · ${m.input_size || "?"} px` }));
    info.title = m.batching;
    const vocab = $("vocab");
    vocab.replaceChildren(...m.vocabulary.slice(0, 40).map((v) => {
      const chip = el("button", { type: "button", class: "chip", text: v, title: "add to prompts" });
      chip.addEventListener("click", () => addPrompt(v));
      return chip;
    }));
    if (m.conf != null) { $("conf").value = m.conf; $("conf-value").textContent = Number(m.conf).toFixed(2); }
    const mb = (m.limits.max_upload_bytes / 1048576).toFixed(0);
    $("limits").textContent = `PNG, JPEG, BMP, TIFF or WebP · up to ${mb} MB · ` +
      `${(m.limits.max_pixels / 1e6).toFixed(0)} Mpx`;
  } catch (e) {
    $("model-info").textContent = "model unavailable";
    setStatus(e.message, "error");
  }
}

function addPrompt(text) {
  const input = $("prompts");
  const parts = input.value.split(/[,，、]/).map((s) => s.trim()).filter(Boolean);
  if (!parts.includes(text)) parts.push(text);
  input.value = parts.join(", ");
}

// ---------------------------------------------------------------- image
async function useFile(file) {
  if (!file) return;
  const accepted = state.model ? state.model.limits.content_types : null;
  if (accepted && file.type && !accepted.includes(file.type)) {
    setStatus(`${file.name}: ${file.type} is not accepted (${accepted.join(", ")})`, "error");
    return;
  }
  try {
    state.bitmap = await createImageBitmap(file);
  } catch (e) {
    // the browser cannot show it (e.g. TIFF): the server may still read it; boxes are drawn on a blank frame
    state.bitmap = null;
  }
  state.file = file;
  state.exemplar = null;
  $("find-btn").disabled = true;
  $("exemplar-box").textContent = "no box drawn";
  $("file-name").textContent = file.name;
  $("placeholder").hidden = true;
  showDetections([], new Set());
  await detect();
}

// ---------------------------------------------------------------- drawing
function draw() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const img = state.bitmap;
  const w = img ? img.width : state.imageSize ? state.imageSize.width : 640;
  const h = img ? img.height : state.imageSize ? state.imageSize.height : 480;
  canvas.width = w;
  canvas.height = h;
  if (img) ctx.drawImage(img, 0, 0); else { ctx.fillStyle = "#e8ebef"; ctx.fillRect(0, 0, w, h); }
  const lw = Math.max(2, Math.round(Math.max(w, h) / 300));
  const font = Math.max(12, Math.round(Math.max(w, h) / 45));
  const focus = state.hover != null ? new Set([state.hover]) : state.highlight;
  const order = [...state.dets].sort((a, b) => focus.has(a.id) - focus.has(b.id));
  let masks = 0;
  order.forEach((d) => {
    if (!d.segmentation) return;
    if (!d.maskCanvas) d.maskCanvas = maskCanvas(d.segmentation, color(d.class_id));
    ctx.globalAlpha = focus.size === 0 || focus.has(d.id) ? 0.45 : 0.15;
    ctx.drawImage(d.maskCanvas, 0, 0);
    masks += 1;
  });
  ctx.globalAlpha = 1;
  order.forEach((d) => drawBox(ctx, d, lw, font, focus.size === 0 || focus.has(d.id), focus.has(d.id)));
  if (state.exemplar) {
    const [x1, y1, x2, y2] = state.exemplar;
    ctx.setLineDash([lw * 3, lw * 2]);
    ctx.lineWidth = lw;
    ctx.strokeStyle = "#111111";
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    ctx.setLineDash([]);
  }
  canvas.dataset.boxes = String(state.dets.length);
  canvas.dataset.masks = String(masks);
  canvas.dataset.exemplar = state.exemplar ? state.exemplar.join(",") : "";
  canvas.dataset.highlighted = [...focus].sort((a, b) => a - b).join(",");
}

function drawBox(ctx, d, lw, font, active, strong) {
  const [x1, y1, x2, y2] = d.box;
  const c = color(d.class_id);
  ctx.globalAlpha = active ? 1 : 0.35;
  ctx.lineWidth = strong ? lw * 2 : lw;
  ctx.strokeStyle = c;
  ctx.strokeRect(x1, y1, Math.max(1, x2 - x1), Math.max(1, y2 - y1));
  const text = `#${d.id} ${d.label} ${d.confidence.toFixed(2)}`;
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  const tw = ctx.measureText(text).width + font * 0.6;
  const th = font * 1.35;
  const tx = Math.min(Math.max(0, x1 - lw / 2), ctx.canvas.width - tw);
  const ty = y1 - th >= 0 ? y1 - th : Math.min(y2, ctx.canvas.height - th);
  ctx.fillStyle = c;
  ctx.fillRect(tx, ty, tw, th);
  ctx.fillStyle = "#ffffff";
  ctx.textBaseline = "middle";
  ctx.fillText(text, tx + font * 0.3, ty + th / 2);
  ctx.globalAlpha = 1;
}

// ---------------------------------------------------------------- results
function showDetections(dets, highlight, prompts = []) {
  state.dets = dets;
  state.highlight = highlight;
  state.hover = null;
  const rows = dets.map((d) => {
    const [x1, y1, x2, y2] = d.box;
    const bar = el("span", { class: "bar" }, [el("span", { class: "fill" })]);
    bar.firstChild.style.width = `${Math.round(d.confidence * 100)}%`;
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = color(d.class_id);
    const tr = el("tr", { "data-id": String(d.id) }, [
      el("td", { text: String(d.id) }),
      el("td", {}, [swatch, document.createTextNode(d.label)]),
      el("td", { text: d.canonical || "—" }),
      el("td", { class: "num" }, [bar, document.createTextNode(d.confidence.toFixed(3))]),
      el("td", { class: "num mono", text: [x1, y1, x2, y2].map((v) => v.toFixed(0)).join(", ") }),
      el("td", { class: "num mono", text: `${(x2 - x1).toFixed(0)} × ${(y2 - y1).toFixed(0)}` }),
      el("td", { class: "num mono mask", text: maskText(d) }),
    ]);
    if (highlight.has(d.id)) tr.classList.add("cited");
    tr.addEventListener("mouseenter", () => { state.hover = d.id; draw(); });
    tr.addEventListener("mouseleave", () => { state.hover = null; draw(); });
    return tr;
  });
  $("detections").tBodies[0].replaceChildren(...rows);
  $("empty-note").hidden = !(state.file && dets.length === 0);
  $("mapping").replaceChildren(...prompts.map((p) => el("span", {
    class: "chip static" + (p.canonical ? "" : " free"),
    text: p.canonical && p.canonical !== p.prompt ? `${p.prompt} → ${p.canonical}` : p.prompt,
    title: p.canonical ? `encoded as "${p.text}"` : "free text (not in the vocabulary)",
  })));
  draw();
}

function formData(extra) {
  const fd = new FormData();
  fd.append("image", state.file, state.file.name);
  Object.entries(extra).forEach(([k, v]) => { if (v !== "" && v != null) fd.append(k, v); });
  return fd;
}

async function run(label, fn) {
  if (!state.file) { setStatus("Choose an image first.", "error"); return; }
  document.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  setStatus(label + "…", "busy");
  try { await fn(); } catch (e) { setStatus(e.message, "error"); }
  document.querySelectorAll("button").forEach((b) => { b.disabled = false; });
  $("find-btn").disabled = !state.exemplar;
}

function detect() {
  return run("Detecting", async () => {
    const r = await api("/v1/detect", formData({ prompts: $("prompts").value, conf: $("conf").value,
      px_size: $("px-size").value }));
    state.imageSize = r.image;
    $("answer").hidden = true;
    showDetections(r.detections, new Set(), r.prompts);
    const n = r.detections.length;
    setStatus(`${n} detection${n === 1 ? "" : "s"} · ${r.image.width}×${r.image.height} px · ` +
      `${r.timing.inference_ms.toFixed(0)} ms inference`, "ok");
  });
}

// ---------------------------------------------------------------- exemplar: "find more like this"
function imagePoint(e) {
  const canvas = $("canvas");
  const r = canvas.getBoundingClientRect();
  const k = Math.min(r.width / canvas.width, r.height / canvas.height);  // object-fit: contain
  const x = (e.clientX - r.left - (r.width - canvas.width * k) / 2) / k;
  const y = (e.clientY - r.top - (r.height - canvas.height * k) / 2) / k;
  return [Math.min(Math.max(0, x), canvas.width), Math.min(Math.max(0, y), canvas.height)];
}

function dragBox(e) {
  if (!state.dragging) return;
  const [ax, ay] = state.dragging;
  const [bx, by] = imagePoint(e);
  state.exemplar = [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)].map(Math.round);
  draw();
}

function endDrag(e) {
  if (!state.dragging) return;
  dragBox(e);
  state.dragging = null;
  const b = state.exemplar;
  if (b && (b[2] - b[0] < 2 || b[3] - b[1] < 2)) state.exemplar = null;  // a click, not a box
  $("find-btn").disabled = !state.exemplar;
  $("exemplar-box").textContent = state.exemplar ? `box ${state.exemplar.join(", ")} px` : "no box drawn";
  draw();
}

function findMore() {
  if (!state.exemplar) { setStatus("Drag a box around a defect on the image first.", "error"); return Promise.resolve(); }
  const name = $("exemplar-name").value.trim();
  const exemplars = JSON.stringify([name ? { box: state.exemplar, name } : { box: state.exemplar }]);
  return run("Finding more like this", async () => {
    const r = await api("/v1/detect", formData({ exemplars, conf: $("conf").value, px_size: $("px-size").value }));
    state.imageSize = r.image;
    $("answer").hidden = true;
    showDetections(r.detections, new Set(), r.prompts);
    const n = r.detections.length;
    setStatus(`${n} detection${n === 1 ? "" : "s"} like the example box · ` +
      `${r.timing.inference_ms.toFixed(0)} ms inference`, "ok");
  });
}

function renderAnswer(question, text, cited) {
  const box = $("answer");
  const parts = [];
  let last = 0;
  for (const m of text.matchAll(/\[\s*#[\d\s,#;/]+\]/g)) {
    parts.push(document.createTextNode(text.slice(last, m.index)));
    for (const id of m[0].match(/\d+/g)) {
      const chip = el("button", { type: "button", class: "cite", text: "#" + id, title: "highlight box #" + id });
      chip.addEventListener("click", () => { state.hover = Number(id); draw(); });
      parts.push(chip);
    }
    last = m.index + m[0].length;
  }
  parts.push(document.createTextNode(text.slice(last)));
  const cites = el("p", { class: "hint", text: cited.length ? `Cites boxes ${cited.map((i) => "#" + i).join(", ")}` :
    "Cites no box." });
  box.replaceChildren(el("p", { class: "question", text: "Q: " + question }), el("p", {}, parts), cites);
  box.hidden = false;
}

function ask() {
  const question = $("question").value.trim();
  if (!question) { setStatus("Type a question first.", "error"); return Promise.resolve(); }
  return run("Answering", async () => {
    const r = await api("/v1/ask", formData({ question, prompts: $("prompts").value, px_size: $("px-size").value }));
    state.imageSize = r.image;
    showDetections(r.detections, new Set(r.box_ids), r.prompts);
    renderAnswer(question, r.answer, r.box_ids);
    const n = r.detections.length;
    setStatus(`Answered by the ${r.answerer} answerer from ${n} detection${n === 1 ? "" : "s"}`, "ok");
  });
}

function ground() {
  const query = $("query").value.trim();
  if (!query) { setStatus("Describe the defect to find first.", "error"); return Promise.resolve(); }
  return run("Finding", async () => {
    const r = await api("/v1/ground", formData({ query, top_k: 3 }));
    state.imageSize = r.image;
    const dets = r.boxes.map((b) => ({ id: b.rank, box: b.box, label: b.label, canonical: r.defect,
      class_id: b.rank - 1, confidence: b.score }));
    $("answer").hidden = true;
    showDetections(dets, new Set(dets.length ? [1] : []));
    const how = r.constraints ? ` (${r.constraints})` : "";
    setStatus(dets.length ? `Best match for "${r.query}"${how}: #1, score ${r.boxes[0].score.toFixed(2)}` :
      `Nothing found for "${r.query}"`, dets.length ? "ok" : "info");
  });
}

// ---------------------------------------------------------------- wiring
function init() {
  state.key = sessionStorage.getItem("rtvp-key") || "";
  const drop = $("drop-zone");
  $("file-input").addEventListener("change", (e) => useFile(e.target.files[0]));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => { e.preventDefault(); useFile(e.dataTransfer.files[0]); });
  $("conf").addEventListener("input", (e) => { $("conf-value").textContent = Number(e.target.value).toFixed(2); });
  $("detect-form").addEventListener("submit", (e) => { e.preventDefault(); detect(); });
  $("ask-form").addEventListener("submit", (e) => { e.preventDefault(); ask(); });
  $("ground-form").addEventListener("submit", (e) => { e.preventDefault(); ground(); });
  $("exemplar-form").addEventListener("submit", (e) => { e.preventDefault(); findMore(); });
  const canvas = $("canvas");
  canvas.addEventListener("mousedown", (e) => {
    if (!state.file) return;
    e.preventDefault();
    state.dragging = imagePoint(e);
    state.exemplar = null;
  });
  canvas.addEventListener("mousemove", dragBox);
  window.addEventListener("mouseup", endDrag);
  $("auth-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("api-key").value.trim();
    sessionStorage.setItem("rtvp-key", state.key);
    loadModel();
  });
  loadModel();
}

document.addEventListener("DOMContentLoaded", init);
