// Draw each <canvas data-chart="key"> of the points dashboard with Chart.js, from
// the configurations the page carries in #dashboard-charts (json_script).
(function () {
  "use strict";
  function draw() {
    const source = document.getElementById("dashboard-charts");
    if (!source || typeof Chart === "undefined") return;
    const charts = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      const config = charts[canvas.dataset.chart];
      if (config) new Chart(canvas, config);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
