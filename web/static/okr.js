/* okr-pipeline: draws a KR's chart with Chart.js (vendored, MIT).
   window.okrDrawChart(canvas, data) draws one chart from the data of script#chart-data and
   returns the Chart; the KR page draws its own (canvas#kr-chart) as window.okrChart, and the
   report draws each KR's as its section scrolls into view (its body says data-draw).
   A linear x axis in epoch milliseconds with date labels: no date adapter needed. */
(function () {
  "use strict";
  var okrDrawChart = function (canvas, d) {
    var ms = function (iso) { return Date.parse(iso); };
    var xy = function (points) { return points.map(function (p) { return { x: ms(p.x), y: p.y }; }); };
    var start = ms(d.start), end = ms(d.end);
    var level = function (y) { return y === null ? [] : [{ x: start, y: y }, { x: end, y: y }]; };
    var pad = function (n) { return n < 10 ? "0" + n : "" + n; };
    var day = function (v) { var t = new Date(v); return t.getUTCFullYear() + "-" + pad(t.getUTCMonth() + 1) + "-" + pad(t.getUTCDate()); };
    var datasets = [
      { label: "measured", data: xy(d.measured), borderColor: "#2457c5", backgroundColor: "#2457c5", pointRadius: 3, tension: 0 },
      { label: "baseline", data: level(d.baseline), borderColor: "#8a94a3", borderDash: [2, 3], pointRadius: 0, borderWidth: 1 },
      { label: "target", data: level(d.target), borderColor: "#1b7f3b", borderDash: [6, 4], pointRadius: 0, borderWidth: 1.5 },
      { label: "expected pace", data: xy(d.pace), borderColor: "#c9a227", borderDash: [4, 4], pointRadius: 0, borderWidth: 1.5 },
      { label: "forecast band", data: d.band.map(function (b) { return { x: ms(b.x), y: b.high }; }), borderColor: "rgba(36,87,197,0)", backgroundColor: "rgba(36,87,197,0.12)", pointRadius: 0, fill: "+1" },
      { label: "forecast band low", data: d.band.map(function (b) { return { x: ms(b.x), y: b.low }; }), borderColor: "rgba(36,87,197,0)", pointRadius: 0, fill: false },
      { label: "forecast", data: xy(d.forecast), borderColor: "#2457c5", borderDash: [3, 3], pointRadius: 0, borderWidth: 1.5 },
      { label: "notes", data: (d.notes || []).map(function (n) { return { x: ms(n.x), y: n.y, text: n.text }; }), showLine: false, pointStyle: "rectRot", pointRadius: 7, pointHoverRadius: 9, borderColor: "#8e24aa", backgroundColor: "rgba(142,36,170,0.35)" }
    ];
    return new Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, parsing: false, normalized: true,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: { type: "linear", min: start, max: end, ticks: { callback: day, maxTicksLimit: 8 }, title: { display: true, text: "as of (UTC)" } },
          y: { title: { display: !!d.unit, text: d.unit } }
        },
        plugins: {
          legend: { labels: { filter: function (item) { return item.text !== "forecast band low" && (item.text !== "notes" || (d.notes || []).length > 0); } } },
          tooltip: { callbacks: { label: function (item) { return item.raw && item.raw.text !== undefined ? "note: " + item.raw.text : item.dataset.label + ": " + item.formattedValue; }, title: function (items) { return items.length ? new Date(items[0].parsed.x).toISOString().slice(0, 16).replace("T", " ") + " UTC" : ""; } } }
        }
      }
    });
  };
  window.okrDrawChart = okrDrawChart;
  var data = document.getElementById("chart-data");
  var canvas = document.getElementById("kr-chart");
  if (!data || !canvas || typeof Chart === "undefined" || document.body.hasAttribute("data-draw")) { return; }
  window.okrChart = okrDrawChart(canvas, JSON.parse(data.textContent));
})();
