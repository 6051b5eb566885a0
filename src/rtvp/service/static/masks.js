// rtvp inspection page: instance masks sent as COCO compressed RLE, decoded and drawn on canvases (loaded before
// app.js). Plain JavaScript, no build step.
"use strict";

// Run lengths of a COCO compressed RLE string (pycocotools rleFrString): 5-bit groups offset by 48, a continuation
// bit 0x20, sign bit 0x10 on the last group; from the 4th run on each value is a delta to the run two before.
function rleCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0, k = 0, more = true;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p += 1; k += 1;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// An offscreen canvas holding the mask in `rgb` (opaque where set, transparent elsewhere); runs are column-major.
function maskCanvas(rle, rgb) {
  const [h, w] = rle.size;
  const off = document.createElement("canvas");
  off.width = w;
  off.height = h;
  const ctx = off.getContext("2d");
  const img = ctx.createImageData(w, h);
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(rgb.slice(i, i + 2), 16));
  let pos = 0;
  rleCounts(rle.counts).forEach((run, i) => {
    if (i % 2 === 1) {
      for (let j = pos; j < pos + run; j++) {
        const at = ((j % h) * w + Math.floor(j / h)) * 4;
        img.data[at] = r; img.data[at + 1] = g; img.data[at + 2] = b; img.data[at + 3] = 255;
      }
    }
    pos += run;
  });
  ctx.putImageData(img, 0, 0);
  return off;
}

// "140 px long · 3 px wide · 420 px²" (mm with a pixel size), or "—" without a mask.
function maskText(d) {
  if (d.area_px == null) return "—";
  const mm = d.length_mm != null;
  const unit = mm ? "mm" : "px";
  // as rtvp.tasks.facts.mm_text: whole mm from 10, one decimal from 1, else two significant digits
  const num = (v) => {
    if (!mm || v >= 10) return v.toFixed(0);
    return v >= 1 ? v.toFixed(1) : String(Number(v.toPrecision(2)));
  };
  const [len, wid, area] = mm ? [d.length_mm, d.width_mm, d.area_mm] : [d.length_px, d.width_px, d.area_px];
  return `${num(len)} ${unit} long · ${num(wid)} ${unit} wide · ${num(area)} ${unit}²`;
}
