// kubesweep dashboard: fetches the JSON of the page it is on, draws it, and redraws it when
// the server's event stream says the runs changed. The experiment page's plots are drawn by
// the report's own script (report.js), run again over new data at every update.
(function () {
  "use strict";
  const body = document.body;
  const BASE = body.dataset.base;
  const PAGE = body.dataset.page;
  const EXPERIMENT = body.dataset.experiment;
  const TRIAL = body.dataset.trial;
  const main = document.getElementById("main");
  let reportScript = null;

  function h(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const key in attrs || {}) {
      if (key === "text") node.textContent = attrs[key];
      else node.setAttribute(key, attrs[key]);
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v !== "number") return String(v);
    return String(+v.toPrecision(6));
  }
  function age(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    const s = Math.max(0, Math.round(seconds));
    if (s < 120) return s + "s";
    if (s < 7200) return Math.round(s / 60) + "m";
    if (s < 172800) return Math.round(s / 3600) + "h";
    return Math.round(s / 86400) + "d";
  }
  function params(p) { return Object.keys(p).map((k) => `${k}=${fmt(p[k])}`).join(", "); }
  function expUrl(name) { return `${BASE}experiments/${encodeURIComponent(name)}`; }
  function trialUrl(exp, trial) { return `${expUrl(exp)}/trials/${encodeURIComponent(trial)}`; }
  async function getJson(path) {
    const response = await fetch(BASE + path, { cache: "no-store" });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }
  function progress(row) {
    const share = row.total ? Math.min(1, row.done / row.total) : 0;
    const bar = h("span", { class: "progress" }, [h("span", { style: `width:${(share * 100).toFixed(1)}%` })]);
    return h("span", { class: "progress-cell", "data-done": String(row.done), "data-total": String(row.total) },
      [bar, h("span", { class: "progress-text", text: `${row.done} / ${row.total}` })]);
  }
  // The state of the event stream, shown in a badge that redraws keep.
  let liveState = ["live off", "connecting"];
  function liveBadge() { return h("span", { id: "live", class: liveState[0], text: liveState[1] }); }
  function setLive(state) {
    liveState = state;
    const badge = document.getElementById("live");
    if (badge) { badge.className = state[0]; badge.textContent = state[1]; }
  }
  function follow(query, onUpdate) {
    const source = new EventSource(`${BASE}api/events${query}`);
    source.addEventListener("update", (event) => {
      setLive(["live", "live"]);
      body.dataset.updates = String(Number(body.dataset.updates || 0) + 1);
      onUpdate(JSON.parse(event.data));
    });
    source.onerror = () => setLive(["live off", "reconnecting"]);
  }
  function fail(error) {
    main.replaceChildren(h("p", { class: "empty", id: "error", text: String(error) }));
  }

  // -- experiments ------------------------------------------------------------------------
  function drawExperiments(rows) {
    const table = h("table", { id: "experiments" }, [h("tr", {}, ["experiment", "phase", "progress",
      "best", "age"].map((t) => h("th", { text: t })))]);
    for (const row of rows) {
      const best = row.best ? `${fmt(row.best.objective)} (${row.best.name})` : "-";
      table.appendChild(h("tr", { "data-name": row.name }, [
        h("td", {}, [h("a", { href: expUrl(row.name), text: row.name })]),
        h("td", { class: "phase", text: row.phase }),
        h("td", {}, [progress(row)]),
        h("td", { class: "best", text: best }),
        h("td", { text: age(row.age_seconds) }),
      ]));
    }
    const content = rows.length ? table : h("p", { class: "empty",
      text: "No local runs here yet: start one with kubesweep run." });
    main.replaceChildren(h("h1", { text: "Experiments " }, [liveBadge()]), content);
  }

  // -- one experiment ---------------------------------------------------------------------
  const filters = { text: "", phase: "", names: null };
  let current = null;

  function plotBox(id, title) { return h("div", { class: "plot", id: id }, [h("h3", { text: title })]); }
  function layout(report) {
    const metric = report.objective.metric;
    const nodes = [
      h("h2", { text: "Optimisation history" }),
      h("div", { class: "grid2" }, [
        plotBox("plot-history", `${metric} per trial, and the best so far (green)`),
        plotBox("plot-importance", "Parameter importance (random-forest fANOVA, main effects)")]),
      report.drawn && report.drawn.of > report.drawn.trials ? h("p", { id: "drawn", class: "meta",
        text: `The plots below draw ${report.drawn.trials} of the ${report.drawn.of} trials: the best and an ` +
          "even sample of the others (the history above and the table draw every trial)." }) : null,
      h("h2", { text: "Parallel coordinates" }),
      plotBox("plot-parallel", "Each line a trial; colour: better objective is bluer"),
      h("h2", { text: "Slices" }),
      h("div", { class: "grid2" }, report.slices.map((s, i) =>
        plotBox(`plot-slice-${i}`, `${s.name}${s.log ? " (log)" : ""}`))),
      h("h2", { text: "Intermediate values" }),
      plotBox("plot-curves", `${metric} per step; dashed with a red cross: stopped early`),
    ];
    if (report.pareto) {
      const names = report.pareto.metrics;
      nodes.push(h("h2", { text: "Pareto front" }), h("p", { class: "meta", text: "Red: the feasible " +
        "trials no other trial beats on every objective, in the directions the spec gives." }),
      h("div", { class: "grid2" },
        names.slice(1).map((n, k) => plotBox(`plot-pareto-${k + 1}`, `${names[0]} vs ${n}`))));
    }
    if (report.history.points.some((p) => p.parent)) {
      nodes.push(h("h2", { text: "Lineage" }), plotBox("plot-lineage",
        "Each trial linked to the trial whose training it continues (promotions, pbt)"));
    }
    return h("div", { id: "plots" }, nodes);
  }
  // Draws the report's plots into their boxes: laid out here, or (a trial's page) already there.
  async function drawPlots(report, laidOut) {
    if (reportScript === null) {
      const response = await fetch(`${BASE}static/report.js`);
      reportScript = await response.text();
    }
    document.getElementById("report-data").textContent = JSON.stringify(report);
    if (!laidOut) {
      const old = document.getElementById("plots");
      const fresh = layout(report);
      if (old) old.replaceWith(fresh);
      else main.insertBefore(fresh, document.getElementById("trials-title"));
    }
    // The report's script draws into the plot boxes from the data element, as in a report file.
    new Function(reportScript)();
  }
  // The table holds at most ROWS trials that pass the filters (10,000 rows of DOM make every
  // redraw slow); the filters run over the data, so they see every trial.
  const ROWS = 500;
  // A row's text the filter looks in, made when first looked in and kept while the row is the
  // same object: a delta leaves unchanged rows as they were (100,000 texts take a second).
  const searchText = new WeakMap();
  function search(t) {
    let text = searchText.get(t);
    if (text === undefined) {
      text = `${t.name} ${t.phase} ${params(t.values)} ${t.reason || ""} ${t.parent || ""}`.toLowerCase();
      searchText.set(t, text);
    }
    return text;
  }
  function matches(t) {
    const text = filters.text.toLowerCase();
    return (!filters.phase || t.phase === filters.phase) && (!text || search(t).includes(text))
      && (!filters.names || filters.names.has(t.name));
  }
  function applyFilters() {
    if (!current) return;
    const kept = current.trials.filter(matches);
    const table = document.getElementById("trials");
    const fresh = trialTable(current, kept.slice(0, ROWS));
    if (table) table.replaceWith(fresh); else main.append(fresh);
    const more = kept.length > ROWS ? ` (the first ${ROWS} listed; narrow the filter for the others)` : "";
    const selected = filters.names ? ", selected in the plot (double-click it to clear)" : "";
    document.getElementById("shown").textContent =
      `${kept.length} of ${current.trials.length} trials shown${selected}${more}`;
  }
  function trialTable(view, trials) {
    const names = view.report.parallel.dimensions.map((d) => d.name);
    const metric = view.experiment.metric;
    // A parent column where a trial continues another's training (promotions, pbt).
    const lineage = view.trials.some((t) => t.parent);
    const table = h("table", { id: "trials" }, [h("tr", {}, ["#", "trial", "phase", metric, ...names,
      lineage ? "parent" : null, "reason"].filter((t) => t !== null).map((t) => h("th", { text: t })))]);
    for (const t of trials) {
      const parent = !lineage ? null : h("td", { class: "parent" }, t.parent
        ? [h("a", { href: trialUrl(view.experiment.name, t.parent), text: t.parent })] : []);
      const cells = names.map((n) => h("td", { class: "num", text: fmt(n in t.values ? t.values[n] : null) }));
      table.appendChild(h("tr", { "data-name": t.name, "data-phase": t.phase,
        "data-objective": t.objective === null ? "" : String(t.objective) }, [
        h("td", { class: "num", text: String(t.index) }),
        h("td", {}, [h("a", { href: trialUrl(view.experiment.name, t.name), text: t.name })]),
        h("td", { text: t.phase }),
        h("td", { class: "num objective", text: fmt(t.objective) }),
        ...cells,
        parent,
        h("td", { text: t.reason || "" }),
      ]));
    }
    return table;
  }
  function filterBar(view) {
    const phases = Object.keys(view.report.summary.counts);
    const text = h("input", { id: "filter-text", type: "search", placeholder: "filter: name, value, reason" });
    text.value = filters.text;
    text.addEventListener("input", () => { filters.text = text.value; applyFilters(); });
    const phase = h("select", { id: "filter-phase" }, [h("option", { value: "", text: "every phase" }),
      ...phases.map((p) => h("option", { value: p, text: p }))]);
    phase.value = filters.phase;
    phase.addEventListener("change", () => { filters.phase = phase.value; applyFilters(); });
    return h("div", { class: "filters" }, [text, phase, h("span", { id: "shown", class: "meta" })]);
  }
  function header(row) {
    const best = row.best ? `best ${row.metric} ${fmt(row.best.objective)} (${row.best.name})` : "no best trial yet";
    return h("div", { id: "header" }, [
      h("h1", { text: `${row.name} ` }, [liveBadge()]),
      h("p", { class: "meta" }, [h("span", { id: "phase", text: row.phase }),
        h("span", { text: ` · ${row.direction} ${row.metric} · ` }), progress(row),
        h("span", { text: ` · ${row.running} running · ` }), h("span", { id: "best", text: best })]),
      h("p", { class: "meta", text: row.message }),
    ]);
  }
  async function drawExperiment(view) {
    current = view;
    const oldHeader = document.getElementById("header");
    if (oldHeader) oldHeader.replaceWith(header(view.experiment));
    else main.replaceChildren(header(view.experiment));
    await drawPlots(view.report);
    // The filters stay as they are (a person may be typing in them); the table is redrawn.
    if (!document.getElementById("filters")) {
      const bar = filterBar(view);
      bar.id = "filters";
      main.append(h("h2", { id: "trials-title", text: "Trials" }), bar);
    }
    applyFilters();
    body.dataset.drawn = String(Number(body.dataset.drawn || 0) + 1);
  }

  // -- one trial --------------------------------------------------------------------------
  async function drawTrial(t) {
    const rows = (obj) => h("table", {}, Object.keys(obj).map((k) =>
      h("tr", {}, [h("th", { text: k }), h("td", { class: "num", text: fmt(obj[k]) })])));
    const ended = t.reason ? `${t.reason}${t.message ? ": " + t.message : ""}` : (t.message || "-");
    const link = (name) => h("a", { href: trialUrl(t.experiment, name), text: name });
    // Its lineage: the trials whose training it continues, oldest first, and those continuing it.
    const lineage = t.parent ? h("p", { id: "lineage" }, [h("b", { text: "Continues: " }),
      ...t.lineage.flatMap((a, i) => [i ? h("span", { text: " → " }) : null, link(a.name),
        a.perturbation ? h("span", { class: "meta", text: ` (${a.perturbation})` }) : null]),
      h("span", { text: ` → ${t.name}` }),
      t.perturbation ? h("span", { class: "meta", text: ` (${t.perturbation})` }) : null]) : null;
    const children = t.children.length ? h("p", { id: "children" }, [h("b", { text: "Continued by: " }),
      ...t.children.flatMap((c, i) => [i ? h("span", { text: ", " }) : null, link(c)])]) : null;
    main.replaceChildren(...[
      h("h1", { text: `${t.name} ` }, [liveBadge()]),
      h("p", { class: "meta" }, [h("span", { id: "phase", text: t.phase }),
        h("span", { text: ` · ${t.metric} ${fmt(t.objective)} · attempts ${fmt(t.attempts)}` }),
        t.parent ? h("span", { text: " · parent " }) : null, t.parent ? h("a", { id: "parent",
          href: trialUrl(t.experiment, t.parent), text: t.parent }) : null]),
      lineage, children,
      h("p", { id: "ended" }, [h("b", { text: "How it ended: " }), h("span", { text: ended })]),
      h("h2", { text: "Parameters" }), rows(t.values),
      h("h2", { text: "Metrics" }), rows(t.metrics),
      h("h2", { text: "Curve" }), plotBox("plot-curves", `${t.metric} per step`),
      h("h2", { text: "Log" }), t.log === null ? h("p", { class: "empty", text: "No log reachable for this trial." })
        : h("pre", { class: "log", id: "log", text: t.log.join("\n") }),
    ].filter((node) => node !== null));
    await drawPlots({ objective: { metric: t.metric }, curves: t.curves, slices: [], pareto: null,
      history: { points: [] }, parallel: { rows: [] }, importance: [] }, true).catch(fail);
    body.dataset.drawn = String(Number(body.dataset.drawn || 0) + 1);
  }

  // -- the experiment page's deltas ---------------------------------------------------------
  // The page keeps the JSON it drew (`page`, with its `seq`) and applies each delta the stream
  // sends (the rules of kubesweep/cli/dashboard/deltas.py); a delta that does not follow its
  // seq, a "reset", or a "sync" ahead of it makes it load the whole JSON again.
  function applyPatch(old, p) {
    if (p === null || p === undefined) return old;
    if ("=" in p) return p["="];
    if ("+" in p) return old.concat(p["+"]);
    if ("{}" in p) {
      const out = Object.assign({}, old);
      for (const key in p["{}"]) out[key] = applyPatch(old ? old[key] : undefined, p["{}"][key]);
      for (const key of p["-"] || []) delete out[key];
      return out;
    }
    const gone = new Set(p["-"] || []);
    const changed = p["~"] || {};
    const rows = [];
    for (const row of old) {
      if (gone.has(row.name)) continue;
      rows.push(row.name in changed ? applyPatch(row, changed[row.name]) : row);
    }
    for (const row of p["[]"]) rows.push(row);
    return rows;
  }
  // The same rules as deltas.apply, for the tests that hold the two to each other.
  window.kubesweepApplyPatch = applyPatch;
  let page = null, latest = -1;
  const pending = [];
  function note(name, value) { body.dataset[name] = String(value); }
  async function snapshot() {
    const response = await fetch(`${BASE}api/experiments/${encodeURIComponent(EXPERIMENT)}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`api/experiments/${EXPERIMENT}: HTTP ${response.status}`);
    const text = await response.text();
    note("snapshotBytes", text.length);
    note("snapshots", Number(body.dataset.snapshots || 0) + 1);
    page = JSON.parse(text);
  }
  async function followDeltas() {
    if (page === null) await snapshot();
    for (;;) {
      const next = pending.shift();
      if (next === undefined) break;
      if (next.to <= page.seq) continue;
      if (next.from !== page.seq) { pending.length = 0; await snapshot(); break; }
      page = applyPatch(page, next.patch);
      page.seq = next.to;
    }
    if (latest > page.seq) await snapshot();
    note("seq", page.seq);
    await drawExperiment(page);
  }

  async function refresh() {
    if (PAGE === "experiments") drawExperiments(await getJson("api/experiments"));
    else if (PAGE === "experiment") await followDeltas();
    else await drawTrial(await getJson(`api/experiments/${encodeURIComponent(EXPERIMENT)}/trials/${encodeURIComponent(TRIAL)}`));
  }
  // An update that arrives while the page is drawing is kept and drawn after it, after a
  // pause as long as the drawing took: a large experiment that changes often stays usable.
  let busy = false, again = false;
  async function update() {
    if (busy) { again = true; return; }
    busy = true;
    const started = performance.now();
    try { await refresh(); } catch (error) { fail(error); }
    const took = performance.now() - started;
    body.dataset.drawMs = String(Math.round(took));
    if (again) await new Promise((resolve) => setTimeout(resolve, Math.min(took, 10000)));
    busy = false;
    if (again) { again = false; update(); }
  }
  // Selection: a click on a plot's mark shows that trial alone in the table.
  function pick(name) {
    if (!current || !current.trials.some((t) => t.name === name)) return;
    filters.text = name;
    const box = document.getElementById("filter-text");
    if (box) box.value = name;
    applyFilters();
  }
  main.addEventListener("click", (event) => {
    const mark = event.target.closest && event.target.closest("#plots .chart circle, #plots .chart polyline");
    if (!mark || !mark.querySelector("title")) return;
    pick(mark.querySelector("title").textContent.split(/[ :]/)[0]);
  });
  // The history plot (uPlot) names the point clicked, and the trials a drag selected (null
  // when its zoom is reset): the table then shows those trials only.
  main.addEventListener("plot-pick", (event) => pick(event.detail.name));
  main.addEventListener("plot-select", (event) => {
    filters.names = event.detail.names ? new Set(event.detail.names) : null;
    applyFilters();
  });
  if (PAGE === "experiment") {
    const source = new EventSource(`${BASE}api/events?experiment=${encodeURIComponent(EXPERIMENT)}&deltas=1`);
    const live = () => { setLive(["live", "live"]); note("updates", Number(body.dataset.updates || 0) + 1); };
    source.addEventListener("sync", (event) => { live(); latest = Math.max(latest, JSON.parse(event.data).seq); update(); });
    source.addEventListener("reset", (event) => { live(); latest = Math.max(latest, JSON.parse(event.data).seq); update(); });
    source.addEventListener("delta", (event) => {
      live();
      note("deltaBytes", event.data.length);
      const delta = JSON.parse(event.data);
      latest = Math.max(latest, delta.to);
      pending.push(delta);
      update();
    });
    source.addEventListener("failed", (event) => fail(JSON.parse(event.data).error));
    source.onerror = () => setLive(["live off", "reconnecting"]);
  } else {
    follow(PAGE === "experiments" ? "" : `?experiment=${encodeURIComponent(EXPERIMENT)}`, update);
  }
})();
