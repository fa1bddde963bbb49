// Consumption charts with uPlot (served from this origin, see cloud/views/dashboard.py).
// Each chart comes with its values as a table too: readable without a canvas, by a screen
// reader, and by the browser tests.
import { h } from "./dom.js";

let uPlotModule = null;
async function loadUPlot() {
  if (uPlotModule === null) {
    uPlotModule = import("/static/vendor/uplot/uPlot.esm.js")
      .then((m) => m.default)
      .catch(() => undefined); // not installed: tables only
  }
  return uPlotModule;
}

function valuesTable(t, labelName, rows, cls) {
  return h("details", { class: "values" },
    h("summary", {}, t("chart_data")),
    h("table", { class: cls },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, labelName),
        h("th", { scope: "col" }, t("energy_wh")))),
      h("tbody", {}, rows.map(([label, wh]) =>
        h("tr", {}, h("td", {}, label), h("td", { class: "num" }, String(wh)))))));
}

async function barChart(box, xs, ys, xAxis) {
  const UPlot = await loadUPlot();
  if (!UPlot) return;
  const width = Math.max(260, Math.min(box.clientWidth || 320, 720));
  const bars = UPlot.paths && UPlot.paths.bars ? UPlot.paths.bars({ size: [0.7, 40] }) : undefined;
  new UPlot({
    width, height: 180, legend: { show: false }, cursor: { show: false },
    scales: { x: { time: xAxis.time } },
    axes: [xAxis, {}],
    series: [{}, { label: "Wh", stroke: "#1f7a4d", fill: "rgba(31,122,77,0.35)", paths: bars,
                   points: { show: false } }],
  }, [xs, ys], box);
}

// The last 30 local days ending today, as YYYY-MM-DD (the meters' days are Nairobi days).
function lastDays(n) {
  const fmt = new Intl.DateTimeFormat("en-CA", { timeZone: "Africa/Nairobi" });
  const today = Date.parse(fmt.format(new Date()) + "T00:00:00Z");
  return Array.from({ length: n }, (_, i) => new Date(today - (n - 1 - i) * 86400000)
    .toISOString().slice(0, 10));
}

export async function hourlyChart(t, day) {
  const hours = Array.from({ length: 24 }, (_, i) => i);
  const wh = hours.map((i) => (day.readings || {})[String(i).padStart(2, "0")] ?? 0);
  const box = h("div", { class: "chart" });
  const section = h("figure", { class: "chart-box hourly" },
    h("figcaption", {}, t("hourly", { date: day.date })), box,
    valuesTable(t, t("hour"), hours.filter((i) => (day.readings || {})[String(i).padStart(2, "0")] != null)
      .map((i) => [String(i).padStart(2, "0") + ":00", wh[i]]), "hourly-values"));
  barChart(box, hours, wh, { label: t("hour"), time: false });
  return section;
}

export async function dailyChart(t, days) {
  const box = h("div", { class: "chart" });
  const section = h("figure", { class: "chart-box daily" },
    h("figcaption", {}, t("daily")), box,
    valuesTable(t, t("date"), days.map((d) => [d.date, d.total_consumption_wh]), "daily-values"));
  // every day of the month on the axis, the ones without readings at zero
  const byDate = new Map(days.map((d) => [d.date, d.total_consumption_wh]));
  const dates = lastDays(30);
  barChart(box, dates.map((d) => Date.parse(d + "T00:00:00Z") / 1000),
    dates.map((d) => byDate.get(d) ?? 0), { label: t("date"), time: true });
  return section;
}
