/* Overview: live counts, throughput, percentiles, queue depths and charts (server-sent events). */
"use strict";
(function () {
  const h = TQ.h;
  const STATES = ["pending", "processing", "retrying", "completed", "failed", "cancelled"];
  const HOUR = [{ key: "completed", label: "completed / min", cls: "completed", area: true },
                { key: "failed", label: "failed / min", cls: "failed" },
                { key: "enqueued", label: "enqueued / min", cls: "enqueued" }];
  const DAY = [{ key: "completed", label: "completed / 15 min", cls: "completed", area: true },
               { key: "failed", label: "failed / 15 min", cls: "failed" },
               { key: "depth", label: "waiting jobs (max)", cls: "depth" }];
  let range = "hour", dayTimer = null;

  function card(id, label, value, sub, cls) {
    return h("div", { class: "card " + (cls || "") }, h("div", { class: "label", text: label }),
      h("div", { class: "value", id, text: value }), h("div", { class: "sub", text: sub || "" }));
  }

  function render(data) {
    const t = data.totals, tp = data.throughput;
    TQ.fill(TQ.$("#cards"),
      STATES.map((s) => card("total-" + s, s, TQ.num(t[s]), null, s)),
      card("throughput", "throughput", TQ.num(tp.completed_per_min) + "/min",
           tp.source === "stats" ? "completed in the last minute" : "from the store's last minute"),
      card("failures", "failures", tp.failed_per_min === null ? "–" : TQ.num(tp.failed_per_min) + "/min",
           "failed in the last minute"),
      card("workers", "workers", TQ.num(data.workers.count), data.workers.busy + " busy"),
      card("oldest", "oldest waiting", TQ.secs(data.oldest_pending_age), "since its job was due"));
    const lat = data.latency;
    const row = (label, p) => h("tr", {}, h("th", { text: label }),
      ["p50", "p95", "p99"].map((k) => h("td", { class: "num", text: TQ.secs(p[k]) })),
      h("td", { class: "num", text: TQ.num(p.count) }));
    TQ.fill(TQ.$("#latency"), h("table", { id: "latency-table" },
      h("thead", {}, h("tr", {}, h("th", {}), ["p50", "p95", "p99", "jobs"].map((k) => h("th", { class: "num", text: k })))),
      h("tbody", {}, row("wait time", lat.wait), row("run time", lat.run))),
      h("p", { class: "muted", text: lat.source === "stats" ? `over the last ${lat.window} (worker statistics)`
        : (lat.run.count ? `over the ${lat.window} jobs (from their timestamps)` : "no completed job yet") }));
    const depths = data.queues.map((q) => ({ name: q.name, pending: q.pending, retrying: q.retrying,
                                            processing: q.processing, paused: q.paused }));
    const max = Math.max(1, ...depths.map((q) => q.pending + q.retrying + q.processing));
    TQ.fill(TQ.$("#depths"), depths.length ? depths.map((q) => {
      const track = h("div", { class: "track" });
      for (const s of ["processing", "pending", "retrying"]) {
        const fill = h("div", { class: "fill " + s, title: `${s}: ${q[s]}` });
        fill.style.width = (100 * q[s] / max) + "%";
        track.appendChild(fill);
      }
      return h("div", { class: "bar", dataset: { queue: q.name } },
        h("a", { href: TQ.url("/jobs?queue=" + encodeURIComponent(q.name)), text: q.name + (q.paused ? " (paused)" : "") }),
        track, h("span", { class: "num", text: TQ.num(q.pending + q.retrying + q.processing) }));
    }) : h("p", { class: "muted", text: "No queues yet." }));
    if (range === "hour") TQ.lineChart(TQ.$("#chart"), data.series, HOUR, { label: "last hour" });
    TQ.$("#updated").textContent = "updated " + TQ.time(data.generated_at);
  }

  async function showDay() {
    const data = await TQ.api("/api/series?range=day");
    if (range === "day") TQ.lineChart(TQ.$("#chart"), data.points, DAY, { day: true, label: "last day" });
  }

  function setRange(value, last) {
    range = value;
    TQ.$$("#range button").forEach((b) => b.classList.toggle("primary", b.dataset.range === value));
    TQ.fill(TQ.$("#legend"), TQ.legend(value === "hour" ? HOUR : DAY));
    clearInterval(dayTimer);
    if (value === "day") dayTimer = TQ.every(60000, showDay);
    else if (last) render(last);
  }

  TQ.pages.overview = function () {
    let last = null;
    TQ.$$("#range button").forEach((b) => b.addEventListener("click", () => setRange(b.dataset.range, last)));
    setRange("hour");
    TQ.live((data) => { last = data; render(last); });
  };
})();
