// optinv studio: one page, four tabs, no dependencies. Every request goes to the server that served it.
"use strict";

const PAGE = (crypto.randomUUID ? crypto.randomUUID() : Array.from(crypto.getRandomValues(new Uint8Array(16)),
  (b) => b.toString(16).padStart(2, "0")).join("")).replace(/[^A-Za-z0-9_-]/g, "");
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const studio = (window.studio = { info: null, latents: [], timings: { firstProgress: [], frames: [], renders: [] }, activeJobs: {} });

function showError(msg) {
  const box = $("#error");
  box.textContent = msg;
  box.hidden = !msg;
}
$("#error").addEventListener("click", () => showError(""));

async function postJSON(url, body) {
  const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ page: PAGE, ...body }) });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || `${r.status} ${r.statusText}`);
  return r;
}

async function upload(file, purpose, align = false) {
  const q = new URLSearchParams({ page: PAGE, purpose, name: file.name, align: align ? "1" : "0" });
  const r = await fetch(`/api/upload?${q}`, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file });
  const out = await r.json();
  if (!r.ok) throw new Error(out.error);
  return out;
}

function bindOutputs(root = document) {
  $$("output[for]", root).forEach((o) => {
    const input = document.getElementById(o.htmlFor.value || o.getAttribute("for"));
    const show = () => { o.textContent = input.value; };
    input.addEventListener("input", show);
    show();
  });
}

