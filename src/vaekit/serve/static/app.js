// vaekit explorer: the page's logic. Talks to the JSON / PNG API of vaekit.serve.app; draws with Plotly.js.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, projection: null, z: null, clicked: null, a: null, b: null, seed: 0,
                decodeBusy: false, decodePending: false };
window.vaekit = state;  // for people (and tests) poking at the page from the console

function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function api(path, body) {
  const options = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" },
                                              body: JSON.stringify(body) };
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

async function digest(buffer) {  // SHA-256 of an image's bytes, kept on the <img> (tests compare it)
  const hash = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(hash)).map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function showPng(img, response) {
  const buffer = await response.arrayBuffer();
  const old = img.src;
  img.src = URL.createObjectURL(new Blob([buffer], { type: "image/png" }));
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  img.dataset.digest = await digest(buffer);
}

function showList(ol, sentences) {
  ol.replaceChildren(...sentences.map((s) => { const li = document.createElement("li"); li.textContent = s; return li; }));
}

function options(select, items) {
  select.replaceChildren(...items.map(([value, text]) => {
    const o = document.createElement("option"); o.value = value; o.textContent = text; return o;
  }));
}

function labelValue(select) {
  return state.info.conditional ? Number(select.value) : undefined;
}

// --- the scatter plot --------------------------------------------------------------------------------------

async function loadProjection(method) {
  status(`computing the ${method} projection...`);
  const p = await (await api(`/api/projection?method=${encodeURIComponent(method)}`)).json();
  state.projection = p;
  const ids = p.x.map((_, i) => i);
  const groups = new Map();
  for (const i of ids) {
    const key = p.labels ? p.labels[i] : "points";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(i);
  }
  const names = state.info.classes;
  const traces = [...groups.entries()].sort((u, v) => (u[0] > v[0] ? 1 : -1)).map(([key, members]) => ({
    type: "scatter", mode: "markers", name: p.labels ? (names[key] ?? String(key)) : "points",
    x: members.map((i) => p.x[i]), y: members.map((i) => p.y[i]), customdata: members,
    text: p.text ? members.map((i) => p.text[i]) : undefined,
    hovertemplate: p.text ? "%{text}<extra>#%{customdata}</extra>" : "#%{customdata}<extra>%{fullData.name}</extra>",
    marker: { size: 6, opacity: 0.8 },
  }));
  const layout = { margin: { l: 50, r: 10, t: 10, b: 45 }, dragmode: "pan", hovermode: "closest",
                   xaxis: { title: { text: p.axes[0] } }, yaxis: { title: { text: p.axes[1] } },
                   legend: { orientation: "v", y: 0.88 } };  // below the plot's toolbar, which would cover the first entry
  const plot = $("scatter");
  await Plotly.react(plot, traces, layout, { scrollZoom: true, displaylogo: false, responsive: true });
  if (!plot.dataset.wired) {
    plot.on("plotly_hover", (event) => hoverPoint(event.points[0].customdata));
    plot.on("plotly_click", (event) => clickPoint(event.points[0].customdata, event.event && event.event.shiftKey));
    plot.dataset.wired = "1";
  }
  plot.dataset.ready = method;
  status(`${p.x.length} points, ${method}`);
}

let hoverTimer = null;
function hoverPoint(id) {
  clearTimeout(hoverTimer);
  hoverTimer = setTimeout(() => showPoint(id).catch((e) => status(e.message, true)), 60);
}

async function showPoint(id) {
  $("point-id").textContent = `#${id}`;
  const point = await (await api(`/api/point/${id}`)).json();
  const label = point.label === null ? "" : `, class ${state.info.classes[point.label] ?? point.label}`;
  $("point-info").textContent = `row ${point.row} of the ${state.info.split} split${label}`;
  if (state.info.text) {
    $("point-text").textContent = `${point.text}  \u2192  ${point.reconstruction}`;
  } else {
    const [shown, rebuilt] = await Promise.all([api(`/api/image/input/${id}.png`),
                                                api(`/api/image/reconstruction/${id}.png`)]);
    await Promise.all([showPng($("input"), shown), showPng($("reconstruction"), rebuilt)]);
  }
  return point;
}

async function clickPoint(id, shift) {
  try {
    const point = await showPoint(id);
    if (shift) { state.b = id; $("point-b").textContent = `#${id}`; return; }
    state.clicked = point; state.a = id; $("point-a").textContent = `#${id}`;
    if (state.info.conditional && point.label !== null) $("label").value = String(point.label);
    setCode(point.z);
  } catch (e) { status(e.message, true); }
}

// --- sliders and live decoding ------------------------------------------------------------------------------

function buildSliders() {
  const box = $("sliders");
  box.replaceChildren();
  for (const d of state.info.dims) {
    const label = document.createElement("label");
    label.htmlFor = `slider-${d.dim}`;
    label.textContent = `z${d.dim} (${state.info.score_name || "KL"} ${d.kl.toFixed(2)})${d.collapsed ? " collapsed" : ""}`;
    label.classList.toggle("collapsed", d.collapsed);
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: -4, max: 4, step: 0.05, value: 0, id: `slider-${d.dim}` });
    input.dataset.dim = d.dim;
    const out = document.createElement("output");
    out.id = `value-${d.dim}`; out.textContent = "0.00";
    input.addEventListener("input", () => {
      state.z[d.dim] = Number(input.value); out.textContent = Number(input.value).toFixed(2); scheduleDecode();
    });
    box.append(label, input, out);
  }
}

