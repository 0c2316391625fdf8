// ddray report explorer: move λ and γ, filter, sort. No network, no libraries.
//
// Reads the per-seed score inputs embedded in #ddray-data (ddray/report/explore.py) and
// recomputes what ddray/report/metrics.py and aggregate.py compute in Python:
//   LRS = N(λ·IOR − (1 − λ)·HLR), ARS = N(γ·gap_on + (1 − γ)·gap_off), N(x) = (e^x − e^−1)/(e − e^−1)
// per seed, then per cell the mean ± std over seeds and the score of the mean inputs; ranks
// are 1 = best with ties sharing the best rank ('min'), as bootstrap.descending_ranks.
"use strict";
(function () {
  document.documentElement.classList.add("js");  // shows the controls, folds detail columns (report.css)
  const DATA = JSON.parse(document.getElementById("ddray-data").textContent);
  const S = DATA.settings;
  const FACETS = ["track", "dataset", "ipc", "arch", "labels", "method"];
  const GRID = Array.from({length: 21}, (_, i) => i / 20);

  // ---- metrics (metrics.py) ----
  const E = Math.E, INV_E = Math.exp(-1);
  const norm = (x) => (Math.exp(x) - INV_E) / (E - INV_E);
  const lrs = (hlr, ior, lam) => norm(lam * S.input_scale * ior - (1 - lam) * S.input_scale * hlr);
  const ars = (on, off, g) => norm(g * S.input_scale * on + (1 - g) * S.input_scale * off);
  const num = (v) => (v === null || v === undefined ? NaN : v);
  const ok = (v) => Number.isFinite(v);

  // ---- small helpers ----
  function groupBy(items, keyOf) {
    const out = new Map();
    for (const it of items) (out.get(keyOf(it)) || out.set(keyOf(it), []).get(keyOf(it))).push(it);
    return out;
  }
  function cmpKeys(a, b) {
    for (let i = 0; i < a.length; i++) {
      if (a[i] < b[i]) return -1;
      if (a[i] > b[i]) return 1;
    }
    return 0;
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== "") e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, (ch) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[ch]));
  }

  function mean(xs) {
    const v = xs.filter(ok);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
  }
  function std(xs) {
    const v = xs.filter(ok), n = v.length - S.ddof;
    if (n <= 0) return NaN;
    const m = mean(v);
    return Math.sqrt(v.reduce((a, x) => a + (x - m) * (x - m), 0) / n);
  }

  // ---- cells and their seeds (aggregate.cell_scores) ----
  const cells = DATA.cells.map((c, i) => ({...c, i: i, seeds: [], group: [c.track, c.dataset, c.ipc, c.arch].join("\u001f")}));
  for (const s of DATA.seeds) cells[s.cell].seeds.push(s);
  const color = (m) => DATA.colors[m] || "#555";  // colors.py: the same map as the PNGs'

  // One cell's score f (lrs or ars) at weight w from its seeds' inputs a, b: the mean ± std of
  // per-seed scores, and the score of the inputs' means over the seeds that score.
  function cellScore(cell, f, a, b, w) {
    const per = cell.seeds.map((s) => f(num(s[a]), num(s[b]), w));
    const used = cell.seeds.filter((_, i) => ok(per[i]));
    const ma = mean(used.map((s) => num(s[a]))), mb = mean(used.map((s) => num(s[b])));
    return {mean: mean(per), std: std(per), ofMean: f(ma, mb, w), ma: ma, mb: mb};
  }
  const cellLrs = (cell, lam) => cellScore(cell, lrs, "hlr", "ior", lam);
  const cellArs = (cell, gam) => cellScore(cell, ars, "gap_on", "gap_off", gam);

  function score(cell, lam, gam) {
    const l = cellLrs(cell, lam), a = cellArs(cell, gam);
    return {lrs: l.mean, lrs_std: l.std, lrs_of_mean: l.ofMean, hlr: l.ma, ior: l.mb,
            ars: a.mean, ars_std: a.std, ars_of_mean: a.ofMean, acc: mean(cell.seeds.map((s) => num(s.acc_syn)))};
  }

  // Every cell's scores at (λ, γ), ranked by each score within its (track, dataset, ipc, arch)
  // group: 1 + how many in the group score higher; NaN stays unranked.
  function compute(lam, gam) {
    const rows = cells.map((cell) => ({cell: cell, ...score(cell, lam, gam)}));
    const groups = groupBy(rows, (r) => r.cell.group);
    for (const key of ["lrs", "ars", "acc"]) {
      for (const r of rows) r["rank_" + key] = ok(r[key]) ? 1 + groups.get(r.cell.group).filter((o) => o[key] > r[key]).length : NaN;
    }
    return rows;
  }

  // ---- formatting (display.py's units) ----
  const fix = (v, scale, d) => (ok(v) ? (v * scale).toFixed(d) : "");
  const sc = (v) => fix(v, S.score_scale, S.digits);
  function meanStd(m, s) {
    if (!ok(m)) return "";
    return ok(s) ? sc(m) + " ± " + sc(s) : sc(m);
  }

  // ---- the live leaderboard; a facet with one value is named above the table, not repeated ----
  const many = (f) => new Set(cells.map((c) => c[f])).size > 1;
  const COLUMNS = [
    many("track") && {key: "track", title: "track", text: (r) => r.cell.track},
    many("dataset") && {key: "dataset", title: "dataset", text: (r) => r.cell.dataset},
    {key: "ipc", title: "IPC", text: (r) => r.cell.ipc, value: (r) => +r.cell.ipc},
    many("arch") && {key: "arch", title: "arch", text: (r) => r.cell.arch},
    {key: "rank_lrs", live: true, title: "LRS rank", rank: "lrs", best: "low", tip: "1 = best LRS in its dataset / IPC / arch; arrows: change against the report's λ"},
    {key: "method", title: "method", text: (r) => r.cell.method, swatch: true},
    many("labels") && {key: "labels", title: "L", text: (r) => r.cell.labels, tip: "label setting of the method's syn arm"},
    {key: "seeds", title: "seeds", text: seedsText, value: (r) => r.cell.n_seeds, tip: "seeds that scored; '2 of 3': fewer than planned"},
    {key: "lrs", live: true, title: "LRS", text: (r) => meanStd(r.lrs, r.lrs_std), value: (r) => r.lrs, why: "lrs_reason", best: "high", tip: "mean ± std of per-seed LRS"},
    {key: "lrs_of_mean", live: true, detail: true, title: "LRS(mean acc)", text: (r) => sc(r.lrs_of_mean), value: (r) => r.lrs_of_mean, best: "high", tip: "LRS of the mean HLR and IOR"},
    {key: "hlr", title: "HLR %", text: (r) => fix(r.hlr, 100, 2), value: (r) => r.hlr, best: "low", tip: "Acc(full, hard) − Acc(syn, hard); lower is better"},
    {key: "ior", title: "IOR %", text: (r) => fix(r.ior, 100, 2), value: (r) => r.ior, best: "high", tip: "Acc(syn, L) − Acc(rdm, L); higher is better"},
    {key: "rank_ars", live: true, title: "ARS rank", rank: "ars", best: "low", tip: "arrows: change against the report's γ"},
    {key: "ars", live: true, title: "ARS", text: (r) => meanStd(r.ars, r.ars_std), value: (r) => r.ars, why: "ars_reason", best: "high", tip: "mean ± std of per-seed ARS"},
    {key: "ars_of_mean", live: true, detail: true, title: "ARS(mean acc)", text: (r) => sc(r.ars_of_mean), value: (r) => r.ars_of_mean, best: "high", tip: "ARS of the mean gaps"},
    {key: "acc", title: "Acc %", text: (r) => fix(r.acc, 100, 2), value: (r) => r.acc, best: "high", tip: "Acc(syn, L), mean over seeds"},
    {key: "rank_acc", title: "Acc rank", rank: "acc", best: "low"},
  ].filter(Boolean);
  const scope = ["track", "dataset", "arch", "labels"].filter((f) => cells.length && !many(f))
    .map((f) => (f === "labels" ? cells[0][f] + " labels" : f === "track" ? "track " + cells[0][f] : cells[0][f]));

  function seedsText(r) {
    const n = r.cell.n_seeds, p = r.cell.planned;
    return p !== null && p > n ? n + " of " + p : String(n);
  }
  const tdClass = (c) => [isText(c) ? "t" : "", c.detail ? "detail" : ""].filter(Boolean).join(" ");

  const built = new Map(compute(S.lambda, S.gamma).map((r) => [r.cell, r]));
  const isText = (col) => !col.value && !col.rank;

  // Write one cell of the live table: a rank (with its move against the report's weights), or
  // a value; an unscored value shows why, a partly scored one gets a † with the reason.
  function fillTd(td, col, r) {
    td.replaceChildren();
    if (col.rank) {
      const v = r[col.key], was = built.get(r.cell)[col.key];
      td.dataset.v = ok(v) ? v : "";
      td.textContent = ok(v) ? String(v) : "";
      if (ok(v) && ok(was) && v !== was) {
        td.append(el("span", {class: v < was ? "up" : "down", title: "was " + was}, (v < was ? " ▲" : " ▼") + Math.abs(was - v)));
      }
      return;
    }
    const text = col.text(r), why = col.why ? r.cell[col.why] : "";
    if (col.value) td.dataset.v = ok(col.value(r)) ? col.value(r) : "";
    if (col.swatch) td.append(el("span", {class: "swatch", style: "background:" + color(r.cell.method)}));
    td.append(text || why);
    td.classList.toggle("na", !text && !!why);
    if (text && why) td.append(el("sup", {title: why}, "†"));
  }

  // Rows are made once per cell; a slider move rewrites the weight-dependent cells and reorders.
  function renderLive(rows) {
    const table = document.getElementById("live"), first = !table.tHead;
    if (first) {
      const tr = table.createTHead().insertRow();
      for (const c of COLUMNS) tr.append(el("th", {title: c.tip, class: tdClass(c), "data-best": c.best}, c.title));
      table.createTBody();
      makeSortable(table);
      document.getElementById("live-scope").textContent = scope.join(" · ");
    }
    for (const r of rows) {
      const cell = r.cell;
      if (first) {
        cell.tr = el("tr", {"data-track": cell.track, "data-dataset": cell.dataset, "data-ipc": cell.ipc, "data-arch": cell.arch,
                            "data-labels": cell.labels, "data-method": cell.method});
        cell.tds = COLUMNS.map((c) => cell.tr.appendChild(el("td", {"data-col": c.key, class: tdClass(c)})));
      }
      COLUMNS.forEach((c, j) => (first || c.live) && fillTd(cell.tds[j], c, r));
    }
    const order = (r) => [r.cell.track, r.cell.dataset, +r.cell.ipc, r.cell.arch];
    rows.sort((a, b) => cmpKeys(order(a), order(b)) || cmpKeys([num(a.rank_lrs)], [num(b.rank_lrs)]) || cmpKeys([a.cell.method], [b.cell.method]));
    rows.forEach((r, i) => r.cell.tr.classList.toggle("group-start", i > 0 && r.cell.group !== rows[i - 1].cell.group));
    table.tBodies[0].append(...rows.map((r) => r.cell.tr));
    applySort(table);
  }

  // ---- LRS against λ and ARS against γ, one small chart per group ----
  // The curves do not depend on the sliders (LRS only on λ, ARS only on γ): they are drawn once,
  // and each slider move only slides the marker line and the dots.
  const G = {W: 300, H: 190, L: 40, R: 8, T: 22, B: 28};
  const gx = (w) => G.L + w * (G.W - G.L - G.R);
  const gy = (v, lo, hi) => G.T + (hi - v) / (hi - lo) * (G.H - G.T - G.B);
  const SWEEP = {lrs: {of: cellLrs, axis: "λ"}, ars: {of: cellArs, axis: "γ"}};

  function sweepSvg(title, groupCells, key) {
    const curves = groupCells.map((c) => ({c: c, ys: GRID.map((w) => SWEEP[key].of(c, w).mean * S.score_scale)}));
    const all = curves.flatMap((k) => k.ys).filter(ok);
    if (!all.length) return "";
    let lo = Math.min(...all), hi = Math.max(...all);
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const y = (v) => gy(v, lo, hi);
    const parts = [`<text x="${G.L}" y="14" class="t">${esc(title)}</text>`,
      `<line x1="${G.L}" y1="${G.H - G.B}" x2="${G.W - G.R}" y2="${G.H - G.B}" class="ax"/><line x1="${G.L}" y1="${G.T}" x2="${G.L}" y2="${G.H - G.B}" class="ax"/>`];
    for (const v of [lo, (lo + hi) / 2, hi]) parts.push(`<text x="${G.L - 4}" y="${y(v) + 3}" class="yl">${v.toFixed(S.digits === 2 ? 1 : 3)}</text>`);
    for (const w of [0, 0.5, 1]) parts.push(`<text x="${gx(w)}" y="${G.H - G.B + 12}" class="xl">${w}</text>`);
    parts.push(`<text x="${(G.L + G.W - G.R) / 2}" y="${G.H - 3}" class="xl">${SWEEP[key].axis}</text>`);
    parts.push(`<line y1="${G.T}" y2="${G.H - G.B}" class="now"/>`);
    for (const k of curves) {
      const pts = GRID.map((w, i) => (ok(k.ys[i]) ? `${gx(w).toFixed(1)},${y(k.ys[i]).toFixed(1)}` : "")).filter(Boolean).join(" ");
      parts.push(`<polyline points="${pts}" stroke="${color(k.c.method)}"><title>${esc(k.c.method)}</title></polyline>`);
      parts.push(`<circle data-cell="${k.c.i}" r="3" fill="${color(k.c.method)}"><title></title></circle>`);
    }
    return `<svg viewBox="0 0 ${G.W} ${G.H}" width="${G.W}" height="${G.H}" role="img" data-key="${key}" data-lo="${lo}" data-hi="${hi}">${parts.join("")}</svg>`;
  }

  function drawSweeps() {
    document.getElementById("sweeps").innerHTML = [...groupBy(cells, (c) => c.group).values()].map((gc) => {
      const c = gc[0], name = [many("track") && "track " + c.track, many("dataset") && c.dataset, "IPC " + c.ipc, many("arch") && c.arch].filter(Boolean).join(" · ");
      // Methods whose curves coincide are drawn one over the other: the legend says so.
      const shape = (m) => JSON.stringify(GRID.map((w) => [cellLrs(m, w).mean, cellArs(m, w).mean]));
      const firstOf = new Map();
      const legend = gc.map((m) => {
        const k = shape(m), twin = firstOf.get(k);
        if (!twin) firstOf.set(k, m.method);
        const same = twin ? ` <span class="same" title="identical scores at every weight: drawn under ${esc(twin)}">(= ${esc(twin)})</span>` : "";
        return `<span><i class="swatch" style="background:${color(m.method)}"></i>${esc(m.method)}${same}</span>`;
      }).join(" ");
      return `<div class="sweep" data-track="${esc(c.track)}" data-dataset="${esc(c.dataset)}" data-ipc="${esc(c.ipc)}" data-arch="${esc(c.arch)}">` +
        `<div class="t">${esc(name)}</div><div class="pair">${sweepSvg("LRS vs λ", gc, "lrs")}${sweepSvg("ARS vs γ", gc, "ars")}</div>` +
        `<div class="legend">${legend}</div></div>`;
    }).join("");
  }

  function moveMarkers(rows, lam, gam) {
    const byCell = new Map(rows.map((r) => [r.cell.i, r]));
    document.querySelectorAll("#sweeps svg").forEach((svg) => {
      const key = svg.dataset.key, x = gx(key === "lrs" ? lam : gam), lo = +svg.dataset.lo, hi = +svg.dataset.hi;
      const line = svg.querySelector(".now");
      line.setAttribute("x1", x);
      line.setAttribute("x2", x);
      svg.querySelectorAll("circle").forEach((dot) => {
        const v = byCell.get(+dot.dataset.cell)[key] * S.score_scale;
        dot.setAttribute("cx", x);
        dot.setAttribute("cy", ok(v) ? gy(v, lo, hi) : -99);
        dot.firstChild.textContent = cells[+dot.dataset.cell].method + ": " + (ok(v) ? v.toFixed(S.digits) : "n/a");
      });
    });
  }

  // ---- sorting: click a header; numbers by value, text after, blanks last ----
  function sortValue(td) {
    const raw = td.dataset.v !== undefined ? td.dataset.v : td.textContent.trim();
    const v = parseFloat(raw);
    return raw === "" ? [2, 0] : Number.isNaN(v) ? [1, raw.toLowerCase()] : [0, v];
  }
  function applySort(table) {
    const col = table.dataset.sortCol;
    if (col === undefined) return;
    const dir = table.dataset.sortDir === "desc" ? -1 : 1;
    const body = table.tBodies[0];
    const rows = [...body.rows].map((tr, i) => ({tr: tr, i: i, k: sortValue(tr.cells[+col])}));
    rows.sort((a, b) => (a.k[0] !== b.k[0] ? a.k[0] - b.k[0] : dir * cmpKeys([a.k[1]], [b.k[1]])) || a.i - b.i);
    body.append(...rows.map((r) => r.tr));
  }
  function makeSortable(table) {
    [...table.tHead.rows[0].cells].forEach((th, i) => th.addEventListener("click", () => {
      // First click: best first (scores high to low, ranks and HLR low to high), then the other way.
      const same = table.dataset.sortCol === String(i), first = th.dataset.best === "high" ? "desc" : "asc";
      table.dataset.sortDir = same ? (table.dataset.sortDir === "asc" ? "desc" : "asc") : first;
      table.dataset.sortCol = String(i);
      for (const h of table.tHead.rows[0].cells) h.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", table.dataset.sortDir === "asc" ? "ascending" : "descending");
      applySort(table);
    }));
  }

  // ---- filters: an element with data-<facet> shows when it matches every chosen value ----
  // A section whose own facets differ is hidden; one left with no rows or figures says so.
  function applyFilters() {
    const chosen = {};
    document.querySelectorAll("select[data-facet]").forEach((s) => { if (s.value) chosen[s.dataset.facet] = s.value; });
    const match = (e) => FACETS.every((f) => !(f in chosen) || e.dataset[f] === undefined || e.dataset[f] === chosen[f]);
    document.querySelectorAll(FACETS.map((f) => "[data-" + f + "]:not(select)").join(",")).forEach((e) => (e.hidden = !match(e)));
    const said = Object.entries(chosen).map(([f, v]) => f + " = " + v).join(", ");
    document.querySelectorAll(".block.filtered").forEach((b) => {
      const items = b.querySelectorAll("tbody tr, .fig, .sweep");
      const empty = !b.hidden && items.length > 0 && [...items].every((e) => e.hidden);
      b.classList.toggle("emptied", empty);
      let msg = b.querySelector(".empty");
      if (empty && !msg) msg = b.querySelector("h2").insertAdjacentElement("afterend", el("p", {class: "empty"}));
      if (msg) msg.textContent = empty ? "Nothing in this section for " + said + " (the coverage grid shows what is planned)." : "";
    });
  }

  // ---- detail columns: folded behind a toggle so the tables fit the window ----
  document.querySelectorAll("button.fold").forEach((btn) => btn.addEventListener("click", () => {
    const table = btn.closest(".block").querySelector("table");
    const folded = table.classList.toggle("folded");
    btn.textContent = folded ? "show intervals" : "hide intervals";
  }));

  // ---- downloads of the live leaderboard at the sliders' weights (export.js) ----
  function liveValues(lam, gam) {
    const out = [];
    for (const r of compute(lam, gam)) {
      out[r.cell.i] = {lrs: r.lrs, lrs_std: r.lrs_std, ars: r.ars, ars_std: r.ars_std, rank_lrs: r.rank_lrs,
                       rank_ars: r.rank_ars, hlr: r.hlr, ior: r.ior};
    }
    return out;
  }
  function exportText(kind) {
    const lam = parseFloat(lamIn.value), gam = parseFloat(gamIn.value), v = liveValues(lam, gam);
    return kind === "csv" ? ddrayExport.fillCsv(DATA.leaderboard, v) : DATA.latex.head + ddrayExport.fillLatex(DATA.latex, v, lam, gam);
  }
  window.ddrayExportText = exportText;  // what the buttons download (tests read it)

  // ---- wiring (no sliders when nothing was scored: then only filters and sorting) ----
  const lamIn = document.getElementById("lambda"), gamIn = document.getElementById("gamma");
  function update() {
    const lam = parseFloat(lamIn.value), gam = parseFloat(gamIn.value);
    document.getElementById("lambda-out").textContent = lam.toFixed(2);
    document.getElementById("gamma-out").textContent = gam.toFixed(2);
    const rows = compute(lam, gam);
    renderLive(rows);
    moveMarkers(rows, lam, gam);
    const moved = lam !== S.lambda || gam !== S.gamma;
    document.querySelectorAll(".at-built").forEach((e) => e.classList.toggle("stale", moved));
    applyFilters();
  }
  document.querySelectorAll("table.sortable").forEach(makeSortable);
  document.querySelectorAll("select[data-facet]").forEach((s) => s.addEventListener("change", applyFilters));
  if (!lamIn) return applyFilters();
  lamIn.addEventListener("input", update);
  gamIn.addEventListener("input", update);
  const weights = () => "lambda" + parseFloat(lamIn.value).toFixed(2) + "-gamma" + parseFloat(gamIn.value).toFixed(2);
  document.getElementById("dl-csv").addEventListener("click", () =>
    ddrayExport.download("leaderboard-" + weights() + ".csv", "text/csv", exportText("csv")));
  document.getElementById("dl-latex").addEventListener("click", () =>
    ddrayExport.download("robust-scores-" + weights() + ".tex", "application/x-tex", exportText("latex")));
  document.getElementById("reset").addEventListener("click", () => {
    lamIn.value = S.lambda;
    gamIn.value = S.gamma;
    update();
  });
  drawSweeps();
  update();
})();
