// kubesweep report: draws the plots of the embedded data as inline SVG. No network, no library.
// Each plot container gets data-rendered="true" and data-marks=<count> once drawn, or
// data-error=<message> if drawing failed; the report's browser test checks those.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 320, M = { l: 64, r: 16, t: 16, b: 44 };
  const PHASE_COLOURS = {
    Succeeded: "#2563eb", EarlyStopped: "#d97706", Failed: "#dc2626",
    MetricsUnavailable: "#dc2626", Running: "#0891b2", Pending: "#6b7280",
  };
  const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2",
    "#db2777", "#65a30d", "#ea580c", "#4f46e5"];

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function tip(node, text) { el("title", {}, node).textContent = text; return node; }
  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v !== "number") return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : String(+v.toPrecision(4));
  }

  // A scale: numeric (linear or log) or categorical (evenly spaced categories).
  function scale(kind, domain, range, log) {
    if (kind === "categorical") {
      const n = Math.max(domain.length, 1);
      const step = (range[1] - range[0]) / n;
      const f = (v) => range[0] + step * (domain.indexOf(String(v)) + 0.5);
      f.ticks = () => domain.map((d) => [d, f(d)]);
      return f;
    }
    let lo = domain[0], hi = domain[1];
    if (!(hi > lo)) { lo = lo - 1; hi = hi + 1; }
    const t = log ? Math.log : (x) => x;
    const tl = t(lo), th = t(hi);
    const f = (v) => range[0] + (t(v) - tl) / (th - tl) * (range[1] - range[0]);
    f.ticks = () => {
      const out = [];
      for (let i = 0; i <= 4; i++) {
        const u = tl + (th - tl) * i / 4;
        const v = log ? Math.exp(u) : u;
        out.push([fmt(v), f(v)]);
      }
      return out;
    };
    return f;
  }
  function extent(values, pad) {
    const finite = values.filter((v) => typeof v === "number" && isFinite(v));
    if (!finite.length) return [0, 1];
    let lo = Math.min(...finite), hi = Math.max(...finite);
    const p = (hi - lo || Math.abs(hi) || 1) * (pad || 0.05);
    return [lo - p, hi + p];
  }

  function frame(container, xs, ys, xLabel, yLabel) {
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart" });
    container.appendChild(svg);
    el("rect", { x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, class: "plot-bg" }, svg);
    for (const [label, x] of xs.ticks()) {
      el("line", { x1: x, x2: x, y1: M.t, y2: H - M.b, class: "grid" }, svg);
      el("text", { x: x, y: H - M.b + 16, class: "tick", "text-anchor": "middle" }, svg).textContent = label;
    }
    for (const [label, y] of ys.ticks()) {
      el("line", { x1: M.l, x2: W - M.r, y1: y, y2: y, class: "grid" }, svg);
      el("text", { x: M.l - 6, y: y + 4, class: "tick", "text-anchor": "end" }, svg).textContent = label;
    }
    el("text", { x: (M.l + W - M.r) / 2, y: H - 6, class: "label", "text-anchor": "middle" }, svg).textContent = xLabel;
    el("text", { x: 14, y: (M.t + H - M.b) / 2, class: "label", "text-anchor": "middle",
      transform: `rotate(-90 14 ${(M.t + H - M.b) / 2})` }, svg).textContent = yLabel;
    return svg;
  }

  function done(container, marks) {
    container.dataset.rendered = "true";
    container.dataset.marks = String(marks);
  }
  function empty(container, message) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = message;
    container.appendChild(p);
    done(container, 0);
  }

  function drawHistory(container) {
    const h = DATA.history;
    if (!h.points.length) return empty(container, "No trial reported the objective yet.");
    const metric = DATA.objective.metric;
    const xs = scale("numeric", extent(h.points.map((p) => p.x), 0.04), [M.l, W - M.r]);
    const indexes = [...new Set(h.points.map((p) => p.x))];
    const every = Math.max(1, Math.ceil(indexes.length / 10));
    xs.ticks = () => indexes.filter((_, i) => i % every === 0).map((x) => [String(x), xs(x)]);
    const ys = scale("numeric", extent(h.points.map((p) => p.y)), [H - M.b, M.t]);
    const svg = frame(container, xs, ys, "trial index", metric);
    let marks = 0;
    if (h.best.length) {
      const pts = [];
      h.best.forEach(([x, y], i) => {
        if (i > 0) pts.push(`${xs(x)},${ys(h.best[i - 1][1])}`);
        pts.push(`${xs(x)},${ys(y)}`);
      });
      const last = h.best[h.best.length - 1];
      const lastX = Math.max(...h.points.map((p) => p.x));
      pts.push(`${xs(lastX)},${ys(last[1])}`);
      tip(el("polyline", { points: pts.join(" "), class: "best-line" }, svg), "best so far");
      marks++;
    }
    for (const p of h.points) {
      tip(el("circle", { cx: xs(p.x), cy: ys(p.y), r: 4, fill: PHASE_COLOURS[p.phase] || "#333",
        class: "mark" }, svg), `${p.name} (${p.phase}): ${metric}=${fmt(p.y)}`);
      marks++;
    }
    done(container, marks);
  }

  function drawParallel(container) {
    const par = DATA.parallel;
    if (!par.rows.length) return empty(container, "No trial reported the objective yet.");
    const dims = par.dimensions.concat([{ name: DATA.objective.metric, kind: "numeric", log: false,
      min: Math.min(...par.rows.map((r) => r.objective)), max: Math.max(...par.rows.map((r) => r.objective)) }]);
    const width = Math.max(W, 140 * dims.length);
    const svg = el("svg", { viewBox: `0 0 ${width} ${H}`, width: width, height: H, class: "chart" });
    container.appendChild(svg);
    const step = (width - M.l - 70) / Math.max(dims.length - 1, 1);
    const axes = dims.map((d, i) => {
      const x = M.l + step * i;
      const s = d.kind === "categorical"
        ? scale("categorical", d.values, [H - M.b, M.t])
        : scale("numeric", d.min === d.max ? [d.min - 1, d.max + 1] : [d.min, d.max], [H - M.b, M.t], d.log);
      el("line", { x1: x, x2: x, y1: M.t, y2: H - M.b, class: "axis" }, svg);
      for (const [label, y] of s.ticks()) {
        el("text", { x: x + 4, y: y + 3, class: "tick" }, svg).textContent = label;
      }
      el("text", { x: x, y: H - 12, class: "label", "text-anchor": "middle" }, svg).textContent = d.name;
      return { x: x, s: s };
    });
    const objs = par.rows.map((r) => r.objective);
    const lo = Math.min(...objs), hi = Math.max(...objs);
    const better = DATA.objective.direction === "minimize" ? (v) => (hi - v) : (v) => (v - lo);
    let marks = 0;
    for (const row of par.rows) {
      const values = row.values.concat([row.objective]);
      const pts = [];
      values.forEach((v, i) => { if (v !== null && v !== undefined) pts.push(`${axes[i].x},${axes[i].s(v)}`); });
      const q = hi > lo ? better(row.objective) / (hi - lo) : 1;
      const colour = `hsl(${Math.round(10 + 210 * q)}, 70%, 45%)`;
      tip(el("polyline", { points: pts.join(" "), class: "pc-line", stroke: colour }, svg),
        `${row.name}: ${DATA.objective.metric}=${fmt(row.objective)}`);
      marks++;
    }
    done(container, marks);
  }

  function drawImportance(container) {
    const items = DATA.importance;
    if (!items.length) return empty(container, "Too few succeeded trials (at least 4 with different objectives) for importance.");
    const rowH = 28, height = M.t + M.b + rowH * items.length;
    const svg = el("svg", { viewBox: `0 0 ${W} ${height}`, width: W, height: height, class: "chart" });
    container.appendChild(svg);
    const left = 140, xs = scale("numeric", [0, 1], [left, W - M.r - 40]);
    let marks = 0;
    items.forEach((item, i) => {
      const y = M.t + i * rowH;
      el("text", { x: left - 8, y: y + rowH / 2 + 4, class: "label", "text-anchor": "end" }, svg).textContent = item.name;
      tip(el("rect", { x: left, y: y + 4, width: Math.max(1, xs(item.importance) - left), height: rowH - 8,
        class: "bar" }, svg), `${item.name}: ${(100 * item.importance).toFixed(1)}%`);
      el("text", { x: xs(item.importance) + 6, y: y + rowH / 2 + 4, class: "tick" }, svg).textContent =
        `${(100 * item.importance).toFixed(1)}%`;
      marks++;
    });
    done(container, marks);
  }

  function drawSlice(container, slice) {
    if (!slice.points.length) return empty(container, `No objective values for ${slice.name} yet.`);
    const xs = slice.kind === "categorical"
      ? scale("categorical", slice.values, [M.l, W - M.r])
      : scale("numeric", slice.log ? [slice.min, slice.max] : extent(slice.points.map((p) => p.x).concat([slice.min, slice.max]), 0.02), [M.l, W - M.r], slice.log);
    const ys = scale("numeric", extent(slice.points.map((p) => p.y)), [H - M.b, M.t]);
    const svg = frame(container, xs, ys, slice.name, DATA.objective.metric);
    let marks = 0;
    slice.points.forEach((p, i) => {
      const jitter = slice.kind === "categorical" ? ((i * 37) % 11 - 5) : 0;
      tip(el("circle", { cx: xs(p.x) + jitter, cy: ys(p.y), r: 4, class: "mark slice-mark" }, svg),
        `${p.name}: ${slice.name}=${fmt(p.x)}, ${DATA.objective.metric}=${fmt(p.y)}`);
      marks++;
    });
    done(container, marks);
  }

  function drawCurves(container) {
    const curves = DATA.curves;
    if (!curves.length) return empty(container, "No intermediate values were reported.");
    const steps = [], values = [];
    for (const c of curves) for (const [s, v] of c.points) { steps.push(s); values.push(v); }
    const xs = scale("numeric", extent(steps, 0.02), [M.l, W - M.r]);
    const ys = scale("numeric", extent(values), [H - M.b, M.t]);
    const svg = frame(container, xs, ys, "step", DATA.objective.metric);
    let marks = 0;
    curves.forEach((c, i) => {
      const colour = PALETTE[i % PALETTE.length];
      const pts = c.points.map(([s, v]) => `${xs(s)},${ys(v)}`).join(" ");
      tip(el("polyline", { points: pts, class: "curve" + (c.stopped ? " stopped" : ""), stroke: colour }, svg),
        `${c.name} (${c.phase})`);
      marks++;
      if (c.stopped && c.points.length) {
        const [s, v] = c.points[c.points.length - 1];
        const x = xs(s), y = ys(v);
        tip(el("path", { d: `M${x - 5},${y - 5}L${x + 5},${y + 5}M${x - 5},${y + 5}L${x + 5},${y - 5}`,
          class: "stop-mark" }, svg), `${c.name} stopped early at step ${s}`);
        marks++;
      }
    });
    done(container, marks);
  }

  function drawPareto(container, par, k) {
    const xName = par.metrics[0], yName = par.metrics[k];
    const pts = par.points;
    if (!pts.length) return empty(container, "No succeeded trial reported every metric.");
    const xs = scale("numeric", extent(pts.map((p) => p.values[0])), [M.l, W - M.r]);
    const ys = scale("numeric", extent(pts.map((p) => p.values[k])), [H - M.b, M.t]);
    const svg = frame(container, xs, ys, `${xName} (${par.directions[0]})`, `${yName} (${par.directions[k]})`);
    let marks = 0;
    const front = pts.filter((p) => p.front).sort((a, b) => a.values[0] - b.values[0]);
    if (front.length > 1) {
      el("polyline", { points: front.map((p) => `${xs(p.values[0])},${ys(p.values[k])}`).join(" "),
        class: "front-line" }, svg);
    }
    for (const p of pts) {
      tip(el("circle", { cx: xs(p.values[0]), cy: ys(p.values[k]), r: p.front ? 5 : 3.5,
        class: "mark " + (p.front ? "front" : "dominated") }, svg),
        `${p.name}${p.front ? " (Pareto front)" : ""}: ${xName}=${fmt(p.values[0])}, ${yName}=${fmt(p.values[k])}`);
      marks++;
    }
    done(container, marks);
  }

  function plot(id, draw) {
    const container = document.getElementById(id);
    if (!container) return;
    try { draw(container); } catch (error) { container.dataset.error = String(error && error.stack || error); }
  }

  plot("plot-history", drawHistory);
  plot("plot-parallel", drawParallel);
  plot("plot-importance", drawImportance);
  plot("plot-curves", drawCurves);
  DATA.slices.forEach((slice, i) => plot(`plot-slice-${i}`, (c) => drawSlice(c, slice)));
  if (DATA.pareto) {
    for (let k = 1; k < DATA.pareto.metrics.length; k++) {
      plot(`plot-pareto-${k}`, (c) => drawPareto(c, DATA.pareto, k));
    }
  }
  document.body.dataset.plotsDone = "true";
})();
