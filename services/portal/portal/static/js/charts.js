/* Dashboard charts with the bundled Chart.js (static/vendor, MIT). Data comes from the JSON block the
   server rendered into the page; numbers are formatted the Indonesian way. */
(function () {
  "use strict";
  var node = document.getElementById("chart-data");
  if (!node || !window.Chart) return;
  var data = JSON.parse(node.textContent);
  var nf = new Intl.NumberFormat("id-ID", { maximumFractionDigits: 1 });
  function rupiah(v) {
    if (v === null || v === undefined) return "–";
    var abs = Math.abs(v);
    if (abs >= 1e9) return "Rp" + nf.format(v / 1e9) + " M";
    if (abs >= 1e6) return "Rp" + nf.format(v / 1e6) + " jt";
    return "Rp" + new Intl.NumberFormat("id-ID", { maximumFractionDigits: 0 }).format(v);
  }
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#374151";
  Chart.defaults.animation = false; // no motion: faster on slow phones, calmer for everyone
  Chart.defaults.maintainAspectRatio = true;
  Chart.defaults.aspectRatio = 1.6;

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) new Chart(canvas, config);
  }
  if (data.sales) {
    draw("chart-sales", {
      type: "line",
      data: { labels: data.sales.labels, datasets: [{ label: "Penjualan", data: data.sales.values, borderColor: "#b91c1c", backgroundColor: "rgba(185,28,28,.12)", fill: true, tension: .25, spanGaps: false }] },
      options: { plugins: { legend: { display: false }, tooltip: { callbacks: { label: function (c) { return rupiah(c.parsed.y); } } } },
                 scales: { y: { beginAtZero: true, ticks: { callback: rupiah } } } }
    });
  }
  if (data.stalled) {
    var weekly = data.stalled_kind === "weekly";
    draw("chart-stalled", {
      type: weekly ? "line" : "bar",
      data: { labels: data.stalled.labels, datasets: [{ label: "Nilai stok macet", data: data.stalled.values, backgroundColor: "#ea580c", borderColor: "#9a3412" }] },
      options: { indexAxis: weekly ? "x" : "y", plugins: { legend: { display: false }, tooltip: { callbacks: { label: function (c) { return rupiah(weekly ? c.parsed.y : c.parsed.x); } } } },
                 scales: weekly ? { y: { beginAtZero: true, ticks: { callback: rupiah } } } : { x: { beginAtZero: true, ticks: { callback: rupiah } } } }
    });
  }
  if (data.ontime) {
    draw("chart-ontime", {
      type: "bar",
      data: { labels: data.ontime.labels, datasets: [{ label: "Tepat waktu", data: data.ontime.values, backgroundColor: "#1a9641" }] },
      options: { plugins: { legend: { display: false }, tooltip: { callbacks: { label: function (c) { return nf.format(c.parsed.y) + "% tepat waktu"; } } } },
                 scales: { y: { min: 0, max: 100, ticks: { callback: function (v) { return v + "%"; } } } } }
    });
  }
})();
