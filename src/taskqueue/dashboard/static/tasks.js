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

  /* the series of one task, or of every task summed (percentiles then are the worst task's) */
  function combined(tasks) {
    if (!tasks.length) return [];
    return tasks[0].series.map((_, i) => {
      const points = tasks.map((t) => t.series[i]);
      const worst = (k) => { const v = points.map((p) => p[k]).filter((x) => x !== null); return v.length ? Math.max(...v) : null; };
      return { t: points[0].t, completed: points.reduce((a, p) => a + p.completed, 0),
               failed: points.reduce((a, p) => a + p.failed, 0),
               p50: worst("run_p50") === null ? null : worst("run_p50") * 1000,
               p95: worst("run_p95") === null ? null : worst("run_p95") * 1000 };
    });
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
    const tasks = state.data.tasks.filter((t) => state.task === null || keyOf(t) === state.task);
    const chosen = state.task === null ? null : tasks[0];
    TQ.$("#task-chart-title").textContent = chosen ? `${chosen.name} (queue ${chosen.queue})` : "All tasks";
    const points = combined(tasks);
    const day = state.data.step >= 3600;
    if (!points.length) {
      TQ.fill(TQ.$("#task-throughput"), h("p", { class: "muted", text: "No job finished in this range." }));
      TQ.fill(TQ.$("#task-runtime"));
    } else {
      TQ.lineChart(TQ.$("#task-throughput"), points, THROUGHPUT, { day, label: "jobs finished per step" });
      TQ.lineChart(TQ.$("#task-runtime"), points, RUNTIME, { day, label: "run time percentiles" });
    }
    TQ.fill(TQ.$("#task-throughput-legend"), TQ.legend(THROUGHPUT));
    TQ.fill(TQ.$("#task-runtime-legend"), TQ.legend(state.task === null ? [
      { label: "p50 (slowest task)", cls: "enqueued" }, { label: "p95 (slowest task)", cls: "depth" }] : RUNTIME));
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
    const span = (s) => (s >= 86400 ? `${Math.round(s / 86400)} days` : `${Math.round(s / 3600)} hours`);
    TQ.$("#task-retention").textContent = `Minute buckets are kept ${span(data.retention.minutes_seconds)}, ` +
      `hour buckets ${span(data.retention.hours_seconds)}; percentiles come from fixed latency buckets (within one bucket of the truth). Click a task to chart it alone.`;
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
