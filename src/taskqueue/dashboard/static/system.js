/* Queues, Workers, Schedules, Alerts and Audit pages. */
"use strict";
(function () {
  const h = TQ.h;
  const enc = encodeURIComponent;

  function table(id, columns, rows, empty) {
    return h("table", { id }, h("thead", {}, h("tr", {}, columns.map((c) =>
      h("th", { class: c.startsWith("#") ? "num" : "", text: c.replace(/^#/, "") })))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: columns.length, class: "muted", text: empty }))));
  }

  /* -- queues ------------------------------------------------------------------------------ */
  const QSTATES = ["pending", "processing", "retrying", "failed", "completed", "cancelled"];

  function queueRow(q, reload) {
    const post = (action, body) => TQ.api(`/api/queues/${enc(q.name)}/${action}`, { method: "POST", body });
    const limits = q.limits || {};
    const rate = h("input", { size: 8, placeholder: "e.g. 100/m", value: limits.rate || "", class: "limit-rate" });
    const conc = h("input", { size: 4, placeholder: "n", value: limits.concurrency || "", class: "limit-concurrency" });
    return h("tr", { class: "queue-row", dataset: { queue: q.name } },
      h("td", {}, h("a", { href: TQ.url("/jobs?queue=" + enc(q.name)), text: q.name })),
      h("td", {}, TQ.badge(q.paused ? "paused" : "active")),
      QSTATES.map((s) => h("td", { class: "num" }, h("a", { href: TQ.url(`/jobs?queue=${enc(q.name)}&state=${s}`), text: TQ.num(q[s]) }))),
      h("td", { class: "num", text: TQ.secs(q.oldest_pending_age) }),
      h("td", { class: "num", text: TQ.num(q.completed_per_min) }),
      h("td", {}, TQ.canAct() ? h("span", { class: "row" }, rate, conc, TQ.button("Set", async () => {
        await post("limits", { rate: rate.value.trim(), concurrency: conc.value.trim() });
        TQ.toast(`limits of ${q.name} saved`); await reload();
      }, { class: "small" })) : h("span", { text: [limits.rate, limits.concurrency && limits.concurrency + " at once"].filter(Boolean).join(", ") || "–" })),
      h("td", {}, h("span", { class: "row" },
        q.paused ? TQ.button("Resume", async () => { await post("resume"); TQ.toast(`${q.name} resumed`); await reload(); }, { class: "small primary", dataset: { action: "resume" } })
                 : TQ.button("Pause", async () => { await post("pause"); TQ.toast(`${q.name} paused`); await reload(); }, { class: "small", dataset: { action: "pause" } }),
        TQ.button("Purge…", async () => {
          if (!(await TQ.confirm("Purge queue", `Delete every pending and retrying job of ${q.name}? This cannot be undone.`, q.name))) return;
          const answer = await post("purge", { confirm: q.name });
          const op = await TQ.follow(answer.operation, () => {});
          TQ.toast(`purged ${op.changed} jobs from ${q.name}`); await reload();
        }, { class: "small danger", dataset: { action: "purge" } }))));
  }

  TQ.pages.queues = function () {
    const reload = async () => {
      if (TQ.$("dialog[open]") || (document.activeElement && document.activeElement.tagName === "INPUT")) return;
      const data = await TQ.api("/api/queues");
      TQ.fill(TQ.$("#queues"), table("queues-table", ["queue", "status", ...QSTATES.map((s) => "#" + s),
        "#oldest waiting", "#done/min", "limits (rate, concurrency)", "actions"],
        data.queues.map((q) => queueRow(q, reload)), "No queues yet."));
    };
    TQ.every(3000, reload);
  };

  /* -- workers ----------------------------------------------------------------------------- */
  TQ.pages.workers = function () {
    const reload = async () => {
      const data = await TQ.api("/api/workers");
      const act = (w, action) => TQ.button(action[0].toUpperCase() + action.slice(1), async () => {
        const r = await TQ.api(`/api/workers/${enc(w.id)}/${action}`, { method: "POST" });
        TQ.toast(r.result); setTimeout(reload, 800);
      }, { class: "small", dataset: { action } });
      TQ.fill(TQ.$("#workers"), table("workers-table", ["worker", "state", "queues", "current job", "#processed",
        "#failed", "#memory MB", "#heartbeat", "#uptime", "actions"], data.workers.map((w) => h("tr", { class: "worker-row", dataset: { id: w.id } },
        h("td", { class: "mono", text: w.id }),
        h("td", {}, TQ.badge(w.paused && w.state !== "paused" ? "pausing" : w.state)),
        h("td", { text: (w.queues || []).join(", ") }),
        h("td", {}, (w.current_jobs || []).map((id) => TQ.jobLink(id, TQ.short(id)))),
        h("td", { class: "num", text: TQ.num(w.processed) }), h("td", { class: "num", text: TQ.num(w.failed) }),
        h("td", { class: "num", text: TQ.num(w.rss_mb) }), h("td", { class: "num", text: TQ.secs(w.heartbeat_age) + " ago" }),
        h("td", { class: "num", text: TQ.secs(w.uptime) }),
        h("td", {}, h("span", { class: "row" }, [w.paused ? act(w, "resume") : act(w, "pause"),
          w.local ? act(w, "recycle") : h("span", { class: "muted", text: "on " + w.host })])))), "No live worker."));
    };
    TQ.every(1000, reload);
  };

  /* -- schedules --------------------------------------------------------------------------- */
  TQ.pages.schedules = function () {
    const reload = async () => {
      const data = await TQ.api("/api/schedules");
      const post = (s, action) => TQ.api(`/api/schedules/${enc(s.name)}/${action}`, { method: "POST" });
      TQ.fill(TQ.$("#schedules"), table("schedules-table", ["schedule", "task", "when", "time zone", "next runs", "last run", "missed", "state", "actions"],
        data.schedules.map((s) => h("tr", { class: "schedule-row", dataset: { name: s.name } },
          h("td", { text: s.name }), h("td", { class: "mono", text: s.task }),
          h("td", {}, s.text || "", s.text ? h("br") : null, h("code", { text: s.cron })), h("td", { text: s.timezone }),
          h("td", {}, s.next_runs.map((r) => h("div", { title: r.utc + " UTC", text: r.local }))),
          h("td", { text: s.last_fire_local || "–" }), h("td", { text: s.missed }),
          h("td", {}, TQ.badge(s.paused ? "paused" : "active")),
          h("td", {}, h("span", { class: "row" },
            s.paused ? TQ.button("Resume", async () => { await post(s, "resume"); await reload(); }, { class: "small primary", dataset: { action: "resume" } })
                     : TQ.button("Pause", async () => { await post(s, "pause"); await reload(); }, { class: "small", dataset: { action: "pause" } }),
            TQ.button("Run now", async () => {
              const r = await post(s, "run");
              TQ.toast(`enqueued job ${r.schedule.job_id}`);
            }, { class: "small", dataset: { action: "run" } }))))), "No schedule. Add one with `taskqueue schedule:add`."));
    };
    TQ.every(10000, reload);
  };

  /* -- alerts ------------------------------------------------------------------------------ */
  TQ.pages.alerts = async function () {
    const data = await TQ.api("/api/alerts");
    const notes = [];
    if (data.config_error) notes.push(h("div", { class: "notice error", text: "Alert rules could not be read: " + data.config_error }));
    else if (!data.config) notes.push(h("div", { class: "notice", text: "No alerts file found (alerts.toml, or [alerts] in taskqueue.toml). Start the dashboard with --alerts PATH to show rules." }));
    else notes.push(h("p", { class: "muted", text: "Rules from " + data.config }));
    TQ.fill(TQ.$("#alert-notes"), notes);
    TQ.fill(TQ.$("#alert-rules"), table("rules-table", ["rule", "kind", "queue", "severity", "channels", "settings"],
      data.rules.map((r) => h("tr", {}, h("td", { text: r.name }), h("td", { text: r.kind }), h("td", { text: r.queue }),
        h("td", {}, TQ.badge(r.severity)), h("td", { text: r.channels.join(", ") || "all" }),
        h("td", { class: "mono", text: Object.entries(r.params).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("/") : v}`).join("  ") }))),
      "No rules."));
    TQ.fill(TQ.$("#alert-channels"), table("channels-table", ["channel", "type"],
      data.channels.map((c) => h("tr", {}, h("td", { text: c.name }), h("td", { text: c.type }))), "No channel: notifications go to the log."));
    TQ.fill(TQ.$("#alert-active"), table("active-table", ["alert", "severity", "since", "message"],
      data.active.map((a) => h("tr", {}, h("td", { text: a.alert }), h("td", {}, TQ.badge(a.severity)),
        h("td", { text: TQ.time(a.since) }), h("td", { text: a.message }))), "Nothing firing."));
    TQ.fill(TQ.$("#alert-history"), table("history-table", ["time", "status", "alert", "message", "delivery"],
      data.history.map((n) => h("tr", {}, h("td", { text: TQ.time(n.at) }), h("td", {}, TQ.badge(n.status)),
        h("td", { text: n.alert }), h("td", { text: n.message }),
        h("td", { class: "mono", text: Object.entries(n.channels || {}).map(([k, v]) => `${k}: ${v}`).join(", ") }))),
      "No notification sent yet."));
  };

  /* -- audit ------------------------------------------------------------------------------- */
  TQ.pages.audit = function () {
    const form = TQ.$("#audit-filters");
    const reload = async () => {
      const params = new URLSearchParams(new FormData(form));
      const data = await TQ.api("/api/audit?" + params);
      TQ.fill(TQ.$("#audit"), table("audit-table", ["time", "who", "role", "action", "target", "#jobs", "outcome", "from"],
        data.entries.map((e) => h("tr", { class: "audit-row" }, h("td", { text: TQ.time(e.at) }), h("td", { text: e.actor }),
          h("td", { text: e.role }), h("td", { text: e.action }),
          h("td", {}, /^[0-9a-f-]{36}$/.test(e.target) ? TQ.jobLink(e.target) : h("span", { text: e.target })),
          h("td", { class: "num", text: TQ.num(e.count) }), h("td", { text: e.outcome }), h("td", { text: e.client || "" }))),
        "No action recorded yet."));
    };
    form.addEventListener("submit", (e) => { e.preventDefault(); reload().catch(TQ.fail); });
    TQ.every(10000, reload);
  };
  /* Scheduled and Retrying: jobs waiting for a due time, with it absolute and relative */
  const dueView = (view) => () => {
    const inTime = (at, now) => { const s = Math.round(at - now); return s <= 0 ? "due now" : "in " + TQ.secs(s); };
    const reload = async () => {
      const data = await TQ.api("/api/due/" + view);
      const runNow = (job) => TQ.button("Run now", async () => {
        await TQ.api(`/api/jobs/${enc(job.id)}/run-now`, { method: "POST" });
        TQ.toast("due now: " + job.name);
        await reload();
      }, { class: "small primary" });
      TQ.fill(TQ.$("#due-jobs"), data.jobs.length === 0 ? h("p", { class: "muted", text: view === "scheduled" ? "No scheduled jobs." : "No retrying jobs." }) :
        h("table", { id: "due-table" },
          h("thead", {}, h("tr", {}, ["job", "task", "queue", "due", "due at", "attempts", view === "retrying" ? "latest error" : "priority", ""].map((c) => h("th", { text: c })))),
          h("tbody", {}, data.jobs.map((job) => h("tr", { class: "due-row", dataset: { id: job.id } },
            h("td", {}, TQ.jobLink(job.id, TQ.short(job.id))), h("td", { text: job.name }), h("td", { text: job.queue }),
            h("td", { class: "due-in", text: inTime(job.due_at, Date.now() / 1000) }),
            h("td", { class: "mono", title: new Date(job.due_at * 1000).toISOString(), text: TQ.time(job.due_at) }),
            h("td", { class: "num", text: `${job.attempts}/${job.max_attempts}` }),
            view === "retrying" ? h("td", { class: "error", text: job.error || "" }) : h("td", { class: "num", text: String(job.priority) }),
            h("td", {}, view === "scheduled" ? runNow(job) : null))))),
        h("p", { class: "muted", text: `${TQ.num(data.total)} ${view} job${data.total === 1 ? "" : "s"}` + (data.complete === false ? ` among the newest ${TQ.num(data.scanned)} of that state` : "") +
          (data.total > data.jobs.length ? `; the ${data.jobs.length} due soonest are shown.` : ".") }));
    };
    TQ.every(5000, reload);
  };
  TQ.pages.scheduled = dueView("scheduled");
  TQ.pages.retrying = dueView("retrying");
})();
