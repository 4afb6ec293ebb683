// Vigil console: keyboard shortcuts, media reveal and charts. Loaded from a file (the
// Content-Security-Policy allows no inline script); reads its data from data-* attributes and
// <script type="application/json"> blocks, never from event text as code.
"use strict";
(function () {
  function typing(target) {
    const tag = (target && target.tagName) || "";
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  // Shortcuts: an element with data-key="n" is clicked (or focused, for inputs) when that key is pressed
  // outside a text field; Escape leaves a text field.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && typing(event.target)) { event.target.blur(); return; }
    if (typing(event.target)) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const target = document.querySelector('[data-key="' + CSS.escape(key) + '"]:not([disabled])');
    if (!target) return;
    event.preventDefault();
    if (target.matches("input, textarea, select")) target.focus();
    else target.click();
  });

  // Media: blurred and gray until revealed by a click or Enter (hover shows it for a moment).
  document.addEventListener("click", function (event) {
    const media = event.target.closest && event.target.closest(".media");
    if (media) { event.preventDefault(); media.classList.toggle("revealed"); }
  });
  document.addEventListener("keydown", function (event) {
    if ((event.key === "Enter" || event.key === " ") && event.target.classList && event.target.classList.contains("media")) {
      event.preventDefault(); event.target.classList.toggle("revealed");
    }
  });

  // Charts: <div class="chart" data-series="ID"> with <script type="application/json" id="ID">
  // {"x": [epoch seconds…], "series": [{"label": "…", "values": […]}, …]}.
  const colours = ["#2457c5", "#b42318", "#1a7f37", "#9a6700", "#8250df", "#0a7ea4"];
  function drawCharts(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll(".chart[data-series]").forEach(function (el) {
      if (el.dataset.drawn) return;
      const source = document.getElementById(el.dataset.series);
      if (!source) return;
      const data = JSON.parse(source.textContent);
      const series = [{}].concat(data.series.map(function (s, i) {
        return { label: s.label, stroke: colours[i % colours.length], width: 2, points: { show: data.x.length < 50 } };
      }));
      const width = Math.max(300, el.clientWidth || 600);
      el.dataset.drawn = "1";
      new uPlot({ width: width, height: 180, series: series, axes: [{}, { size: 50 }], legend: { show: true } },
                [data.x].concat(data.series.map(function (s) { return s.values; })), el);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });

  // Keep keyboard focus where the reviewer works after a partial update.
  document.addEventListener("htmx:afterSettle", function (event) {
    const focus = event.target.querySelector && event.target.querySelector("[data-autofocus]");
    if (focus) focus.focus();
  });
})();
