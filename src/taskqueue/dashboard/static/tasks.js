/* Tasks page: per-task throughput, failure rate and run time percentiles over a range
   (minute buckets up to 6 h, hour buckets up to 7 days), from GET /api/tasks/metrics. */
"use strict";
(function () {
  const h = TQ.h;
  const THROUGHPUT = [{ key: "completed", label: "completed", cls: "completed", area: true },
                      { key: "failed", label: "failed", cls: "failed" }];
  const RUNTIME = [{ key: "p50", label: "run time p50", cls: "enqueued" },
                   { key: "p95", label: "run time p95", cls: "depth" }];
  const state = { range: "24h", task: null, data: null };
  const keyOf = (t) => t.queue + "\u0000" + t.name;
  const pct = (r) => (r === null || r === undefined ? "–" : (100 * r).toFixed(r < 0.1 ? 1 : 0) + "%");

  /* chart points of one task, or of all of them (`all`: percentiles of the merged histograms) */
  function points(figures) {
    const ms = (v) => (v === null ? null : v * 1000);
    return figures.series.map((p) => ({ t: p.t, completed: p.completed, failed: p.failed, p50: ms(p.run_p50), p95: ms(p.run_p95) }));
  }

  function spark(series) {
    const W = 120, H = 26, max = Math.max(1, ...series.map((p) => p.completed + p.failed));
    const X = (i) => (series.length < 2 ? 0 : (i / (series.length - 1)) * W);
    const line = (key) => series.map((p, i) => `${X(i).toFixed(1)},${(H - 2 - (p[key] / max) * (H - 4)).toFixed(1)}`).join(" ");
    return h("svg", { class: "spark", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "jobs per step" },
      h("polyline", { class: "line completed", points: line("completed") }),
      series.some((p) => p.failed) ? h("polyline", { class: "line failed", points: line("failed") }) : null);
  }

  function drawCharts() {
    const chosen = state.task === null ? null : state.data.tasks.find((t) => keyOf(t) === state.task);
    TQ.$("#task-chart-title").textContent = chosen ? `${chosen.name} (queue ${chosen.queue})` : "All tasks";
    const figures = chosen || state.data.all;
    const shown = figures.completed + figures.failed ? points(figures) : [];
    const day = state.data.step >= 3600;
    if (!shown.length) {
      TQ.fill(TQ.$("#task-throughput"), h("p", { class: "muted", text: "No job finished in this range." }));
      TQ.fill(TQ.$("#task-runtime"));
    } else {
      TQ.lineChart(TQ.$("#task-throughput"), shown, THROUGHPUT, { day, label: "jobs finished per step" });
      TQ.lineChart(TQ.$("#task-runtime"), shown, RUNTIME, { day, label: "run time percentiles" });
    }
    TQ.fill(TQ.$("#task-throughput-legend"), TQ.legend(THROUGHPUT));
    TQ.fill(TQ.$("#task-runtime-legend"), TQ.legend(RUNTIME));
  }

  function drawTable() {
    const data = state.data;
    const rows = data.tasks.map((t) => h("tr", { class: "task-row" + (keyOf(t) === state.task ? " selected" : ""),
        dataset: { task: t.name, queue: t.queue }, onclick: () => { state.task = keyOf(t) === state.task ? null : keyOf(t); drawTable(); drawCharts(); } },
      h("td", { class: "name mono", text: t.name }), h("td", { text: t.queue }),
      h("td", { class: "num", text: TQ.num(t.completed) }), h("td", { class: "num", text: TQ.num(t.failed) }),
      h("td", { class: "num" + (t.failure_rate ? " bad" : ""), text: pct(t.failure_rate) }),
      h("td", { class: "num", text: TQ.num(t.throughput_per_min) }),
      h("td", { class: "num", text: TQ.secs(t.run_time.p50) }), h("td", { class: "num", text: TQ.secs(t.run_time.p95) }),
      h("td", { class: "num", text: TQ.secs(t.wait_time.p95) }), h("td", {}, spark(t.series))));
    TQ.fill(TQ.$("#task-table"), h("table", { id: "tasks-table" },
      h("thead", {}, h("tr", {}, ["task", "queue", "completed", "failed", "failure rate", "jobs / min", "run p50", "run p95", "wait p95", "over time"]
        .map((c, i) => h("th", { class: i >= 2 && i <= 8 ? "num" : "", text: c })))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 10, class: "muted", text: "No task ran in this range." })))));
    const step = data.step >= 3600 ? "hour" : data.step >= 300 ? "5 minutes" : "minute";
    TQ.$("#tasks-range-note").textContent = `last ${data.range}, one point per ${step}`;
    const span = (s) => (s >= 86400 ? `${Math.round(s / 86400)} days` : s > 3600 ? `${Math.round(s / 3600)} hours` : "an hour");
    TQ.$("#task-retention").textContent = `Minute buckets are kept ${span(data.retention.minutes_seconds)}, ` +
      `5-minute buckets ${span(data.retention.five_minutes_seconds)}, hour buckets ${span(data.retention.hours_seconds)}; percentiles come from fixed latency buckets (within one bucket of the truth). Click a task to chart it alone.`;
  }

  async function load() {
    state.data = await TQ.api("/api/tasks/metrics?range=" + encodeURIComponent(state.range));
    TQ.$$("#task-ranges button").forEach((b) => b.classList.toggle("primary", b.dataset.range === state.range));
    if (state.task !== null && !state.data.tasks.some((t) => keyOf(t) === state.task)) state.task = null;
    drawTable();
    drawCharts();
  }

  TQ.pages.tasks = function () {
    const search = new URLSearchParams(location.search);
    if (search.get("range")) state.range = search.get("range");
    TQ.$$("#task-ranges button").forEach((b) => b.addEventListener("click", () => {
      state.range = b.dataset.range;
      history.replaceState(null, "", location.pathname + "?range=" + state.range);
      load().catch(TQ.fail);
    }));
    TQ.every(15000, load);
  };
})();
