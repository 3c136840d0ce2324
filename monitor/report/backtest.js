// Streamwatch backtest report: one band chart and one score chart per top series, drawn with uPlot
// (inlined in this page with the data: the report opens offline, from a file, anywhere).
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("backtest-data").textContent);
  const colors = {
    axis: "#8b95a5", grid: "rgba(139,149,165,0.14)", actual: "#e6edf3", expected: "#58a6ff",
    band: "rgba(88,166,255,0.22)", bound: "rgba(88,166,255,0.45)", anomaly: "#ff5d6c",
    score: "#f0b429", threshold: "#ff5d6c",
  };

  function axes() {
    const style = { stroke: colors.axis, grid: { stroke: colors.grid, width: 1 }, ticks: { stroke: colors.grid } };
    return [Object.assign({ space: 80 }, style), Object.assign({ size: 64 }, style)];
  }

  function width(el) { return el.clientWidth || 900; }
  // Times in UTC, as the tables above.
  function utc(ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); }

  function bandOptions(el) {
    return {
      width: width(el), height: 240, axes: axes(), tzDate: utc, cursor: { drag: { x: true, y: false } },
      series: [
        {},
        { label: "lower", stroke: colors.bound, width: 1, points: { show: false } },
        { label: "upper", stroke: colors.bound, width: 1, points: { show: false } },
        { label: "expected", stroke: colors.expected, width: 1.5, dash: [6, 4], points: { show: false } },
        { label: "value", stroke: colors.actual, width: 1.5, points: { show: false } },
        // Flagged points: markers only, on top of the value line.
        { label: "flagged", stroke: colors.anomaly, fill: colors.anomaly, width: 0, paths: () => null,
          points: { show: true, size: 8, width: 1, stroke: colors.anomaly, fill: colors.anomaly } },
      ],
      bands: [{ series: [2, 1], fill: colors.band }],
    };
  }

  function scoreOptions(el) {
    return {
      width: width(el), height: 120, axes: axes(), tzDate: utc, legend: { show: false }, cursor: { drag: { x: true, y: false } },
      scales: { y: { range: (u, min, max) => [0, Math.max(max || 0, 1) * 1.15] } },
      series: [
        {},
        { label: "score", stroke: colors.score, width: 1.5, fill: "rgba(240,180,41,0.12)", points: { show: false } },
        { label: "threshold", stroke: colors.threshold, width: 1, dash: [5, 5], points: { show: false } },
      ],
    };
  }

  const charts = [];
  data.charts.forEach(function (c, i) {
    const band = document.getElementById("band-" + i);
    const score = document.getElementById("score-" + i);
    charts.push(new uPlot(bandOptions(band), [c.t, c.lower, c.upper, c.expected, c.value, c.flagged], band));
    charts.push(new uPlot(scoreOptions(score), [c.t, c.score, c.t.map(function () { return data.threshold; })], score));
    band.dataset.samples = String(c.t.length);
    score.dataset.samples = String(c.t.length);
  });

  window.addEventListener("resize", function () {
    for (const chart of charts) {
      const w = chart.root.parentElement.clientWidth;
      if (w && chart.width !== w) chart.setSize({ width: w, height: chart.height });
    }
  });
})();
