/* taskqueue dashboard: shared helpers. Every value from the server is put on the page with
   textContent (never innerHTML), so job names, arguments and exceptions always show as text. */
"use strict";
const TQ = window.TQ = { pages: {}, me: null };

/* the dashboard's prefix: "" at the root of its host, "/taskqueue" when mounted there (or
   behind a proxy serving it there); every link and API call goes through TQ.url */
TQ.base = (document.querySelector('meta[name="base-path"]') || { content: "" }).content;
TQ.url = (path) => TQ.base + path;
TQ.csrf = () => document.querySelector('meta[name="csrf-token"]').content;
TQ.params = () => JSON.parse(document.body.dataset.params || "{}");

/* fetch JSON from the API; throws Error(message) on a non-2xx answer */
TQ.api = async function (path, options = {}) {
  const init = { method: options.method || "GET", headers: { Accept: "application/json" },
                 credentials: "same-origin" };
  if (init.method !== "GET") {
    init.headers["X-CSRF-Token"] = TQ.csrf();
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body || {});
  }
  const response = await fetch(TQ.url(path), init);
  if (response.status === 401) { location.href = TQ.url("/login?next=") + encodeURIComponent(location.pathname + location.search); }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const err = new Error((data && data.error) || response.status + " " + response.statusText);
    err.status = response.status;
    throw err;
  }
  return data;
};

/* h("td", {class: "num", onclick: fn, dataset: {id: 1}}, "text", child, ...) */
TQ.h = function (tag, attrs, ...children) {
  const svg = ["svg", "g", "path", "line", "rect", "text", "circle", "polyline", "polygon",
               "defs", "marker", "title"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag)
                   : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key === "className" ? "class" : key, value === true ? "" : String(value));
  }
  TQ.append(node, children);
  return node;
};
TQ.append = function (node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
};
TQ.fill = function (node, ...children) { node.replaceChildren(); return TQ.append(node, children); };
TQ.$ = (selector, root) => (root || document).querySelector(selector);
TQ.$$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

/* formatting */
TQ.num = (n) => (n === null || n === undefined) ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 });
TQ.secs = function (s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
  if (s < 3600) return Math.floor(s / 60) + "m " + Math.round(s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.round((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.round((s % 86400) / 3600) + "h";
};
TQ.time = function (value) {
  if (value === null || value === undefined || value === "") return "–";
  const d = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  const pad = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
         `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};
TQ.ago = function (value) {
  const d = typeof value === "number" ? value * 1000 : Date.parse(value);
  const s = Math.max(0, (Date.now() - d) / 1000);
  if (s < 1) return "just now";
  return (s < 60 ? Math.floor(s) + " s" : TQ.secs(s)) + " ago";
};
TQ.badge = (state) => TQ.h("span", { class: "badge " + state, text: state });
TQ.jobLink = (id, text) => TQ.h("a", { href: TQ.url("/jobs/" + encodeURIComponent(id)), class: "mono", text: text || id });
TQ.short = (id) => String(id).slice(0, 8) + "…" + String(id).slice(-4);

TQ.toast = function (message, kind) {
  let box = TQ.$("#toasts");
  if (!box) { box = TQ.h("div", { id: "toasts" }); document.body.appendChild(box); }
  const item = TQ.h("div", { class: "toast " + (kind || ""), role: "status", text: message });
  box.appendChild(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
};
TQ.fail = (err) => TQ.toast(err.message || String(err), "error");

/* A modal confirmation; with `typed`, the user must type that word to confirm. */
TQ.confirm = function (title, message, typed) {
  return new Promise((resolve) => {
    const input = typed ? TQ.h("input", { id: "confirm-input", autocomplete: "off", placeholder: typed }) : null;
    const ok = TQ.h("button", { class: "primary danger", id: "confirm-ok", text: "Confirm" });
    const cancel = TQ.h("button", { type: "button", text: "Cancel" });
    const dialog = TQ.h("dialog", { id: "confirm-dialog" }, TQ.h("h2", { text: title }),
      TQ.h("p", { text: message }), typed ? TQ.h("p", { class: "muted", text: `Type "${typed}" to confirm.` }) : null,
      input, TQ.h("div", { class: "row" }, TQ.h("span", { class: "spacer" }), cancel, ok));
    document.body.appendChild(dialog);
    const close = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    if (input) { ok.disabled = true; input.addEventListener("input", () => { ok.disabled = input.value !== typed; }); }
    ok.addEventListener("click", () => close(true));
    cancel.addEventListener("click", () => close(false));
    dialog.addEventListener("cancel", () => close(false));
    dialog.showModal();
    (input || ok).focus();
  });
};

/* Buttons for a role that may act; a read-only user sees none. */
TQ.canAct = () => TQ.me && TQ.me.can_act;
TQ.button = function (label, onclick, attrs) {
  if (!TQ.canAct()) return null;
  return TQ.h("button", Object.assign({ type: "button", text: label, onclick: async (e) => {
    const button = e.currentTarget; button.disabled = true;
    try { await onclick(e); } catch (err) { TQ.fail(err); } finally { button.disabled = false; }
  } }, attrs || {}));
};

/* Call fn now and every `ms` while the page is visible. */
TQ.every = function (ms, fn) {
  const tick = async () => { if (!document.hidden) { try { await fn(); } catch (err) { TQ.fail(err); } } };
  tick();
  return setInterval(tick, ms);
};

/* The live stream (server-sent `overview` snapshots, one per interval shared by every open
   page); calls onOverview(data) for each and keeps the header's live dot current. */
TQ.live = function (onOverview) {
  const dot = TQ.$("#live-dot");
  const source = new EventSource(TQ.url("/api/live"));
  source.addEventListener("overview", (e) => onOverview(JSON.parse(e.data)));
  source.addEventListener("problem", (e) => TQ.toast(JSON.parse(e.data).error, "error"));
  source.onopen = () => { dot.classList.add("on"); dot.title = "live"; };
  source.onerror = () => { dot.classList.remove("on"); dot.title = "reconnecting"; };
  window.addEventListener("beforeunload", () => source.close());
  return source;
};

/* Follow a background bulk operation until it ends; calls onUpdate(op) as it progresses. */
TQ.follow = async function (op, onUpdate) {
  while (!op.done) {
    onUpdate(op);
    await new Promise((r) => setTimeout(r, 500));
    op = await TQ.api("/api/operations/" + op.id);
  }
  onUpdate(op);
  return op;
};

document.addEventListener("DOMContentLoaded", async () => {
  const page = document.body.dataset.page;
  if (page === "login") return;
  try { TQ.me = await TQ.api("/api/me"); } catch (err) { TQ.fail(err); return; }
  document.body.classList.toggle("can-act", !!TQ.me.can_act);
  const render = TQ.pages[page];
  if (render) { try { await render(TQ.params()); } catch (err) { TQ.fail(err); } }
});
