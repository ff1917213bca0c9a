// Charts of the pages, drawn with the vendored Apache ECharts (window.echarts, /static/vendor/echarts.min.js).
// Small live charts of the technician page, the lesson history's timelines, the bandwidth and report bars.

const COLORS = { ok: "#2fbf71", warn: "#f2b233", bad: "#ef5350", accent: "#2f9bff", muted: "#9fb0c3", line: "#2c3b4d" };

function chartLib() {
  if (!window.echarts) throw new Error("charts unavailable: /static/vendor/echarts.min.js did not load");
  return window.echarts;
}

const TEXT = { color: "#eef3f8", fontFamily: "Noto Sans CJK SC, Microsoft YaHei, sans-serif" };

// A sparkline: bitrate (left axis) and the 1-5 quality score (right axis) over the last ten minutes.
export function sparkline(node) {
  const chart = chartLib().init(node, null, { renderer: "canvas", width: node.clientWidth || 180, height: node.clientHeight || 44 });
  chart.setOption({
    animation: false, grid: { left: 2, right: 2, top: 4, bottom: 2 },
    xAxis: { type: "time", show: false }, yAxis: [{ type: "value", show: false, min: 0 }, { type: "value", show: false, min: 1, max: 5 }],
    tooltip: { trigger: "axis", confine: true, textStyle: { fontSize: 11 } },
    series: [
      { name: "kbps", type: "line", showSymbol: false, data: [], lineStyle: { width: 1.5, color: COLORS.accent }, areaStyle: { opacity: 0.15, color: COLORS.accent } },
      { name: "score", type: "line", yAxisIndex: 1, showSymbol: false, data: [], lineStyle: { width: 1, color: COLORS.ok } },
    ],
  });
  return chart;
}

export function setSparkline(chart, series, field) {
  const t = series.t || [];
  const rate = series[field] || [];
  const score = series.score || [];
  chart.setOption({ series: [
    { data: t.map((x, i) => [x * 1000, rate[i]]) },
    { data: t.map((x, i) => [x * 1000, score[i]]) },
  ] });
}

// Line chart of several participants' figure over a lesson (history page).
// axis labels of time axes in the district's time zone
function timeLabel(zone) {
  return (ms) => new Date(ms).toLocaleTimeString("zh-CN", { hour12: false, timeZone: zone });
}

export function lines(node, title, seriesList, unit, zone) {
  const chart = chartLib().init(node, null, { renderer: "canvas" });
  chart.setOption({
    animation: false, title: { text: title, textStyle: { ...TEXT, fontSize: 14 } },
    tooltip: { trigger: "axis" }, legend: { bottom: 0, textStyle: TEXT, type: "scroll" },
    grid: { left: 50, right: 16, top: 40, bottom: 56 },
    xAxis: { type: "time", axisLabel: { color: COLORS.muted, formatter: timeLabel(zone) } },
    yAxis: { type: "value", name: unit, nameTextStyle: { color: COLORS.muted }, axisLabel: { color: COLORS.muted }, splitLine: { lineStyle: { color: COLORS.line } } },
    series: seriesList.map((s) => ({ name: s.name, type: "line", showSymbol: false, connectNulls: false, data: s.data })),
  });
  return chart;
}

// A timeline of segments per row (attendance: present, dropped; the lead: on air), as horizontal bars.
export function timeline(node, title, rows, start, end, zone) {
  const names = rows.map((r) => r.name);
  const data = [];
  rows.forEach((r, i) => {
    for (const s of r.segments) data.push({ value: [i, s.from * 1000, s.to * 1000, s.label || ""], itemStyle: { color: s.color } });
  });
  const chart = chartLib().init(node, null, { renderer: "canvas" });
  chart.setOption({
    animation: false, title: { text: title, textStyle: { ...TEXT, fontSize: 14 } },
    tooltip: { formatter: (p) => `${names[p.value[0]]}<br>${timeLabel(zone)(p.value[1])} – ${timeLabel(zone)(p.value[2])} ${p.value[3]}` },
    grid: { left: 150, right: 16, top: 36, bottom: 28 },
    xAxis: { type: "time", min: start * 1000, max: end * 1000, axisLabel: { color: COLORS.muted, formatter: timeLabel(zone) } },
    yAxis: { type: "category", data: names, inverse: true, axisLabel: { color: "#eef3f8", width: 140, overflow: "truncate" } },
    series: [{
      type: "custom", encode: { x: [1, 2], y: 0 }, data,
      renderItem: (params, api) => {
        const row = api.value(0);
        const a = api.coord([api.value(1), row]);
        const b = api.coord([api.value(2), row]);
        const h = api.size([0, 1])[1] * 0.6;
        return { type: "rect", shape: { x: a[0], y: a[1] - h / 2, width: Math.max(1, b[0] - a[0]), height: h }, style: api.style() };
      },
    }],
  });
  return chart;
}

// Grouped bars (bandwidth against capacity, report figures).
export function bars(node, title, categories, seriesList, unit) {
  const chart = chartLib().init(node, null, { renderer: "canvas" });
  chart.setOption({
    animation: false, title: { text: title, textStyle: { ...TEXT, fontSize: 14 } },
    tooltip: { trigger: "axis" }, legend: { bottom: 0, textStyle: TEXT },
    grid: { left: 50, right: 16, top: 40, bottom: 80 },
    xAxis: { type: "category", data: categories, axisLabel: { color: "#eef3f8", rotate: categories.length > 6 ? 30 : 0, interval: 0 } },
    yAxis: { type: "value", name: unit, nameTextStyle: { color: COLORS.muted }, axisLabel: { color: COLORS.muted }, splitLine: { lineStyle: { color: COLORS.line } } },
    series: seriesList.map((s) => ({ name: s.name, type: s.type || "bar", data: s.data, itemStyle: s.color ? { color: s.color } : undefined,
      lineStyle: s.dashed ? { type: "dashed" } : undefined, showSymbol: false, markLine: s.markLine })),
  });
  return chart;
}

export { COLORS };

// Horizontal bars, one per row, with an optional target per row drawn as a red mark (quota reports).
export function hbars(node, rows, { value, label, target }) {
  node.style.height = `${Math.max(80, rows.length * 24 + 30)}px`;
  const chart = chartLib().init(node, null, { renderer: "canvas" });
  const values = rows.map(value);
  const reached = rows.map((r, i) => !target || values[i] >= target(r));
  chart.setOption({
    animation: false, tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    grid: { left: 230, right: 50, top: 8, bottom: 22 },
    xAxis: { type: "value", axisLabel: { color: COLORS.muted }, splitLine: { lineStyle: { color: COLORS.line } } },
    yAxis: { type: "category", inverse: true, data: rows.map((r) => label(r).slice(0, 24)), axisLabel: { color: "#eef3f8", fontSize: 12 } },
    series: [
      { type: "bar", barWidth: 14, label: { show: true, position: "right", color: COLORS.muted, formatter: (p) => String(Math.round(p.value * 10) / 10) },
        data: values.map((v, i) => ({ value: v, itemStyle: { color: reached[i] ? COLORS.ok : COLORS.warn, borderRadius: 3 } })) },
      ...(target ? [{ type: "scatter", symbol: "rect", symbolSize: [3, 20], itemStyle: { color: COLORS.bad }, data: rows.map(target), z: 3 }] : []),
    ],
  });
  return chart;
}
