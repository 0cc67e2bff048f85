/* Jobs and Failed pages: filters, keyset pages, selection and bulk actions. */
"use strict";
(function () {
  const h = TQ.h;
  const STATES = ["pending", "processing", "retrying", "completed", "failed", "cancelled"];
  const FIELDS = ["queue", "name", "tag", "id", "error", "group", "since", "until", "args", "q", "order"];
  const state = { cursors: [null], selected: new Set(), jobs: [], actions: {}, count: null, preset: null,
                  sort: { column: "created", dir: "desc" }, signature: null };
  /* header -> sort column; "created" is the store's keyset order (the form's order field) */
  const SORTABLE = { id: "created", task: "name", queue: "queue", state: "state", priority: "priority",
                     attempts: "attempts", created: "created", updated: "updated" };
  const NUMERIC = ["priority", "attempts"];
  const TEXT_FIRST = ["name", "queue", "state"];  /* these start ascending, the rest descending */

  function filterParams() {
    const form = TQ.$("#filters");
    const params = new URLSearchParams();
    const states = TQ.$$("input[name=state]:checked", form).map((i) => i.value);
    if (states.length) params.set("state", states.join(","));
    for (const name of FIELDS) {
      const value = form.elements[name].value.trim();
      if (!value || (name === "order" && value === "newest")) continue;
      if (name === "args") value.split(/\s+/).forEach((a) => params.append("args", a));
      else params.set(name, value);
    }
    return params;
  }

  function loadForm(params) {
    const form = TQ.$("#filters");
    const states = (params.getAll("state").join(",") || state.preset || "").split(",").filter(Boolean);
    TQ.$$("input[name=state]", form).forEach((i) => { i.checked = states.includes(i.value); });
    for (const name of FIELDS) {
      form.elements[name].value = name === "args" ? params.getAll("args").join(" ") : (params.get(name) || (name === "order" ? "newest" : ""));
    }
  }

  function asObject(params) {
    const out = {};
    for (const key of new Set(params.keys())) {
      const values = params.getAll(key);
      out[key] = values.length > 1 ? values : values[0];
    }
    return out;
  }

  function listParams(cursor) {
    const params = filterParams();
    if (state.sort.column !== "created") { params.set("sort", state.sort.column); params.set("dir", state.sort.dir); }
    if (cursor) params.set("cursor", cursor);
    return params;
  }

  /* keep: a live refresh of the same page (the selection and a typed priority stay) */
  async function load(cursor, keep) {
    const data = await TQ.api("/api/jobs?" + listParams(cursor));
    state.jobs = data.jobs; state.actions = data.actions;
    if (keep) { const here = new Set(data.jobs.map((j) => j.id)); state.selected.forEach((id) => { if (!here.has(id)) state.selected.delete(id); }); }
    else state.selected.clear();
    renderTable(data);
    syncChecks();
    const sort = data.sort || {};
    TQ.$("#page-info").textContent = `page ${state.cursors.length}` +
      (data.partial ? ` · scanned ${TQ.num(data.scanned)} jobs` + (data.decoded ? `, decoded ${TQ.num(data.decoded)} (limit ${TQ.num(data.max_decode)})` : "") + ": continue to scan further" : "") +
      (sort.column && sort.column !== "created" ? ` · sorted by ${sort.column} ` +
        (sort.complete ? `(all ${TQ.num(sort.among)} matches)` : `among the newest ${TQ.num(sort.among)} matches`) : "");
    TQ.$("#next").disabled = !data.next_cursor;
    TQ.$("#next").dataset.cursor = data.next_cursor || "";
    TQ.$("#prev").disabled = state.cursors.length <= 1;
  }

  // "at most": the time range or argument filters are not counted; "about": the store's
  // estimate stands in for a count that would read most of a large table
  function countQualifier(data) {
    return (data.at_most ? "at most " : "") + (data.estimate ? "about " : "");
  }

  async function loadCount() {
    TQ.$("#count").textContent = "counting…";
    try {
      const data = await TQ.api("/api/jobs/count?" + filterParams());
      state.count = data.count; state.qualifier = countQualifier(data);
      TQ.$("#count").textContent = state.qualifier + TQ.num(data.count) + " matching";
    } catch (err) { TQ.$("#count").textContent = ""; TQ.fail(err); }
    renderBulk();
  }

  /* "3m 5s ago", the local time and UTC on hover; kept current by the ticker in setup() */
  function when(iso) {
    return h("td", { class: "ago", dataset: { at: iso }, title: `${TQ.time(iso)} (${iso.replace("+00:00", "Z")})`, text: TQ.ago(iso) });
  }

  function header(label) {
    const column = SORTABLE[label];
    const cls = NUMERIC.includes(label) ? "num" : "";
    if (!column) return h("th", { class: cls, text: label });
    const on = state.sort.column === column && (label !== "id");
    const arrow = on ? (state.sort.dir === "desc" ? " ▼" : " ▲") : "";
    return h("th", { class: cls + " sortable" + (on ? " sorted" : ""), dataset: { sort: column }, title: "sort by " + label,
                     "aria-sort": on ? (state.sort.dir === "desc" ? "descending" : "ascending") : null,
                     onclick: () => sortBy(column) }, label + arrow);
  }

  function sortBy(column) {
    const same = state.sort.column === column;
    const dir = same ? (state.sort.dir === "desc" ? "asc" : "desc") : (TEXT_FIRST.includes(column) ? "asc" : "desc");
    state.sort = { column, dir };
    if (column === "created") TQ.$("#filters").elements.order.value = dir === "desc" ? "newest" : "oldest";
    remember();
    refresh(true).catch(TQ.fail);
  }

  function remember() {
    const params = filterParams();
    if (state.sort.column !== "created") { params.set("sort", state.sort.column); params.set("dir", state.sort.dir); }
    history.replaceState(null, "", location.pathname + "?" + params);
  }

  function renderTable(data) {
    const all = h("input", { type: "checkbox", id: "select-all", "aria-label": "select all on this page",
      onchange: (e) => { state.jobs.forEach((j) => e.target.checked ? state.selected.add(j.id) : state.selected.delete(j.id)); syncChecks(); } });
    const preview = TQ.me && TQ.me.payloads;
    const columns = ["id", "task", "queue", "state", preview ? "arguments" : null, "tags", "priority", "attempts", "created", "updated", "error"].filter(Boolean);
    const rows = data.jobs.map((job) => h("tr", { class: "job-row", dataset: { id: job.id, state: job.state } },
      h("td", {}, TQ.canAct() ? h("input", { type: "checkbox", class: "pick", "aria-label": "select " + job.id,
        onchange: (e) => { e.target.checked ? state.selected.add(job.id) : state.selected.delete(job.id); syncChecks(); } }) : null),
      h("td", { class: "id" }, TQ.jobLink(job.id, TQ.short(job.id))),
      h("td", { class: "name", text: job.name }),
      h("td", {}, h("a", { href: TQ.url("/jobs?queue=" + encodeURIComponent(job.queue)), text: job.queue })),
      h("td", {}, TQ.badge(job.state)),
      preview ? h("td", { class: "args mono", title: job.args_preview || "", text: job.args_preview === null || job.args_preview === undefined ? "–" : job.args_preview }) : null,
      h("td", { class: "tags" }, job.tags.map((t) => h("a", { class: "tag", href: TQ.url("/jobs?tag=" + encodeURIComponent(t)), text: t }))),
      h("td", { class: "num", text: job.priority }),
      h("td", { class: "num", text: `${job.attempts}/${job.max_attempts}` }),
      when(job.created_at), when(job.updated_at),
      h("td", { class: "error", title: job.error || "", text: job.error || "" })));
    TQ.fill(TQ.$("#results"), h("table", { id: "jobs-table" },
      h("thead", {}, h("tr", {}, h("th", {}, TQ.canAct() ? all : null), columns.map(header))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: columns.length + 1, class: "muted", text: "No job matches." })))));
  }

  function syncChecks() {
    TQ.$$("tr.job-row").forEach((row) => {
      const on = state.selected.has(row.dataset.id);
      row.classList.toggle("selected", on);
      const box = TQ.$("input.pick", row); if (box) box.checked = on;
    });
    renderBulk();
  }

  function allowed(action) {
    return state.jobs.filter((j) => state.selected.has(j.id) && (state.actions[j.state] || []).includes(action)).length;
  }

  function renderBulk() {
    const bar = TQ.$("#bulk");
    if (!TQ.canAct()) { bar.classList.add("hidden"); return; }
    bar.classList.remove("hidden");
    const n = state.selected.size;
    const typed = TQ.$("#bulk-priority-value");
    const priority = h("input", { id: "bulk-priority-value", "aria-label": "priority", type: "text", size: 6, placeholder: "priority", value: typed ? typed.value : "10" });
    const sel = (action, label, cls) => TQ.button(`${label} (${allowed(action)})`, () => runSelection(action),
                                                  { id: "bulk-" + action, class: "small " + (cls || ""), disabled: !allowed(action) });
    const all = (action, label, cls) => TQ.button(label, () => runFilter(action),
                                                  { id: "all-" + action, class: "small " + (cls || "") });
    TQ.fill(bar,
      h("div", { class: "row" }, h("strong", { text: `${n} selected` }), sel("retry", "Retry"), sel("cancel", "Cancel"),
        priority, sel("priority", "Set priority"), sel("delete", "Delete", "danger")),
      h("div", { class: "row" }, h("span", { class: "muted", text: "Everything matching the filter" +
          (state.count !== null ? ` (${state.qualifier}${TQ.num(state.count)} jobs):` : ":") }),
        all("retry", "Retry all matching", "primary"), all("cancel", "Cancel all matching"),
        all("priority", "Set priority of all matching"), all("delete", "Delete all matching", "danger")),
      h("div", { id: "bulk-status", class: "muted", text: state.lastResult || "" }));
  }

  function extra(action) {
    return action === "priority" ? { priority: TQ.$("#bulk-priority-value").value.trim() } : {};
  }

  async function runSelection(action) {
    const ids = Array.from(state.selected);
    if (action === "delete" && !(await TQ.confirm("Delete jobs", `Delete ${ids.length} selected jobs? This cannot be undone.`))) return;
    const result = await TQ.api("/api/jobs/bulk", { method: "POST", body: Object.assign({ action, ids }, extra(action)) });
    TQ.toast(`${action}: ${result.changed} changed, ${result.skipped} skipped`);
    await refresh(false);
  }

  async function runFilter(action) {
    const filter = asObject(filterParams());
    const everything = Object.keys(filter).filter((k) => k !== "order").length === 0;
    // the exact number the action would change now: matches in a state it applies to, with
    // the time range and argument filters applied (the list header's count may say "at most")
    const counted = await TQ.api("/api/jobs/count?" + filterParams() + "&action=" + encodeURIComponent(action));
    const n = TQ.num(counted.count) + (counted.count === 1 ? " job" : " jobs");
    // counted.exact: this figure is exact (all filters applied), unlike an "at most" header
    const what = everything ? `EVERY job in the store whose state allows it: exactly ${n}` : `exactly ${n} matching (those whose state allows it)`;
    // an empty filter means the whole store: the API refuses it unless told `all: true`,
    // which is sent only after the word "all" was typed
    if (!(await TQ.confirm(`${action} all matching`, `${action} ${what}?`,
                           everything ? "all" : action === "delete" ? "delete" : null))) return;
    const body = Object.assign({ action, filter }, everything ? { all: true } : {}, extra(action));
    const answer = await TQ.api("/api/jobs/bulk", { method: "POST", body });
    const status = TQ.$("#bulk-status");
    state.running = true;
    let op;
    try {
      op = await TQ.follow(answer.operation, (o) => {
        status.textContent = `${o.action}: ${TQ.num(o.changed)} changed, ${TQ.num(o.skipped)} skipped, ${TQ.num(o.scanned)} scanned` + (o.done ? " — done" : "…");
      });
    } finally { state.running = false; }
    // the final line stays on the page (the bar is redrawn by the refresh below)
    state.lastResult = `${op.action}: ${TQ.num(op.changed)} changed, ${TQ.num(op.skipped)} skipped, ${TQ.num(op.scanned)} scanned` +
      (op.error ? ` — failed: ${op.error}` : " — done");
    if (op.error) TQ.toast(op.error, "error"); else TQ.toast(`${action}: ${op.changed} jobs changed`);
    await refresh(false);
  }

  async function refresh(first, keep) {
    if (first) state.cursors = [null];
    await load(state.cursors[state.cursors.length - 1], keep);
    loadCount();
    if (state.preset === "failed") loadGroups().catch(TQ.fail);
  }

  /* Failed page: the failures grouped by exception class and message pattern (ids and numbers
     as placeholders), each with its count, an example message, a link showing its jobs and
     "retry this group" (a bulk retry on state=failed + its pattern) */
  async function loadGroups() {
    const params = new URLSearchParams();
    const form = TQ.$("#filters");
    for (const name of ["queue", "name", "tag"]) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    const data = await TQ.api("/api/failures/groups?" + params);
    const show = (g) => { form.elements.error.value = ""; form.elements.group.value = g.pattern; TQ.$$("input[name=state]", form).forEach((i) => { i.checked = i.value === "failed"; }); form.requestSubmit(); };
    const retry = async (g) => {
      const filter = Object.assign(asObject(params), { state: "failed", group: g.pattern });
      const counted = await TQ.api("/api/jobs/count?" + new URLSearchParams(filter) + "&action=retry");
      if (!(await TQ.confirm("Retry this group", `Retry ${TQ.num(counted.count)} failed jobs whose error matches "${g.pattern}"?`))) return;
      const answer = await TQ.api("/api/jobs/bulk", { method: "POST", body: { action: "retry", filter } });
      const op = await TQ.follow(answer.operation, () => {});
      state.lastResult = `retry of group "${g.pattern}": ${TQ.num(op.changed)} changed, ${TQ.num(op.skipped)} skipped` + (op.error ? ` — failed: ${op.error}` : " — done");
      await refresh(false);
    };
    TQ.fill(TQ.$("#failure-groups"), data.groups.length === 0 ? h("p", { class: "muted", text: "No failed jobs." }) :
      h("table", { id: "groups-table" },
        h("thead", {}, h("tr", {}, ["jobs", "exception", "message", "tasks", "queues", "latest", ""].map((c) => h("th", { text: c })))),
        h("tbody", {}, data.groups.map((g) => h("tr", { class: "group-row", dataset: { pattern: g.pattern } },
          h("td", { class: "num", text: TQ.num(g.count) }), h("td", { class: "mono", text: g.exception_class || "–" }),
          h("td", { class: "name" }, h("span", { text: g.message }),
            g.example === g.pattern ? null : h("div", { class: "muted example", text: "e.g. " + g.example })), h("td", { class: "mono", text: g.names.join(", ") }),
          h("td", { text: g.queues.join(", ") }), h("td", {}, TQ.jobLink(g.latest_id, TQ.time(g.latest_at))),
          h("td", {}, h("button", { type: "button", class: "small", text: "Show", onclick: () => show(g) }),
            TQ.button("Retry this group", () => retry(g), { class: "small primary" })))))),
      data.complete ? null : h("p", { class: "muted", text: `Grouped from the newest ${TQ.num(data.scanned)} failed jobs.` }));
  }

  /* Live: the overview stream (one snapshot per interval for every open page) says when the
     counts by state moved; the page shown is then fetched again, selection kept. Paused while
     a dialog is open or a bulk operation runs. */
  function live() {
    let busy = false;
    TQ.live((data) => {
      const signature = JSON.stringify(data.totals);
      if (signature === state.signature || busy || TQ.$("dialog[open]") || state.running) return;
      const first = state.signature === null;
      state.signature = signature;
      if (first) return;  /* the page was just loaded */
      busy = true;
      refresh(false, true).catch(TQ.fail).finally(() => { busy = false; });
    });
    setInterval(() => TQ.$$("td.ago").forEach((td) => { td.textContent = TQ.ago(td.dataset.at); }), 5000);
  }

  function setup(preset) {
    state.preset = preset;
    const search = new URLSearchParams(location.search);
    loadForm(search);
    if (search.get("sort") && search.get("sort") !== "created") state.sort = { column: search.get("sort"), dir: search.get("dir") === "asc" ? "asc" : "desc" };
    else state.sort = { column: "created", dir: search.get("order") === "oldest" ? "asc" : "desc" };
    TQ.$("#filters").addEventListener("submit", (e) => {
      e.preventDefault();
      const order = TQ.$("#filters").elements.order.value;
      if (state.sort.column === "created") state.sort.dir = order === "oldest" ? "asc" : "desc";
      remember();
      refresh(true).catch(TQ.fail);
    });
    TQ.$("#reset").addEventListener("click", () => { loadForm(new URLSearchParams()); TQ.$("#filters").requestSubmit(); });
    TQ.$("#next").addEventListener("click", (e) => { state.cursors.push(e.currentTarget.dataset.cursor); load(state.cursors[state.cursors.length - 1]).catch(TQ.fail); });
    TQ.$("#prev").addEventListener("click", () => { state.cursors.pop(); load(state.cursors[state.cursors.length - 1]).catch(TQ.fail); });
    refresh(true).catch(TQ.fail);
    live();
  }

  TQ.pages.jobs = () => setup(null);
  TQ.pages.failed = () => setup("failed");
})();
