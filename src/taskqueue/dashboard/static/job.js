/* Job detail and workflow pages. */
"use strict";
(function () {
  const h = TQ.h;
  const FINISHED = ["completed", "failed", "cancelled"];

  function pre(id, value) {
    const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    return h("pre", { id, text: text === undefined ? "null" : text });
  }

  function fields(job) {
    return h("table", { class: "kv", id: "job-fields" }, h("tbody", {},
      Object.entries(job).filter(([key]) => key !== "exception").map(([key, value]) => h("tr", {}, h("th", { text: key }),
        h("td", { class: key.endsWith("_id") || key === "id" ? "mono" : "",
                  text: Array.isArray(value) ? value.join(", ") : (value === null ? "–" : String(value)) })))));
  }

  function actions(data, reload) {
    const job = data.job, box = h("div", { class: "row", id: "job-actions" });
    const act = (action, body) => TQ.api(`/api/jobs/${encodeURIComponent(job.id)}/${action}`, { method: "POST", body })
      .then((r) => { TQ.toast(`${action}: ${r.changed ? "done" : "no change"}`); return reload(); });
    if (!TQ.canAct()) return TQ.append(box, [h("span", { class: "muted", text: "Read-only: no actions." })]);
    const add = (node) => TQ.append(box, [node]);
    for (const action of data.actions) {
      if (action === "retry") add(TQ.button("Retry", () => act("retry"), { id: "action-retry", class: "primary" }));
      if (action === "cancel") add(TQ.button("Cancel", async () => {
        if (await TQ.confirm("Cancel job", `Cancel ${job.name} (${job.id})?`)) await act("cancel", { reason: "cancelled from the dashboard" });
      }, { id: "action-cancel" }));
      if (action === "priority") {
        const input = h("input", { id: "priority-input", size: 5, value: job.priority });
        add(input);
        add(TQ.button("Set priority", () => act("priority", { priority: input.value }), { id: "action-priority" }));
      }
      if (action === "delete") add(TQ.button("Delete", async () => {
        if (await TQ.confirm("Delete job", "Delete this job? This cannot be undone.")) {
          await TQ.api(`/api/jobs/${encodeURIComponent(job.id)}/delete`, { method: "POST" });
          location.href = TQ.url("/jobs");
        }
      }, { id: "action-delete", class: "danger" }));
    }
    return box;
  }

  function attempts(list) {
    const when = (at) => (at === null ? "–" : TQ.time(at));
    const error = (text) => {
      if (!text) return "";
      const lines = text.trim().split("\n");
      return h("details", {}, h("summary", { text: lines[lines.length - 1] }), h("pre", { text }));
    };
    return h("table", { id: "job-attempts" },
      h("thead", {}, h("tr", {}, ["#", "worker", "started", "ended", "outcome", "error"].map((c) => h("th", { text: c })))),
      h("tbody", {}, list.map((a) => h("tr", {}, h("td", { text: String(a.attempt) }), h("td", { class: "mono", text: a.worker || "–" }),
        h("td", { class: "mono", text: when(a.started_at) }), h("td", { class: "mono", text: when(a.ended_at) }),
        h("td", {}, TQ.badge(a.outcome)), h("td", {}, error(a.error))))));
  }

  /* folded classes (group:... ids) the user expanded, per page */
  const expanded = new Set();

  async function drawGraph(container, url, focusLink, redraw) {
    const data = await TQ.api(url + (expanded.size ? "?expand=" + encodeURIComponent(Array.from(expanded).join(",")) : ""));
    if (data.nodes.length <= 1 && !data.batch) { TQ.fill(container, h("p", { class: "muted", text: "No dependencies." })); return data; }
    TQ.graph(container, data, (node) => {
      if (node.group) { expanded.add(node.id); (redraw || (() => drawGraph(container, url, focusLink)))(); }
      else location.href = TQ.url("/jobs/" + encodeURIComponent(node.id));
    });
    if (data.collapsed || expanded.size) {
      container.appendChild(h("p", { class: "muted", id: "graph-folded" },
        `${TQ.num(data.jobs)} jobs; ${data.collapsed} ${data.collapsed === 1 ? "group" : "groups"} of interchangeable jobs (same task, state and neighbours) drawn as one counted node each — click one to show its jobs. `,
        expanded.size ? h("button", { type: "button", class: "small", id: "graph-fold", text: "Fold them again",
          onclick: () => { expanded.clear(); (redraw || (() => drawGraph(container, url, focusLink)))(); } }) : null));
    }
    if (data.truncated) container.appendChild(h("p", { class: "muted", text: "Graph cut short (too many jobs)." }));
    if (focusLink) container.appendChild(h("a", { href: focusLink, text: "Open the workflow page →" }));
    return data;
  }

  TQ.pages.job = function (params) {
    const url = "/api/jobs/" + encodeURIComponent(params.job_id);
    let timer = null, shown = null;
    const reload = async (force) => {
      const data = await TQ.api(url);
      const job = data.job;
      TQ.fill(TQ.$("#job-title"), h("span", { id: "job-name", text: job.name }), TQ.badge(job.state));
      if (force === true || shown !== job.state + job.priority) {  /* keep a half-typed priority */
        TQ.fill(TQ.$("#job-head"), actions(data, () => reload(true)));
        shown = job.state + job.priority;
      }
      /* the attempt history is as wide as the fields: it goes under them */
      TQ.fill(TQ.$("#job-main"), fields(job), data.attempts.length ? [h("h2", { class: "below", text: "Attempts" }), attempts(data.attempts)] : null);
      const side = [];
      if (job.exception) side.push(h("h2", { text: "Exception" }), pre("job-exception", job.exception));
      side.push(h("h2", { text: "Arguments" }));
      if (data.named_args) {  /* positional arguments by parameter name (the task is known here) */
        side.push(h("table", { id: "job-named-args" }, h("tbody", {}, Object.entries(data.named_args).map(([name, value]) =>
          h("tr", {}, h("th", { class: "mono", text: name }), h("td", { class: "mono", text: JSON.stringify(value) }))))));
      }
      side.push(data.payload_visible && !data.payload_error
        ? pre("job-payload", data.payload) : h("p", { class: "muted", id: "job-payload", text: data.payload_error }));
      if ("result" in data) side.push(h("h2", { text: "Result" }), pre("job-result", data.result));
      if (data.result_error) side.push(h("p", { class: "muted", text: data.result_error }));
      side.push(h("h2", { text: "Timeline" }), h("ul", { class: "timeline" }, data.timeline.map((e) =>
        h("li", {}, h("span", { class: "mono", text: TQ.time(e.at) }), " ", e.what, e.detail ? h("span", { class: "muted", text: " — " + e.detail }) : null))));
      TQ.fill(TQ.$("#job-side"), side);
      await drawGraph(TQ.$("#job-graph"), url + "/graph", TQ.url("/workflows/" + encodeURIComponent(job.id)));
      if (FINISHED.includes(job.state) && timer) { clearInterval(timer); timer = null; }
    };
    timer = TQ.every(3000, reload);
  };

  function workflow(url) {
    const draw = async () => {
      const data = await drawGraph(TQ.$("#workflow-graph"), url, null, draw);
      const counts = {};
      data.nodes.forEach((n) => { counts[n.state] = (counts[n.state] || 0) + (n.count || 1); });
      TQ.fill(TQ.$("#workflow-summary"), Object.entries(counts).map(([s, n]) => h("span", {}, TQ.badge(s), " ", TQ.num(n), "  ")),
        data.batch ? h("span", { class: "muted", text: ` · batch ${data.batch.name}: ${data.batch.progress.toFixed(0)}% done` }) : null);
      const jobCell = (n) => n.group
        ? h("td", {}, h("button", { type: "button", class: "small expand-group", text: `${TQ.num(n.count)} jobs: show`,
            onclick: () => { expanded.add(n.id); draw().catch(TQ.fail); } }))
        : h("td", {}, TQ.jobLink(n.id, TQ.short(n.id)));
      TQ.fill(TQ.$("#workflow-nodes"), h("table", {}, h("thead", {}, h("tr", {}, ["job", "task", "queue", "state"].map((c) => h("th", { text: c })))),
        h("tbody", {}, data.nodes.map((n) => h("tr", { class: n.group ? "group-row" : "" }, jobCell(n), h("td", { text: n.name }),
          h("td", { text: n.queue }), h("td", {}, TQ.badge(n.state)))))));
    };
    TQ.every(2000, draw);
  }

  TQ.pages.workflow = (params) => workflow("/api/jobs/" + encodeURIComponent(params.job_id) + "/graph");
  TQ.pages.batch = (params) => workflow("/api/batches/" + encodeURIComponent(params.batch_id) + "/graph");
})();