// ------------------------------------------------------------------ tabs
function selectTab(name) {
  $$("nav [role=tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
  $$(".tab").forEach((t) => { t.hidden = t.id !== `tab-${name}`; });
}
$$("nav [role=tab]").forEach((b) => b.addEventListener("click", () => selectTab(b.dataset.tab)));

// ------------------------------------------------------------------ a brush on a model-resolution canvas
function brushCanvas(display, opts) {
  // opts: size(), opacity(), color(), eraser(), underlay(ctx) draws what is under the paint; onChange()
  let n, layer, stroke, scratch, lctx, sctx, xctx;
  const make = () => { const c = document.createElement("canvas"); c.width = c.height = n; return c; };
  function allocate(side) {  // the canvas and its layers at side × side (a new side clears the paint)
    n = display.width = display.height = side;
    layer = make(); stroke = make(); scratch = make();
    lctx = layer.getContext("2d"); sctx = stroke.getContext("2d"); xctx = scratch.getContext("2d");
  }
  allocate(display.width);
  const dctx = display.getContext("2d");
  const undo = [];
  let drawing = false, last = null;

  function redraw() {
    xctx.clearRect(0, 0, n, n);
    xctx.globalCompositeOperation = "source-over";
    xctx.globalAlpha = 1;
    xctx.drawImage(layer, 0, 0);
    if (drawing) {
      xctx.globalAlpha = opts.opacity();
      xctx.globalCompositeOperation = opts.eraser() ? "destination-out" : "source-over";
      xctx.drawImage(stroke, 0, 0);
    }
    dctx.clearRect(0, 0, n, n);
    if (opts.underlay) opts.underlay(dctx);
    dctx.globalAlpha = 1;
    dctx.drawImage(scratch, 0, 0);
  }
  function at(ev) {
    const r = display.getBoundingClientRect();
    return [(ev.clientX - r.left) * n / r.width, (ev.clientY - r.top) * n / r.height];
  }
  function segment(p) {
    sctx.strokeStyle = sctx.fillStyle = opts.eraser() ? "#000" : opts.color();
    sctx.lineWidth = opts.size();
    sctx.lineCap = sctx.lineJoin = "round";
    sctx.beginPath();
    sctx.moveTo(...(last || p));
    sctx.lineTo(...p);
    sctx.stroke();
    if (!last) { sctx.beginPath(); sctx.arc(p[0], p[1], opts.size() / 2, 0, 2 * Math.PI); sctx.fill(); }
    last = p;
    redraw();
  }
  display.addEventListener("pointerdown", (ev) => {
    display.setPointerCapture(ev.pointerId);
    drawing = true; last = null;
    sctx.clearRect(0, 0, n, n);
    segment(at(ev));
  });
  display.addEventListener("pointermove", (ev) => { if (drawing) segment(at(ev)); });
  const end = () => {
    if (!drawing) return;
    undo.push(lctx.getImageData(0, 0, n, n));
    if (undo.length > 40) undo.shift();
    lctx.globalAlpha = opts.opacity();
    lctx.globalCompositeOperation = opts.eraser() ? "destination-out" : "source-over";
    lctx.drawImage(stroke, 0, 0);
    lctx.globalAlpha = 1; lctx.globalCompositeOperation = "source-over";
    drawing = false;
    redraw();
    if (opts.onChange) opts.onChange();
  };
  display.addEventListener("pointerup", end);
  display.addEventListener("pointercancel", end);
  return {
    get layer() { return layer; },
    get side() { return n; },
    redraw,
    resize(side) { if (side !== n) { allocate(side); undo.length = 0; redraw(); } },
    undo() { if (undo.length) { lctx.putImageData(undo.pop(), 0, 0); redraw(); if (opts.onChange) opts.onChange(); } },
    clear() { undo.push(lctx.getImageData(0, 0, n, n)); lctx.clearRect(0, 0, n, n); redraw(); if (opts.onChange) opts.onChange(); },
  };
}

// ------------------------------------------------------------------ Paint tab
const guide = { image: null, name: "canvas" };
const paintBrush = brushCanvas($("#paint-canvas"), {
  size: () => +$("#brush-size").value,
  opacity: () => +$("#brush-opacity").value / 100,
  color: () => $("#brush-color").value,
  eraser: () => $("#brush-eraser").checked,
  underlay: (ctx) => { if (guide.image) { ctx.globalAlpha = 1; ctx.drawImage(guide.image, 0, 0, ctx.canvas.width, ctx.canvas.height); } },
});
studio.paint = paintBrush;
$("#paint-undo").addEventListener("click", () => paintBrush.undo());
$("#paint-clear").addEventListener("click", () => paintBrush.clear());

function setGuide(src, name) {
  if (!src) { guide.image = null; guide.name = "canvas"; paintBrush.redraw(); return; }
  const im = new Image();
  im.onload = () => { guide.image = im; guide.name = name; paintBrush.redraw(); };
  im.src = src;
}
$("#paint-guide").addEventListener("change", (ev) => {
  const v = ev.target.value;
  setGuide(v ? `/samples/images/${encodeURIComponent(v)}` : null, v.replace(/\.png$/, ""));
});

function paintReference() {
  // the RGBA reference: the picture under the paint at the "keep" weight, the paint over it
  const n = studio.info.size;
  const c = document.createElement("canvas"); c.width = c.height = n;
  const ctx = c.getContext("2d");
  const keep = +$("#paint-keep").value / 100;
  if (guide.image && keep > 0) { ctx.globalAlpha = keep; ctx.drawImage(guide.image, 0, 0, n, n); ctx.globalAlpha = 1; }
  ctx.drawImage(paintBrush.layer, 0, 0);
  return c.toDataURL("image/png");
}

// ------------------------------------------------------------------ job tabs (paint, invert, pulse)
function jobTab(section) {
  const kind = section.dataset.job;
  $(".options", section).append($("#options-template").content.cloneNode(true));
  $(".run-row", section).append($("#run-template").content.cloneNode(true));
  $(".live", section).append($("#live-template").content.cloneNode(true));
  const space = $(".opt-space", section);
  studio.info.spaces.forEach((s) => space.add(new Option(s, s)));
  $(".opt-recipe", section).placeholder = studio.info.recipes[kind] || "job default";
  const run = $(".run", section), cancel = $(".cancel", section), status = $(".status", section);
  const live = $(".live-image", section), terms = $(".terms", section);
  const state = { upload: null, job: null, source: null };

  const sample = $(".source-sample", section), uploadInput = $(".source-upload", section);
  if (sample) {
    studio.info.samples[sample.dataset.kind].forEach((s) => sample.add(new Option(s, s)));
    const preview = $(".source-preview", section);
    const showSample = () => { state.upload = null; preview.src = `/samples/${sample.dataset.kind}/${encodeURIComponent(sample.value)}`; };
    sample.addEventListener("change", showSample);
    showSample();
    uploadInput.addEventListener("change", async () => {
      const f = uploadInput.files[0];
      if (!f) return;
      try {
        const up = await upload(f, uploadInput.dataset.purpose, ($(".opt-align", section) || {}).checked);
        state.upload = up.id; preview.src = up.preview; showError("");
        if (up.notes.length) status.textContent = up.notes.join("; ");
      } catch (e) { showError(e.message); } finally { uploadInput.value = ""; }
    });
  }

  function source() {
    if (kind === "paint") return { canvas: paintReference(), name: `${guide.name}_paint` };
    return state.upload ? { upload: state.upload } : { sample: sample.value };
  }

  run.addEventListener("click", async () => {
    showError("");
    const t0 = performance.now();
    const body = { job: kind, source: source(), runs: +(($(".opt-runs", section) || {}).value || 1),
      options: { space: space.value, steps: $(".opt-steps", section).value, recipe: $(".opt-recipe", section).value,
        seed: $(".opt-seed", section).value, align: ($(".opt-align", section) || {}).checked || false } };
    let job;
    try { job = await (await postJSON("/api/jobs", body)).json(); } catch (e) { showError(e.message); return; }
    state.job = job.id; studio.activeJobs[kind] = job.id;
    section.dataset.updates = "0";
    section.dataset.state = "queued";
    run.disabled = true; cancel.disabled = false;
    let first = true;
    const es = new EventSource(`/api/jobs/${job.id}/events?page=${PAGE}`);
    const finish = () => { es.close(); run.disabled = false; cancel.disabled = true; delete studio.activeJobs[kind]; };
    es.onmessage = (ev) => {
      const v = JSON.parse(ev.data);
      section.dataset.state = v.state;
      const p = v.progress || {};
      if (v.state === "queued") status.textContent = `queued: position ${v.position}`;
      if (p.step !== undefined) {
        if (first) { first = false; studio.timings.firstProgress.push(performance.now() - t0); }
        section.dataset.updates = String(+section.dataset.updates + 1);
        const alt = p.runs > 1 ? ` (alternative ${p.run}/${p.runs})` : "";
        status.textContent = `step ${p.step}/${p.steps}${alt}`;
        terms.replaceChildren(...Object.entries(p.terms || {}).map(([k, x]) => {
          const tr = document.createElement("tr");
          tr.innerHTML = "<td></td><td></td>";
          tr.cells[0].textContent = k; tr.cells[1].textContent = typeof x === "number" ? x.toPrecision(4) : String(x);
          return tr;
        }));
      }
      if (v.preview) live.src = v.preview;
      if (v.state === "done") { status.textContent = "done"; showResults(section, v.results); finish(); }
      if (v.state === "error") { status.textContent = "failed"; showError(v.error); finish(); }
      if (v.state === "cancelled") { status.textContent = "cancelled"; finish(); }
    };
    es.onerror = () => { if (!run.disabled) return; status.textContent = "connection lost"; finish(); };
  });
  cancel.addEventListener("click", () => {
    if (state.job) fetch(`/api/jobs/${state.job}/cancel?page=${PAGE}`, { method: "POST" });
  });
}

function fmt(x) { return typeof x === "number" ? (Math.abs(x) >= 100 || Number.isInteger(x) ? String(x) : x.toPrecision(3)) : x; }

function showResults(section, results) {
  const box = $(".results", section);
  box.replaceChildren();
  for (const r of results) {
    const fig = $("#result-template").content.cloneNode(true);
    const m = r.metrics;
    $(".result-image", fig).src = r.image;
    $(".result-compare", fig).src = r.compare;
    $(".result-name", fig).textContent = r.name;
    const shown = r.job === "paint" ? [["painted-area error (MSE)", m.masked_mse], ["steps", m.steps], ["seconds", m.seconds]]
      : r.job === "invert" ? [["PSNR dB", m.psnr], ["SSIM", m.ssim], ["steps", m.steps], ["seconds", m.seconds]]
      : [["low-res PSNR dB", m.psnr_lowres], ["steps", m.steps], ["seconds", m.seconds]];
    $(".result-metrics", fig).textContent = shown.map(([k, v]) => `${k} ${fmt(v)}`).join(" · ");
    $(".result-notes", fig).replaceChildren(...r.notes.map((n) => { const li = document.createElement("li"); li.textContent = n; return li; }));
    for (const k of ["image", "compare", "latent"]) $(`.dl-${k}`, fig).href = `/api/results/${r.id}/${k}?page=${PAGE}`;
    $(".to-edit", fig).addEventListener("click", () => { addLatent(r.id, `${r.name} (${r.job})`, true); selectTab("edit"); });
    box.append(fig);
    addLatent(r.id, `${r.name} (${r.job})`, false);
  }
}

// ------------------------------------------------------------------ Edit tab
const edit = { inflight: false, pending: false, url: null };
const maskBrush = brushCanvas($("#mask-canvas"), {
  size: () => +$("#mask-size").value, opacity: () => 1, color: () => "#ffffff",
  eraser: () => $("#mask-eraser").checked, onChange: () => { if (editMode() === "blend") requestRender(); },
});
$("#mask-clear").addEventListener("click", () => maskBrush.clear());

function addLatent(id, name, select) {
  if (!studio.latents.some((l) => l.id === id)) {
    studio.latents.push({ id, name });
    for (const sel of [$("#edit-a"), $("#edit-b")]) sel.add(new Option(name, id));
  }
  if (select) { $("#edit-a").value = id; requestRender(); }
}
const editMode = () => $("input[name=edit-mode]:checked").value;

function editBody() {
  const alphas = {};
  $$("#edit-sliders input").forEach((s) => { alphas[s.dataset.direction] = +s.value; });
  const mode = editMode();
  return { a: $("#edit-a").value, b: $("#edit-b").value, alphas, mode, t: +$("#edit-t").value / 100,
    layers: $("#edit-layers").value, mask: mode === "blend" ? maskBrush.layer.toDataURL("image/png") : null };
}

async function requestRender() {
  // at most one render in flight; slider moves during it coalesce into one more
  if (!$("#edit-a").value) return;
  if (edit.inflight) { edit.pending = true; return; }
  edit.inflight = true;
  const t0 = performance.now();
  try {
    const r = await postJSON("/api/edit/render", editBody());
    const server = +r.headers.get("X-Render-Ms"), cpu = +r.headers.get("X-Render-Cpu-Ms");
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    const img = $("#edit-image");
    await new Promise((ok) => { img.onload = ok; img.src = url; });
    if (edit.url) URL.revokeObjectURL(edit.url);
    edit.url = url;
    $("#edit-png").href = url;
    const ms = performance.now() - t0;
    studio.timings.frames.push(ms);
    studio.timings.renders.push({ wall: server, cpu });
    $("#edit-timing").textContent = `frame ${ms.toFixed(0)} ms (render ${server.toFixed(0)} ms, ${cpu.toFixed(0)} ms CPU, on the server)`;
    img.dataset.frames = String(studio.timings.frames.length);
  } catch (e) { showError(e.message); }
  edit.inflight = false;
  if (edit.pending) { edit.pending = false; requestRender(); }
}

function buildSliders() {
  const box = $("#edit-sliders");
  if (!studio.info.directions.length) box.textContent = "This model has no named directions.";
  for (const d of studio.info.directions) {
    const row = document.createElement("label");
    row.className = "slider";
    row.innerHTML = `<span></span><input type="range" min="-5" max="5" step="0.1" value="0"><output></output>`;
    const input = $("input", row), out = $("output", row);
    row.firstChild.textContent = d.replace(/_/g, " ");
    input.dataset.direction = d;
    input.id = `dir-${d}`;
    out.textContent = "0";
    input.addEventListener("input", () => { out.textContent = input.value; requestRender(); });
    box.append(row);
  }
}

$("#edit-reset").addEventListener("click", () => {
  $$("#edit-sliders input").forEach((s) => { s.value = 0; s.nextElementSibling.textContent = "0"; });
  requestRender();
});
for (const el of [$("#edit-a"), $("#edit-b"), $("#edit-layers"), ...$$("input[name=edit-mode]")]) el.addEventListener("change", requestRender);
$("#edit-t").addEventListener("input", requestRender);
$("#edit-from-seed").addEventListener("click", async () => {
  try {
    const out = await (await postJSON("/api/edit/seed", { seed: +$("#edit-seed").value })).json();
    addLatent(out.id, out.name, true);
  } catch (e) { showError(e.message); }
});
$("#edit-upload").addEventListener("change", async (ev) => {
  const f = ev.target.files[0];
  if (!f) return;
  try { const out = await upload(f, "latent"); addLatent(out.id, out.name, true); showError(""); }
  catch (e) { showError(e.message); } finally { ev.target.value = ""; }
});
$("#edit-save").addEventListener("click", async () => {
  try {
    const r = await postJSON("/api/edit/save", editBody());
    const name = (r.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await r.blob()); a.download = name ? name[1] : "edited.latent.pt";
    a.click();
  } catch (e) { showError(e.message); }
});
$("#paint-upload").addEventListener("change", async (ev) => {
  const f = ev.target.files[0];
  if (!f) return;
  try { const up = await upload(f, "paint"); setGuide(up.preview, up.name); showError(""); }
  catch (e) { showError(e.message); } finally { ev.target.value = ""; }
});

// a closed tab (or a reload) cancels what it started
window.addEventListener("pagehide", () => {
  for (const id of Object.values(studio.activeJobs)) navigator.sendBeacon(`/api/jobs/${id}/cancel?page=${PAGE}`);
});

// ------------------------------------------------------------------ start
(async () => {
  studio.info = await (await fetch("/api/info")).json();
  $("#model").textContent = `${studio.info.model} · ${studio.info.size}×${studio.info.size}`;
  // paint at the model's resolution (the reference is sent at that size), the brush scaled to match
  const brush = $("#brush-size"), scale = studio.info.size / paintBrush.side;
  brush.max = Math.round(+brush.max * scale); brush.value = Math.round(+brush.value * scale);
  brush.dispatchEvent(new Event("input"));
  paintBrush.resize(studio.info.size);
  studio.info.samples.images.forEach((s) => $("#paint-guide").add(new Option(s, s)));
  $$(".tab.job").forEach(jobTab);
  buildSliders();
  bindOutputs();
  document.body.dataset.ready = "1";
})();
