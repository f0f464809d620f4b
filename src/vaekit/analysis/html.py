"""A self-contained interactive scatter plot: one HTML file, no network.

The points are embedded as JSON in a `<script type="application/json" id="vaekit-data">` block and drawn on a
`<canvas>` by ~150 lines of plain JavaScript: hovering shows a point's label and index, the mouse wheel zooms,
dragging pans (2-D) or rotates (3-D, turntable rotation with depth-sorted points), double-click resets, and
clicking a legend entry hides or shows that class. Nothing is loaded from the internet.
"""

from __future__ import annotations

import html
import json
from typing import Sequence

import numpy as np

from .figures import UNLABELLED_COLOUR, class_names_for, palette

DATA_ELEMENT_ID = "vaekit-data"


def scatter_data(coords: np.ndarray, labels: np.ndarray | None, index: np.ndarray | None,
                 class_names: Sequence[str] | None, axis_names: Sequence[str], title: str) -> dict:
    """The JSON-ready payload of the page: coordinates per axis, labels (-1: none), indices, class names, colours."""
    n, dims = coords.shape
    names = class_names_for(labels, class_names)
    return {
        "title": title,
        "dims": int(dims),
        "axes": list(axis_names[:dims]),
        "coords": [np.round(coords[:, i].astype(np.float64), 5).tolist() for i in range(dims)],
        "label": (np.full(n, -1) if labels is None else labels).astype(int).tolist(),
        "index": (np.arange(n) if index is None else index).astype(int).tolist(),
        "classes": names,
        "colours": palette(len(names)) if names else [UNLABELLED_COLOUR],
    }


def scatter_html(coords: np.ndarray, labels: np.ndarray | None = None, index: np.ndarray | None = None,
                 class_names: Sequence[str] | None = None, axis_names: Sequence[str] = ("x", "y", "z"),
                 title: str = "Latent space") -> str:
    """The interactive 2-D / 3-D scatter plot of `coords` (N, 2|3): one self-contained HTML page, to be written to
    a .html file."""
    data = scatter_data(coords, labels, index, class_names, axis_names, title)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # cannot close the <script> early
    page = (PAGE.replace("__TITLE__", html.escape(title))
            .replace("__DATA_ID__", DATA_ELEMENT_ID)
            .replace("__DATA__", payload)
            .replace("__HELP__", HELP_3D if coords.shape[1] == 3 else HELP_2D))
    return page


HELP_2D = "Hover a point for its label and index; drag to pan, mouse wheel to zoom, double-click to reset."
HELP_3D = "Hover a point for its label and index; drag to rotate, mouse wheel to zoom, double-click to reset."

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;color:#222}
h1{font-size:18px;margin:0 0 4px} p.help{font-size:13px;color:#555;margin:0 0 8px}
#wrap{display:flex;gap:16px;align-items:flex-start}
canvas{border:1px solid #ccc;cursor:crosshair;background:#fff}
#legend{font-size:13px;max-height:80vh;overflow-y:auto} #legend div{cursor:pointer;padding:2px 4px;white-space:nowrap}
#legend div.off{opacity:.3} #legend span{display:inline-block;width:12px;height:12px;margin-right:6px;border-radius:6px}
#tip{position:fixed;pointer-events:none;background:rgba(0,0,0,.8);color:#fff;padding:3px 7px;border-radius:3px;
font-size:12px;display:none}
</style></head><body>
<h1>__TITLE__</h1><p class="help">__HELP__ Click a legend entry to hide or show a class.</p>
<div id="wrap"><canvas id="plot"></canvas><div id="legend"></div></div><div id="tip"></div>
<script type="application/json" id="__DATA_ID__">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("__DATA_ID__").textContent);
const N = D.index.length, DIMS = D.dims, canvas = document.getElementById("plot"), ctx = canvas.getContext("2d");
const tip = document.getElementById("tip"), hidden = new Set();
// Each axis scaled to [-1, 1] around its centre, so the view fits whatever the projection's units.
const P = D.coords.map(a => { let lo = Infinity, hi = -Infinity;
  for (const v of a) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const c = (lo + hi) / 2, h = (hi - lo) / 2 || 1; return {v: Float64Array.from(a, v => (v - c) / h), c, h}; });
