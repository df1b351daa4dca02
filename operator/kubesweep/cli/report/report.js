// kubesweep report: draws the plots of the embedded data with uPlot (vendored in the package,
// loaded before this script): the optimisation history, the slices, the intermediate values,
// the Pareto fronts and the lineage; parameter importance and parallel coordinates as SVG.
// No network.
// Each plot container gets data-rendered="true" and data-marks=<count> once drawn, or
// data-error=<message> if drawing failed; the report's browser test checks those.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  // W: a plot in a half-width card; WIDE: a plot that has the card's whole width.
  const W = 640, WIDE = 1320, H = 320, M = { l: 64, r: 16, t: 28, b: 44 };
  const NOT_SET = "not set";
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

  // A categorical scale: evenly spaced categories.
  function categories(domain, range) {
    const n = Math.max(domain.length, 1);
    const step = (range[1] - range[0]) / n;
    const f = (v) => range[0] + step * (domain.indexOf(String(v)) + 0.5);
    f.ticks = () => domain.map((d) => [d, f(d)]);
    return f;
  }
  // A numeric scale from an axis the data module decided: its range (linear or log) and
  // its ticks, round values with their labels.
  function axisScale(axis, range) {
    let lo = axis.min, hi = axis.max;
    if (!(hi > lo)) { lo = lo - 1; hi = hi + 1; }
    const t = axis.log ? Math.log : (x) => x;
    const tl = t(lo), th = t(hi);
    const f = (v) => range[0] + (t(v) - tl) / (th - tl) * (range[1] - range[0]);
    f.ticks = () => axis.ticks.map(([v, label]) => [label, f(v)]);
    return f;
  }

  function svgFor(container, width, height, wide) {
    // A wide plot fills its card (the view box scales with it); others keep their size.
    const attrs = { viewBox: `0 0 ${width} ${height}`, class: "chart" };
    if (wide) { attrs.width = "100%"; attrs.preserveAspectRatio = "xMinYMin meet"; }
    else { attrs.width = width; attrs.height = height; }
    const svg = el("svg", attrs);
    container.appendChild(svg);
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

  // Round ticks for a zoomed range (the data module's ticks serve the whole range):
  // steps of 1, 2 or 5 times a power of ten, about five of them; powers of ten on a log scale.
  function niceTicks(lo, hi, log) {
    if (!(hi > lo)) return [lo];
    if (log) {
      const out = [];
      for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        for (const m of [1, 2, 5]) { const v = m * 10 ** e; if (v >= lo && v <= hi) out.push(v); }
      }
      return out.length ? out : [lo, hi];
    }
    const raw = (hi - lo) / 5, power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  // What a person did to a plot (zoom, log scale) survives the redraws of a live page.
  const STATE = (window.kubesweepPlots = window.kubesweepPlots || {});

  // The optimisation history, drawn by uPlot (vendored in the package; loaded by the report
  // and the dashboard alike): a point per trial coloured by phase, the best so far as a step
  // line, a legend, the trial under the cursor named, zoom by dragging (a double-click goes
  // back to the whole range), a log scale to switch on. A drag also selects the trials inside
  // and tells the page ("plot-select", their names; null when the zoom is reset), and a click
  // on a point names its trial ("plot-pick"): the dashboard filters its table with them.
  // uPlot hooks of a plot of trials: a dragged box selects the points inside it (the
  // table filters to them), and the zoom is kept in state (null when the whole plot shows).
  function selectAndKeepZoom(container, state, points, isFull) {
    return {
      setSelect: [(u) => {
        const s = u.select;
        if (s.width < 3 && s.height < 3) return;
        const x0 = u.posToVal(s.left, "x"), x1 = u.posToVal(s.left + s.width, "x");
        const y0 = u.posToVal(s.top + s.height, "y"), y1 = u.posToVal(s.top, "y");
        const names = points.filter((p) => p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1)
          .map((p) => p.name);
        container.dispatchEvent(new CustomEvent("plot-select", { bubbles: true, detail: { names: names } }));
      }],
      setScale: [(u, key) => {
        if (key === "x" || key === "y") state[key] = isFull(key, u) ? null : [u.scales[key].min, u.scales[key].max];
      }],
    };
  }

  // On a uPlot plot of trials: a click (not the end of a drag) picks the trial
  // nearest(u, left, top) finds; a double click shows the whole plot again (the
  // zoom kept in state is forgotten) and clears the selection.
  function pickAndReset(u, container, state, full, nearest) {
    let down = null;
    u.over.addEventListener("mousedown", (e) => { down = [e.clientX, e.clientY]; });
    u.over.addEventListener("click", (e) => {
      if (down && Math.hypot(e.clientX - down[0], e.clientY - down[1]) > 3) return;
      const r = u.over.getBoundingClientRect();
      const p = nearest(u, e.clientX - r.left, e.clientY - r.top);
      if (p) container.dispatchEvent(new CustomEvent("plot-pick", { bubbles: true, detail: { name: p.name } }));
    });
    u.over.addEventListener("dblclick", () => {
      state.x = null; state.y = null;
      u.batch(() => {
        u.setScale("x", { min: full.x[0], max: full.x[1] });
        u.setScale("y", { min: full.y[0], max: full.y[1] });
      });
      container.dispatchEvent(new CustomEvent("plot-select", { bubbles: true, detail: { names: null } }));
    });
  }

  function drawHistory(container) {
    const h = DATA.history;
    if (!h.points.length) return empty(container, "No trial reported the objective yet.");
    const metric = DATA.objective.metric;
    const state = (STATE[container.id] = STATE[container.id] || { log: false, x: null, y: null });
    const positive = h.points.every((p) => p.y > 0);
    if (!positive) state.log = false;
    const xs = [...new Set(h.points.map((p) => p.x))].sort((a, b) => a - b);
    const at = new Map(h.points.map((p) => [p.x, p]));
    const series = h.phases.map((phase) => xs.map((x) => (at.get(x).phase === phase ? at.get(x).y : null)));
    let best = null, bi = 0;
    const bestLine = xs.map((x) => {
      while (bi < h.best.length && h.best[bi][0] <= x) best = h.best[bi++][1];
      return best;
    });
    const ys = h.points.map((p) => p.y);
    const full = {
      x: [h.x.min, h.x.max],
      y: state.log ? [Math.min(...ys) / 1.25, Math.max(...ys) * 1.25] : [h.y.min, h.y.max],
    };
    const isFull = (key, u) => {
      const s = u.scales[key];
      return s.min === full[key][0] && s.max === full[key][1];
    };
    function axis(key, dataAxis, label) {
      return {
        label: label, labelSize: 18, size: key === "y" ? 56 : 40, stroke: "#6b7280",
        grid: { stroke: "#e5e7eb", width: 1 }, ticks: { stroke: "#e5e7eb", width: 1 },
        splits: (u, i, lo, hi) => (isFull(key, u) && !(key === "y" && state.log)
          ? dataAxis.ticks.map((t) => t[0]) : niceTicks(lo, hi, key === "y" && state.log)),
        values: (u, splits) => {
          const labels = isFull(key, u) && !(key === "y" && state.log)
            ? dataAxis.ticks.map((t) => t[1]) : splits.map((v) => fmt(v));
          container.dataset[key + "Ticks"] = JSON.stringify(labels);
          return labels;
        },
      };
    }
    const dot = (colour) => ({ show: true, size: 8, width: 1, stroke: "#fff", fill: colour });
    const opts = {
      width: W, height: H,
      scales: {
        x: { time: false, auto: false, range: (u, lo, hi) => [lo, hi] },
        y: { auto: false, distr: state.log ? 3 : 1, log: 10, range: (u, lo, hi) => [lo, hi] },
      },
      axes: [axis("x", h.x, "trial index"), axis("y", h.y, metric + (state.log ? " (log)" : ""))],
      series: [
        { label: "trial" },
        ...h.phases.map((phase) => ({ label: phase, stroke: PHASE_COLOURS[phase] || "#333",
          paths: () => null, points: dot(PHASE_COLOURS[phase] || "#333"), value: (u, v) => fmt(v) })),
        { label: "best so far", stroke: "#16a34a", width: 2, points: { show: false },
          paths: uPlot.paths.stepped({ align: 1 }), value: (u, v) => fmt(v) },
      ],
      cursor: { drag: { x: true, y: true, uni: 30 }, points: { show: false }, bind: { dblclick: () => null } },
      legend: { show: true, live: true },
    };
    const tipBox = document.createElement("div");
    tipBox.className = "plot-tip";
    function nearest(u, left, top) {
      let found = null, distance = 12;
      for (const p of h.points) {
        const d = Math.hypot(u.valToPos(p.x, "x") - left, u.valToPos(p.y, "y") - top);
        if (d < distance) { distance = d; found = p; }
      }
      return found;
    }
    opts.hooks = {
      setCursor: [(u) => {
        const p = u.cursor.left >= 0 ? nearest(u, u.cursor.left, u.cursor.top) : null;
        container.dataset.hover = p ? p.name : "";
        tipBox.style.display = p ? "block" : "none";
        if (p) {
          tipBox.textContent = `${p.name} (${p.phase}): ${metric}=${fmt(p.y)}`;
          tipBox.style.left = `${u.over.offsetLeft + u.valToPos(p.x, "x") + 10}px`;
          tipBox.style.top = `${u.over.offsetTop + u.valToPos(p.y, "y") - 10}px`;
        }
      }],
      ...selectAndKeepZoom(container, state, h.points, isFull),
    };
    const toggle = document.createElement("label");
    toggle.className = "plot-toggle";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "log-toggle";
    box.checked = state.log;
    box.disabled = !positive;
    toggle.title = positive ? "a logarithmic objective axis" : "a log scale needs every value above 0";
    toggle.append(box, " log scale");
    box.addEventListener("change", () => {
      state.log = box.checked; state.y = null;
      container.replaceChildren();
      drawHistory(container);
    });
    container.style.position = "relative";
    container.append(toggle);
    const u = new uPlot(opts, [xs, ...series, bestLine], container);
    const start = { x: state.x || full.x, y: state.y || full.y };
    u.batch(() => {
      u.setScale("x", { min: start.x[0], max: start.x[1] });
      u.setScale("y", { min: start.y[0], max: start.y[1] });
    });
    container.append(tipBox);
    container.uplot = u;
    pickAndReset(u, container, state, full, nearest);
    done(container, h.points.length + (h.best.length ? 1 : 0));
  }

  function drawParallel(container) {
    const par = DATA.parallel;
    if (!par.rows.length) return empty(container, "No trial reported the objective yet.");
    const dims = par.dimensions.concat([{ name: DATA.objective.metric, kind: "numeric",
      axis: par.objective_axis, optional: false }]);
    const width = Math.max(WIDE, 140 * dims.length);
    const svg = svgFor(container, width, H, true);
    const step = (width - M.l - 70) / Math.max(dims.length - 1, 1);
    const axes = dims.map((d, i) => {
      const x = M.l + step * i;
      // A conditional parameter keeps a slot under its axis for the trials without it.
      const bottom = d.optional ? H - M.b - 26 : H - M.b;
      const s = d.kind === "categorical"
        ? categories(d.values, [bottom, M.t])
        : axisScale(d.axis, [bottom, M.t]);
      el("line", { x1: x, x2: x, y1: M.t, y2: bottom, class: "axis" }, svg);
      for (const [label, y] of s.ticks()) {
        el("text", { x: x + 4, y: y + 3, class: "tick" }, svg).textContent = label;
      }
      if (d.optional) {
        el("circle", { cx: x, cy: H - M.b, r: 3, class: "not-set" }, svg);
        el("text", { x: x + 6, y: H - M.b + 3, class: "tick not-set-label" }, svg).textContent = NOT_SET;
      }
      el("text", { x: x, y: H - 12, class: "label", "text-anchor": "middle" }, svg).textContent = d.name;
      return { name: d.name, x: x, s: s, unset: d.optional ? H - M.b : null, top: M.t, bottom: H - M.b };
    });
    const objs = par.rows.map((r) => r.objective);
    const lo = Math.min(...objs), hi = Math.max(...objs);
    const better = DATA.objective.direction === "minimize" ? (v) => (hi - v) : (v) => (v - lo);
    let marks = 0;
    const lines = [];
    for (const row of par.rows) {
      const values = row.values.concat([row.objective]);
      const pts = [];
      // Where the line crosses each axis (null: it does not), for the brushes.
      const ys = values.map((v, i) => (v !== null && v !== undefined ? axes[i].s(v) : axes[i].unset));
      ys.forEach((y, i) => { if (y !== null) pts.push(`${axes[i].x},${y}`); });
      const q = hi > lo ? better(row.objective) / (hi - lo) : 1;
      const colour = `hsl(${Math.round(10 + 210 * q)}, 70%, 45%)`;
      const node = tip(el("polyline", { points: pts.join(" "), class: "pc-line", stroke: colour }, svg),
        `${row.name}: ${DATA.objective.metric}=${fmt(row.objective)}`);
      lines.push({ name: row.name, ys: ys, node: node });
      marks++;
    }
    brushing(container, svg, axes, lines);
    done(container, marks);
  }

  // Brushes on parallel coordinates (uPlot has no such plot, so the SVG gets them): a drag
  // along an axis keeps the lines crossing it inside the range, the others dimmed, and tells
  // the page which trials pass every brush ("plot-select"); a click on an axis removes its
  // brush, a double-click every brush. The brushes stay while a live page redraws.
  function brushing(container, svg, axes, lines) {
    const state = (STATE[container.id] = STATE[container.id] || { brushes: {} });
    const layer = el("g", { class: "brushes" }, svg);
    const toView = (e) => {
      const pt = svg.createSVGPoint();
      pt.x = e.clientX; pt.y = e.clientY;
      return pt.matrixTransform(svg.getScreenCTM().inverse());
    };
    function kept() {
      const active = axes.map((a, i) => [i, state.brushes[a.name]]).filter(([, b]) => b);
      return lines.filter((l) => active.every(([i, [y0, y1]]) => l.ys[i] !== null && l.ys[i] >= y0 && l.ys[i] <= y1));
    }
    function paint() {
      layer.replaceChildren();
      axes.forEach((a) => {
        const b = state.brushes[a.name];
        if (b) el("rect", { x: a.x - 8, y: b[0], width: 16, height: b[1] - b[0], class: "brush" }, layer);
      });
      const inside = new Set(kept().map((l) => l.name));
      const any = Object.keys(state.brushes).length > 0;
      for (const l of lines) l.node.classList.toggle("dimmed", any && !inside.has(l.name));
      container.dataset.brushed = any ? String(inside.size) : "";
      return any ? [...inside] : null;
    }
    function tell() {
      container.dispatchEvent(new CustomEvent("plot-select", { bubbles: true, detail: { names: paint() } }));
    }
    let drag = null, brushed = false;
    // Pointer capture keeps the drag's events on the plot wherever the pointer goes, with no
    // listener on the window (a live page redraws the plot at every change).
    svg.addEventListener("pointerdown", (e) => {
      const p = toView(e);
      const axis = axes.find((a) => Math.abs(a.x - p.x) <= 12 && p.y >= a.top - 6 && p.y <= a.bottom + 6);
      if (!axis) return;
      e.preventDefault();
      svg.setPointerCapture(e.pointerId);
      drag = { axis: axis, from: p.y };
    });
    svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const y = toView(e).y;
      state.brushes[drag.axis.name] = [Math.min(drag.from, y), Math.max(drag.from, y)];
      paint();
    });
    svg.addEventListener("pointerup", (e) => {
      if (!drag) return;
      const y = toView(e).y;
      if (Math.abs(y - drag.from) < 3) delete state.brushes[drag.axis.name];
      else state.brushes[drag.axis.name] = [Math.min(drag.from, y), Math.max(drag.from, y)];
      drag = null;
      brushed = true;
      tell();
    });
    // The click that ends a brush selects no single line.
    svg.addEventListener("click", (e) => { if (brushed) { brushed = false; e.stopPropagation(); } }, true);
    svg.addEventListener("dblclick", () => { state.brushes = {}; tell(); });
    paint();
    container.axisPosition = (name, value) => {
      const a = axes.find((x) => x.name === name);
      return [a.x, a.s(value)];
    };
  }

  function drawImportance(container) {
    const items = DATA.importance;
    if (!items.length) return empty(container, "Too few succeeded trials (at least 4 with different objectives) for importance.");
    const rowH = 28, height = M.t + M.b + rowH * items.length;
    const svg = el("svg", { viewBox: `0 0 ${W} ${height}`, width: W, height: height, class: "chart" });
    container.appendChild(svg);
    const left = 140, xs = axisScale({ min: 0, max: 1, log: false, ticks: [] }, [left, W - M.r - 40]);
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

  // A scatter plot drawn by uPlot, shared by the slices, the Pareto fronts and the lineage:
  // points in groups (a series each, so the legend names them and the cursor's values follow),
  // an optional line through some points (the front), optional links from each point to its
  // parent's (the lineage, drawn on uPlot's canvas after its own drawing), a tooltip naming
  // the trial under the pointer, zoom by dragging that also selects the trials inside
  // ("plot-select"; a double-click goes back and clears it), a click naming a trial
  // ("plot-pick"), and a log scale to switch on per axis where every value is above 0.
  // cfg: {points: [{x, y, name, group, parent, tip}], groups: [{key, label, colour, size,
  //         line: joined by a line (a curve; at most one point per x), dash, dots}],
  //       x, y: {label, axis (the data module's), log (drawn log), categories (x only)},
  //       line: {label, colour, names}, links: bool, crosses: [[x, y]], legend: false for none}
  function drawScatter(container, cfg) {
    const state = (STATE[container.id] = STATE[container.id] || { logX: null, logY: null, x: null, y: null });
    const pts = cfg.points.slice().sort((a, b) => a.x - b.x);
    const positive = (k) => pts.every((p) => p[k] > 0) && !(k === "x" && cfg.x.categories);
    const logOf = (k) => {
      const key = k === "x" ? "logX" : "logY";
      if (state[key] === null) state[key] = !!cfg[k].log;
      if (!positive(k)) state[key] = false;
      return state[key];
    };
    const log = { x: logOf("x"), y: logOf("y") };
    const span = (k) => {
      const values = pts.map((p) => p[k]);
      const a = cfg[k].axis;
      if (cfg[k].categories) return [-0.5, cfg[k].categories.length - 0.5];
      if (log[k] && !cfg[k].log) return [Math.min(...values) / 1.25, Math.max(...values) * 1.25];
      return a.max > a.min ? [a.min, a.max] : [a.min - 1, a.max + 1];
    };
    const full = { x: span("x"), y: span("y") };
    const isFull = (key, u) => u.scales[key].min === full[key][0] && u.scales[key].max === full[key][1];
    function axis(key) {
      const c = cfg[key];
      const dataTicks = c.categories ? c.categories.map((name, i) => [i, name]) : c.axis.ticks;
      return {
        label: c.label + (log[key] && !c.log ? " (log)" : ""), labelSize: 18, size: key === "y" ? 56 : 40,
        stroke: "#6b7280", grid: { stroke: "#e5e7eb", width: 1 }, ticks: { stroke: "#e5e7eb", width: 1 },
        splits: (u, i, lo, hi) => (c.categories || (isFull(key, u) && log[key] === !!c.log)
          ? dataTicks.map((t) => t[0]).filter((v) => v >= lo && v <= hi) : niceTicks(lo, hi, log[key])),
        values: (u, splits) => {
          const labels = c.categories || (isFull(key, u) && log[key] === !!c.log)
            ? splits.map((v) => (dataTicks.find((t) => t[0] === v) || [v, fmt(v)])[1]) : splits.map((v) => fmt(v));
          container.dataset[key + "Ticks"] = JSON.stringify(labels);
          return labels;
        },
      };
    }
    const present = new Set(pts.map((p) => p.group));
    const groups = cfg.groups.filter((g) => present.has(g.key));
    // Curves (a thousand of them, at 10,000 trials) are drawn on the canvas by the draw hook
    // below: as uPlot series they would each cost a series' bookkeeping at every redraw. uPlot
    // keeps the axes, scales, zoom and cursor, over one empty series. Scattered points are a
    // series per group, a column per point (two points of a group may share an x).
    const curves = groups.some((g) => g.line);
    const xs = curves ? [...new Set(pts.map((p) => p.x))] : pts.map((p) => p.x);
    const series = curves ? [xs.map(() => null)] : groups.map((g) => pts.map((p) => (p.group === g.key ? p.y : null)));
    const paths = curves ? groups.map((g) => ({ group: g, points: pts.filter((p) => p.group === g.key) })) : [];
    const lineNames = cfg.line ? new Set(cfg.line.names) : null;
    const data = [xs, ...series];
    const opts = {
      width: cfg.width || W, height: H,
      scales: {
        x: { time: false, auto: false, distr: log.x ? 3 : 1, log: 10, range: (u, lo, hi) => [lo, hi] },
        y: { auto: false, distr: log.y ? 3 : 1, log: 10, range: (u, lo, hi) => [lo, hi] },
      },
      axes: [axis("x"), axis("y")],
      series: [{ label: cfg.x.label, value: (u, v) => fmt(v) },
        ...(curves ? [{ label: cfg.y.label, paths: () => null, points: { show: false } }]
          : groups.map((g) => ({ label: g.label, stroke: g.colour, paths: () => null,
            points: { show: true, size: g.size || 7, width: 1, stroke: "#fff", fill: g.colour },
            value: (u, v) => fmt(v) })))],
      cursor: { drag: { x: true, y: true, uni: 30 }, points: { show: false }, bind: { dblclick: () => null } },
      legend: { show: cfg.legend !== false, live: true },
    };
    if (lineNames && lineNames.size > 1) {
      data.push(pts.map((p) => (lineNames.has(p.name) ? p.y : null)));
      opts.series.push({ label: cfg.line.label, stroke: cfg.line.colour, width: 1.5, dash: [4, 3],
        spanGaps: true, points: { show: false }, value: (u, v) => fmt(v) });
    }
    const byName = new Map(pts.map((p) => [p.name, p]));
    const links = cfg.links ? pts.filter((p) => p.parent && byName.has(p.parent)) : [];
    const tipBox = document.createElement("div");
    tipBox.className = "plot-tip";
    function nearest(u, left, top) {
      let found = null, distance = 12;
      for (const p of pts) {
        const d = Math.hypot(u.valToPos(p.x, "x") - left, u.valToPos(p.y, "y") - top);
        if (d < distance) { distance = d; found = p; }
      }
      return found;
    }
    opts.hooks = {
      draw: [(u) => {
        const ratio = window.devicePixelRatio || 1;
        if (paths.length) {
          const ctx = u.ctx;
          ctx.save();
          ctx.beginPath();
          ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
          ctx.clip();
          ctx.lineWidth = 1.5 * ratio;
          for (const { group, points } of paths) {
            ctx.strokeStyle = group.colour;
            ctx.fillStyle = group.colour;
            ctx.setLineDash((group.dash || []).map((d) => d * ratio));
            ctx.beginPath();
            points.forEach((p, i) => {
              const x = u.valToPos(p.x, "x", true), y = u.valToPos(p.y, "y", true);
              if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
            });
            ctx.stroke();
            if (group.dots) {
              for (const p of points) {
                ctx.beginPath();
                ctx.arc(u.valToPos(p.x, "x", true), u.valToPos(p.y, "y", true), 3.5 * ratio, 0, 2 * Math.PI);
                ctx.fill();
              }
            }
          }
          ctx.restore();
        }
        if (cfg.crosses && cfg.crosses.length) {
          const ctx = u.ctx, r = 5 * ratio;
          ctx.save();
          ctx.strokeStyle = "#dc2626";
          ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
          ctx.beginPath();
          for (const [x, y] of cfg.crosses) {
            const cx = u.valToPos(x, "x", true), cy = u.valToPos(y, "y", true);
            ctx.moveTo(cx - r, cy - r); ctx.lineTo(cx + r, cy + r);
            ctx.moveTo(cx - r, cy + r); ctx.lineTo(cx + r, cy - r);
          }
          ctx.stroke();
          ctx.restore();
        }
        if (!links.length) return;
        const ctx = u.ctx;
        ctx.save();
        ctx.beginPath();
        ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
        ctx.clip();
        ctx.strokeStyle = "rgba(107,114,128,0.6)";
        ctx.lineWidth = 1 * (window.devicePixelRatio || 1);
        ctx.beginPath();
        for (const p of links) {
          const parent = byName.get(p.parent);
          ctx.moveTo(u.valToPos(parent.x, "x", true), u.valToPos(parent.y, "y", true));
          ctx.lineTo(u.valToPos(p.x, "x", true), u.valToPos(p.y, "y", true));
        }
        ctx.stroke();
        ctx.restore();
      }],
      setCursor: [(u) => {
        const p = u.cursor.left >= 0 ? nearest(u, u.cursor.left, u.cursor.top) : null;
        container.dataset.hover = p ? p.name : "";
        tipBox.style.display = p ? "block" : "none";
        if (p) {
          tipBox.textContent = p.tip;
          tipBox.style.left = `${u.over.offsetLeft + u.valToPos(p.x, "x") + 10}px`;
          tipBox.style.top = `${u.over.offsetTop + u.valToPos(p.y, "y") - 10}px`;
        }
      }],
      ...selectAndKeepZoom(container, state, pts, isFull),
    };
    container.style.position = "relative";
    const toggles = document.createElement("div");
    toggles.className = "plot-toggle";
    for (const k of ["x", "y"]) {
      if (cfg[k].categories) continue;
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.className = `log-toggle log-${k}`;
      box.checked = log[k];
      box.disabled = !positive(k);
      label.title = positive(k) ? `a logarithmic ${k} axis` : "a log scale needs every value above 0";
      label.append(box, ` log ${k} `);
      box.addEventListener("change", () => {
        state[k === "x" ? "logX" : "logY"] = box.checked; state.x = null; state.y = null;
        container.replaceChildren(container.firstChild && container.firstChild.tagName === "H3" ? container.firstChild : "");
        drawScatter(container, cfg);
      });
      toggles.append(label);
    }
    container.append(toggles);
    const u = new uPlot(opts, data, container);
    const start = { x: state.x || full.x, y: state.y || full.y };
    u.batch(() => {
      u.setScale("x", { min: start.x[0], max: start.x[1] });
      u.setScale("y", { min: start.y[0], max: start.y[1] });
    });
    container.append(tipBox);
    container.uplot = u;
    container.points = pts;
    // The axes' names are drawn on the canvas: recorded here for whoever reads the page.
    container.dataset.xLabel = cfg.x.label;
    container.dataset.yLabel = cfg.y.label;
    pickAndReset(u, container, state, full, nearest);
    done(container, (curves ? groups.length : pts.length) + links.length + (cfg.crosses || []).length);
  }

  function drawSlice(container, slice) {
    if (!slice.points.length) return empty(container, `No objective values for ${slice.name} yet.`);
    const metric = DATA.objective.metric;
    const categorical = slice.kind === "categorical";
    // Trials on one category spread a little sideways, by their order, to be told apart.
    const points = slice.points.map((p, i) => ({
      x: categorical ? slice.values.indexOf(String(p.x)) + ((i * 37) % 11 - 5) / 40 : p.x,
      y: p.y, name: p.name, group: "trial",
      tip: `${p.name}: ${slice.name}=${fmt(p.x)}, ${metric}=${fmt(p.y)}`,
    }));
    drawScatter(container, {
      points: points, groups: [{ key: "trial", label: "trial", colour: "#2563eb" }],
      x: { label: slice.name, axis: slice.x, log: !!slice.log, categories: categorical ? slice.values : null },
      y: { label: metric, axis: slice.y, log: false },
    });
  }

  function drawLineage(container) {
    const h = DATA.history;
    const metric = DATA.objective.metric;
    const points = h.points.map((p) => ({ x: p.x, y: p.y, name: p.name, group: p.phase, parent: p.parent,
      tip: `${p.name} (${p.phase}): ${metric}=${fmt(p.y)}${p.parent ? `, continues ${p.parent}` : ""}` }));
    drawScatter(container, {
      points: points, links: true,
      groups: h.phases.map((phase) => ({ key: phase, label: phase, colour: PHASE_COLOURS[phase] || "#333" })),
      x: { label: "trial index", axis: h.x, log: false }, y: { label: metric, axis: h.y, log: false },
      width: WIDE,
    });
  }

  // Intermediate values: a line per trial (a dot for a trial that reported one value),
  // dashed and ending in a red cross when it was stopped early; uPlot's legend would list
  // every trial, so a legend of the three kinds of mark is drawn above the plot instead.
  function drawCurves(container) {
    const data = DATA.curves;
    const curves = data.series;
    if (!curves.length) return empty(container, "No intermediate values were reported.");
    const metric = DATA.objective.metric;
    const items = [["line", "ran to its end (one colour per trial)"]];
    if (curves.some((c) => c.points.length === 1)) items.push(["dot", "one value reported"]);
    if (curves.some((c) => c.stopped)) items.push(["stopped", "stopped early"]);
    const key = document.createElement("div");
    key.className = "curve-legend";
    for (const [kind, label] of items) {
      const item = document.createElement("span");
      item.className = `curve-key curve-key-${kind}`;
      item.textContent = label;
      key.append(item);
    }
    container.append(key);
    const points = [];
    curves.forEach((c) => c.points.forEach(([step, value]) => points.push({ x: step, y: value,
      name: c.name, group: c.name, tip: `${c.name} (${c.phase}): ${metric}=${fmt(value)} at step ${step}` })));
    drawScatter(container, {
      points: points, legend: false, width: WIDE,
      groups: curves.map((c, i) => ({ key: c.name, label: c.name, colour: PALETTE[i % PALETTE.length],
        line: true, dash: c.stopped ? [4, 3] : undefined, dots: c.points.length === 1 })),
      crosses: curves.filter((c) => c.stopped && c.points.length).map((c) => c.points[c.points.length - 1]),
      x: { label: "step", axis: data.x, log: false }, y: { label: metric, axis: data.y, log: false },
    });
  }

  function drawPareto(container, par, k) {
    const xName = par.metrics[0], yName = par.metrics[k];
    if (!par.points.length) return empty(container, "No succeeded trial reported every metric.");
    const group = (p) => (p.front ? "front" : p.feasible === false ? "infeasible" : "dominated");
    const points = par.points.map((p) => ({
      x: p.values[0], y: p.values[k], name: p.name, group: group(p),
      tip: `${p.name}${p.front ? " (Pareto front)" : p.feasible === false ? " (infeasible)" : ""}: ` +
        `${xName}=${fmt(p.values[0])}, ${yName}=${fmt(p.values[k])}`,
    }));
    drawScatter(container, {
      points: points,
      groups: [{ key: "front", label: "Pareto front", colour: "#dc2626", size: 10 },
        { key: "dominated", label: "dominated", colour: "#9ca3af" },
        { key: "infeasible", label: "infeasible", colour: "#f59e0b" }],
      line: { label: "front", colour: "#dc2626", names: par.points.filter((p) => p.front).map((p) => p.name) },
      x: { label: `${xName} (${par.directions[0]})`, axis: par.axes[0], log: false },
      y: { label: `${yName} (${par.directions[k]})`, axis: par.axes[k], log: false },
    });
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
  if (DATA.history.points.some((p) => p.parent)) plot("plot-lineage", drawLineage);
  if (DATA.pareto) {
    for (let k = 1; k < DATA.pareto.metrics.length; k++) {
      plot(`plot-pareto-${k}`, (c) => drawPareto(c, DATA.pareto, k));
    }
  }
  document.body.dataset.plotsDone = "true";
})();