function setCode(z) {
  state.z = z.slice();
  for (const d of state.info.dims) {
    const value = Math.max(-4, Math.min(4, z[d.dim]));
    $(`slider-${d.dim}`).value = value;
    $(`value-${d.dim}`).textContent = z[d.dim].toFixed(2);
  }
  scheduleDecode();
}

function scheduleDecode() {  // one request in flight; moves made meanwhile are decoded once it returns
  if (state.decodeBusy) { state.decodePending = true; return; }
  state.decodeBusy = true;
  decodeNow().catch((e) => status(e.message, true)).finally(() => {
    state.decodeBusy = false;
    if (state.decodePending) { state.decodePending = false; scheduleDecode(); }
  });
}

async function decodeNow() {
  const body = { z: state.z };
  if (state.info.conditional) body.label = Number($("label").value);
  const response = await api("/api/decode", body);
  if (state.info.text) $("decoded-text").textContent = (await response.json()).text;
  else await showPng($("decoded"), response);
}

// --- strips: traversal, interpolation, samples, arithmetic ---------------------------------------------------

async function strip(path, body, img, list) {
  try {
    const response = await api(path, body);
    if (state.info.text) showList(list, (await response.json()).sentences);
    else await showPng(img, response);
    status("");
  } catch (e) { status(e.message, true); }
}

function wireStrips() {
  $("traverse").onclick = async () => {
    const span = Number($("trav-span").value), steps = 9;
    await strip("/api/traverse", { dim: Number($("trav-dim").value), z: state.z, span, steps,
                                   label: labelValue($("label")) }, $("traversal"), $("traversal-text"));
    // the value of the dimension under each picture, in prior standard deviations from the code
    const values = Array.from({ length: steps }, (_, i) => -span + (2 * span * i) / (steps - 1));
    $("traversal-values").replaceChildren(...values.map((v) => {
      const cell = document.createElement("span"); cell.textContent = `${v > 0 ? "+" : ""}${v.toFixed(1)}`; return cell;
    }));
  };
  $("interpolate").onclick = () => {
    if (state.a === null || state.b === null) { status("click a point (A) and shift-click another (B) first", true); return; }
    strip("/api/interpolate", { a: state.a, b: state.b, steps: 8, method: $("interp-method").value,
                                label: labelValue($("label")) }, $("interpolation"), $("interpolation-text"));
  };
  const sample = () => strip("/api/sample", { n: 12, seed: state.seed, label: labelValue($("sample-label")) },
                             $("samples"), $("samples-text"));
  $("sample").onclick = sample;
  $("resample").onclick = () => { state.seed += 1; sample(); };
  $("arith-strength").oninput = () => { $("arith-value").textContent = $("arith-strength").value; };
  $("arithmetic").onclick = () => {
    if (state.a === null) { status("click a point first", true); return; }
    strip("/api/arithmetic", { point: state.a, target: Number($("arith-target").value),
                               strength: Number($("arith-strength").value), steps: 6 }, $("arith"));
  };
  $("origin").onclick = () => setCode(new Array(state.info.latent_dim).fill(0));
  $("from-point").onclick = () => { if (state.clicked) setCode(state.clicked.z); };
  $("label").onchange = scheduleDecode;
}

function wireText() {
  $("explore-sentence").onclick = async () => {
    try {
      const r = await (await api("/api/text", { text: $("sentence").value, n_samples: 5, n_nearest: 5 })).json();
      const out = $("sentence-out");
      out.replaceChildren();
      const add = (title, items) => {
        const h = document.createElement("h3"); h.textContent = title;
        const ol = document.createElement("ol"); showList(ol, items); out.append(h, ol);
      };
      add("reconstruction", [r.reconstruction]);
      add("nearest training sentences (by code)", r.nearest);
      add("samples around it, z ~ q(z | sentence)", r.samples);
      setCode(r.z);
      status("");
    } catch (e) { status(e.message, true); }
  };
  $("interpolate-sentences").onclick = async () => {
    try {
      const r = await (await api("/api/text/interpolate", { a: $("sentence-a").value, b: $("sentence-b").value,
                                                           steps: 6, method: $("interp-method").value })).json();
      showList($("sentences-between"), r.sentences);
      status("");
    } catch (e) { status(e.message, true); }
  };
}

// --- start ---------------------------------------------------------------------------------------------------

async function start() {
  const info = await (await api("/api/info")).json();
  state.info = info;
  document.body.classList.toggle("text", info.text);
  document.body.classList.toggle("conditional", info.conditional);
  document.body.classList.toggle("labelled", info.labels);
  $("run-info").textContent = `run ${info.run} (data: ${info.data}, ${info.split} split), ${info.latent_dim} latent dimensions`;
  options($("method"), info.projections.map((m) => [m, m]));
  $("method").onchange = () => loadProjection($("method").value).catch((e) => status(e.message, true));
  const classes = info.classes.map((name, i) => [i, name]);
  options($("label"), classes);
  options($("sample-label"), classes);
  options($("arith-target"), classes);
  options($("trav-dim"), info.dims.map((d) => [d.dim, `z${d.dim} (KL ${d.kl.toFixed(2)})${d.collapsed ? ", collapsed" : ""}`]));
  buildSliders();
  wireStrips();
  wireText();
  setCode(new Array(info.latent_dim).fill(0));
  await loadProjection(info.projections[0]);
}

start().catch((e) => status(e.message, true));