let view, W, H, sx = new Float64Array(N), sy = new Float64Array(N), order = [...Array(N).keys()], hover = -1;
function reset() { view = {zoom: 1, panX: 0, panY: 0, yaw: -0.6, pitch: 0.45}; }
function colour(i) { const k = D.label[i]; return k < 0 ? D.colours[0] : D.colours[k]; }
function resize() {
  W = Math.max(360, Math.min(window.innerWidth - 240, 1000)); H = Math.round(W * 0.75);
  const r = window.devicePixelRatio || 1; canvas.width = W * r; canvas.height = H * r;
  canvas.style.width = W + "px"; canvas.style.height = H + "px"; ctx.setTransform(r, 0, 0, r, 0, 0); draw(); }
const CORNERS = [];
for (const a of [-1, 1]) for (const b of [-1, 1]) for (const c of [-1, 1]) CORNERS.push([a, b, c]);
// 3-D: turntable rotation, yaw about the vertical (third) axis, then pitch: [across, up, depth].
function rotate(x, y, z) {
  const cy = Math.cos(view.yaw), sy_ = Math.sin(view.yaw), cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
  const xr = x * cy - y * sy_, yr = x * sy_ + y * cy;    // rotate about the up axis
  return [xr, z * cp - yr * sp, z * sp + yr * cp];        // tilt towards the viewer
}
// 2-D: the [-1, 1] square fills the canvas. 3-D: the rotated cube fits it whatever the angle, with room for the
// tick values and axis names around it.
function scale() {
  if (DIMS === 2) return 0.42 * Math.min(W, H) * view.zoom;
  let mx = 0, my = 0;
  for (const c of CORNERS) { const q = rotate(...c); mx = Math.max(mx, Math.abs(q[0])); my = Math.max(my, Math.abs(q[1])); }
  return Math.min((W / 2 - 70) / mx, (H / 2 - 40) / my) * view.zoom;
}
// 2-D: screen = centre + s * (x + pan).
function toScreen(x, y, z) {
  const s = scale();
  if (DIMS === 2) return [W / 2 + s * (x + view.panX), H / 2 - s * (y + view.panY), 0];
  const q = rotate(x, y, z);
  return [W / 2 + s * q[0], H / 2 - s * q[1], q[2]];
}
// Text kept inside the canvas, whatever the rotation or zoom.
function label(text, x, y) {
  const w = ctx.measureText(text).width;
  ctx.fillText(text, Math.max(w / 2 + 2, Math.min(W - w / 2 - 2, x)), Math.max(12, Math.min(H - 4, y)));
}
function axes() {
  ctx.strokeStyle = "#999"; ctx.fillStyle = "#333"; ctx.font = "12px sans-serif"; ctx.lineWidth = 1;
  if (DIMS === 2) {
    const s = scale();
    ctx.textAlign = "center";
    for (let t = 0; t <= 4; t++) {  // tick values in data units along the bottom and the left edge
      const px = 40 + t * (W - 80) / 4, py = 20 + t * (H - 60) / 4;
      const dx = (px - W / 2) / s - view.panX, dy = (H / 2 - py) / s - view.panY;
      ctx.fillText((P[0].c + dx * P[0].h).toPrecision(3), px, H - 6);
      ctx.textAlign = "left"; ctx.fillText((P[1].c + dy * P[1].h).toPrecision(3), 4, py + 4); ctx.textAlign = "center";
    }
    ctx.fillText(D.axes[0], W / 2, H - 22);
    ctx.save(); ctx.translate(62, H / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(D.axes[1], 0, 0); ctx.restore();
    return;
  }
  // the bounding cube in light grey, the three axes from its corner (-1, -1, -1) darker, with tick values in data
  // units at both ends and the middle of each, and the axis names past their ends
  ctx.strokeStyle = "#ddd";
  for (let i = 0; i < 8; i++) for (let j = i + 1; j < 8; j++) {
    const a = CORNERS[i], b = CORNERS[j];
    if (a.filter((v, k) => v !== b[k]).length !== 1) continue;  // an edge: the corners differ in one coordinate
    const p = toScreen(...a), q = toScreen(...b);
    ctx.beginPath(); ctx.moveTo(p[0], p[1]); ctx.lineTo(q[0], q[1]); ctx.stroke();
  }
  ctx.strokeStyle = "#888"; ctx.textAlign = "center";
  // the axes run from the bottom corner nearest the viewer (the lowest on screen), along the outside of the cube
  let origin = null;
  for (const c of CORNERS) if (c[2] === -1 && (!origin || toScreen(...c)[1] > toScreen(...origin)[1])) origin = c;
  const o = toScreen(...origin), mid = toScreen(0, 0, 0);
  for (let k = 0; k < 3; k++) {
    const end = origin.slice(); end[k] = -origin[k];
    const p = toScreen(...end);
    ctx.beginPath(); ctx.moveTo(o[0], o[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    for (const t of [origin[k], 0, -origin[k]]) {
      if (k < 2 && t === origin[k]) continue;  // the shared corner shows the vertical axis' value only
      const at = origin.slice(); at[k] = t;
      const q = toScreen(...at), dx = q[0] - mid[0], dy = q[1] - mid[1], n = Math.hypot(dx, dy) || 1;
      ctx.fillStyle = "#666";  // away from the cube's centre, so the value does not sit on the points
      label((P[k].c + t * P[k].h).toPrecision(3), q[0] + 18 * dx / n, q[1] + 18 * dy / n + 4);
    }
    const dx = p[0] - mid[0], dy = p[1] - mid[1], n = Math.hypot(dx, dy) || 1;
    ctx.fillStyle = "#222"; label(D.axes[k], p[0] + 40 * dx / n, p[1] + 40 * dy / n + 4);
  }
}
function draw() {
  if (!view) reset();
  ctx.clearRect(0, 0, W, H);
  const depth = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const q = toScreen(P[0].v[i], P[1].v[i], DIMS === 3 ? P[2].v[i] : 0); sx[i] = q[0]; sy[i] = q[1]; depth[i] = q[2];
  }
  if (DIMS === 3) order.sort((a, b) => depth[b] - depth[a]);  // far points first
  axes();
  const r = N > 5000 ? 1.5 : N > 1000 ? 2.2 : 3.2;
  ctx.globalAlpha = 0.75;
  for (const i of order) {
    if (hidden.has(D.label[i])) continue;
    ctx.fillStyle = colour(i); ctx.fillRect(sx[i] - r, sy[i] - r, 2 * r, 2 * r);
  }
  ctx.globalAlpha = 1;
  if (hover >= 0) { ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.beginPath();
    ctx.arc(sx[hover], sy[hover], r + 4, 0, 2 * Math.PI); ctx.stroke(); }
}
function nearest(mx, my) {
  let best = -1, bd = 64;  // within 8 pixels
  for (let i = 0; i < N; i++) { if (hidden.has(D.label[i])) continue;
    const d = (sx[i] - mx) ** 2 + (sy[i] - my) ** 2; if (d < bd) { bd = d; best = i; } }
  return best;
}
let drag = null;
canvas.addEventListener("mousedown", e => { drag = {x: e.clientX, y: e.clientY}; });
window.addEventListener("mouseup", () => { drag = null; });
canvas.addEventListener("mousemove", e => {
  const b = canvas.getBoundingClientRect(), mx = e.clientX - b.left, my = e.clientY - b.top;
  if (drag) {
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y; drag = {x: e.clientX, y: e.clientY};
    if (DIMS === 2) { view.panX += dx / scale(); view.panY -= dy / scale(); }
    else { view.yaw += dx * 0.01; view.pitch = Math.max(-1.55, Math.min(1.55, view.pitch + dy * 0.01)); }
    tip.style.display = "none"; draw(); return;
  }
  hover = nearest(mx, my); draw();
  if (hover < 0) { tip.style.display = "none"; return; }
  const k = D.label[hover];
  tip.textContent = (k >= 0 ? "label " + D.classes[k] + ", " : "") + "index " + D.index[hover];
  tip.style.left = (e.clientX + 12) + "px"; tip.style.top = (e.clientY + 12) + "px"; tip.style.display = "block";
});
canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; hover = -1; draw(); });
canvas.addEventListener("wheel", e => { e.preventDefault();
  view.zoom = Math.max(0.2, Math.min(50, view.zoom * Math.exp(-e.deltaY * 0.0015))); draw(); }, {passive: false});
canvas.addEventListener("dblclick", () => { reset(); draw(); });
const legend = document.getElementById("legend");
D.classes.forEach((name, k) => {
  const item = document.createElement("div"), swatch = document.createElement("span");
  swatch.style.background = D.colours[k]; item.appendChild(swatch); item.appendChild(document.createTextNode(name));
  item.title = "click to hide or show";
  item.onclick = () => { if (hidden.has(k)) { hidden.delete(k); item.className = ""; }
    else { hidden.add(k); item.className = "off"; } draw(); };
  legend.appendChild(item);
});
window.addEventListener("resize", resize);
resize();
</script></body></html>
"""
