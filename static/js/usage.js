// The usage page's charts: Chart.js draws the figures the page embeds as JSON.
(() => {
  "use strict";

  const source = document.getElementById("usage-data");
  if (!source || typeof window.Chart === "undefined") {
    return;
  }
  const data = JSON.parse(source.textContent);
  const locale = document.documentElement.lang || undefined;
  const palette = [
    "#4f46e5", "#0ea5e9", "#f59e0b", "#10b981", "#ef4444",
    "#8b5cf6", "#14b8a6", "#f97316", "#64748b", "#ec4899",
  ];
  // "2026-12-01" on the axis as "12-01"; the tooltip keeps the whole date.
  const shortDay = (label) => String(label).slice(5);

  function draw(id, datasets, axisTitle) {
    const canvas = document.getElementById(id);
    if (!canvas) {
      return;
    }
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: datasets.map((dataset, index) => ({
          label: dataset.label,
          data: dataset.data,
          backgroundColor: palette[index % palette.length],
          borderWidth: 0,
        })),
      },
      options: {
        locale: locale,
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom" } },
        scales: {
          x: {
            stacked: true,
            ticks: {
              callback(value) {
                return shortDay(this.getLabelForValue(value));
              },
            },
          },
          y: {
            stacked: true,
            beginAtZero: true,
            ticks: { precision: 0 },
            title: { display: true, text: axisTitle },
          },
        },
      },
    });
  }

  draw("chart-points-by-model", data.pointsByModel, data.axes.points);
  draw("chart-tokens", data.tokens, data.axes.tokens);
  draw("chart-points-by-key", data.pointsByKey, data.axes.points);
})();
