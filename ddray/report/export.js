// ddray report exports: the leaderboard CSV and the robust-scores LaTeX at the sliders' λ and γ.
//
// The same fills as ddray/report/export.py (fill_csv) and ddray/report/latex.py (fill_latex),
// over the models Python embeds in #ddray-data: everything that does not depend on λ and γ
// (names, order, captions, escaping) comes from Python, only numbers are written here, so the
// page's download equals `ddray report --format leaderboard|latex --lambda X --gamma Y`.
"use strict";
window.ddrayExport = (function () {
  const ok = (v) => Number.isFinite(v);
  const fixedFmt = (v, scale, d) => (ok(v) ? (v * scale).toFixed(d) : "");

  // Python's csv writer (QUOTE_MINIMAL): quote a field holding a comma, a quote or a line break.
  const csvField = (s) => (/[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s);

  function fillCsv(model, values) {
    const lines = [model.columns.map(csvField).join(",")];
    for (const row of model.rows) {
      const v = values[row.cell];
      lines.push([...row.pre, fixedFmt(v.hlr, 100, 2), fixedFmt(v.ior, 100, 2),
        fixedFmt(v.lrs, model.scale, model.digits), fixedFmt(v.ars, model.scale, model.digits)].map(csvField).join(","));
    }
    return lines.join("\n") + "\n";
  }

  function scoreCell(mean, std, rank, scale, d) {
    let text = fixedFmt(mean, scale, d);
    if (!text) return "n/a";
    if (ok(std)) text += " $\\pm$ " + fixedFmt(std, scale, d);
    return rank === 1 ? "\\textbf{" + text + "}" : text;
  }

  function fillLatex(model, values, lam, gam) {
    const END = ["\\bottomrule", "\\end{tabular}", "\\end{table}"];
    const rank = (r) => (ok(r) ? String(r) : "");
    return model.tables.map((table) => {
      const lines = table.begin.map((ln) => ln.split("{lam}").join(lam.toFixed(2)).split("{gam}").join(gam.toFixed(2)));
      table.blocks.forEach((block, i) => {
        if (i) lines.push("\\midrule");
        for (const row of block) {
          const v = values[row.cell];
          const cells = [...row.pre, scoreCell(v.lrs, v.lrs_std, v.rank_lrs, model.scale, model.digits), rank(v.rank_lrs),
            scoreCell(v.ars, v.ars_std, v.rank_ars, model.scale, model.digits), rank(v.rank_ars)];
          lines.push(cells.join(" & ") + " \\\\");
        }
      });
      return lines.concat(END).join("\n") + "\n";
    }).join("\n");
  }

  // Offer `text` as a file download (a data: URI: no server, no blob store needed).
  function download(name, type, text) {
    const a = document.createElement("a");
    a.href = "data:" + type + ";charset=utf-8," + encodeURIComponent(text);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
  }

  return {fillCsv: fillCsv, fillLatex: fillLatex, download: download};
})();
