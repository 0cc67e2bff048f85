/* Small hand-written SVG charts: a time-series line chart and a workflow graph. */
"use strict";
(function () {
  const h = TQ.h;

  /* The top of the y axis: four equal steps, each 1, 2, 2.5 or 5 times a power of ten. */
  function niceMax(value) {
    const raw = Math.max(value, 4) / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return 4 * m * p;
    return 40 * p;
  }

  function clock(t, withDay) {
    const d = new Date(t * 1000), pad = (x) => String(x).padStart(2, "0");
    return (withDay ? pad(d.getDate()) + "/" + pad(d.getMonth() + 1) + " " : "") +
           pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  /* points: [{t, a, b, ...}], series: [{key, label, cls}] */
  TQ.lineChart = function (container, points, series, options) {
    const W = 720, H = 220, L = 44, R = 10, T = 10, B = 24;
    const opts = options || {};
    const xs = points.map((p) => p.t);
    const x0 = Math.min(...xs), x1 = Math.max(...xs);
    const ymax = niceMax(Math.max(0, ...points.flatMap((p) => series.map((s) => p[s.key] || 0))));
    const X = (t) => L + (x1 === x0 ? 0 : (t - x0) / (x1 - x0)) * (W - L - R);
    const Y = (v) => T + (1 - v / ymax) * (H - T - B);
    const svg = h("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
                           "aria-label": opts.label || "chart" });
    for (let i = 0; i <= 4; i++) {
      const v = (ymax / 4) * i;
      svg.appendChild(h("line", { class: "grid", x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
      svg.appendChild(h("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end", text: TQ.num(v) }));
    }
    const ticks = 6;
    for (let i = 0; i <= ticks && points.length > 1; i++) {
      const t = x0 + ((x1 - x0) / ticks) * i;
      const anchor = i === 0 ? "start" : (i === ticks ? "end" : "middle");
      svg.appendChild(h("text", { x: X(t), y: H - 6, "text-anchor": anchor, text: clock(t, opts.day) }));
    }
    svg.appendChild(h("line", { class: "axis", x1: L, x2: W - R, y1: Y(0), y2: Y(0) }));
    for (const s of series) {
      const pts = points.filter((p) => p[s.key] !== null && p[s.key] !== undefined)
                        .map((p) => `${X(p.t).toFixed(1)},${Y(p[s.key]).toFixed(1)}`);
      if (!pts.length) continue;
      if (s.area) {
        svg.appendChild(h("polygon", { class: "area " + s.cls,
          points: `${pts[0].split(",")[0]},${Y(0)} ${pts.join(" ")} ${pts[pts.length - 1].split(",")[0]},${Y(0)}` }));
      }
      svg.appendChild(h("polyline", { class: "line " + s.cls, points: pts.join(" ") },
                        h("title", { text: s.label })));
    }
    TQ.fill(container, svg);
  };

  TQ.legend = (series) => h("div", { class: "legend" },
    series.map((s) => h("span", {}, h("i", { class: s.cls }), s.label)));

  /* Workflow DAG: layered by longest path from the roots, drawn left to right. */
  TQ.graph = function (container, data, onClick) {
    const nodes = new Map(data.nodes.map((n) => [n.id, Object.assign({ layer: 0 }, n)]));
    const parents = new Map(data.nodes.map((n) => [n.id, []]));
    for (const [from, to] of data.edges) parents.get(to).push(from);
    const depth = (id, seen) => {
      const node = nodes.get(id);
      if (node.done) return node.layer;
      if (seen.has(id)) return 0;
      seen.add(id);
      node.layer = Math.max(0, ...parents.get(id).map((p) => depth(p, seen) + 1));
      node.done = true;
      return node.layer;
    };
    for (const id of nodes.keys()) depth(id, new Set());
    const layers = [];
    for (const node of nodes.values()) (layers[node.layer] = layers[node.layer] || []).push(node);
    const NW = 170, NH = 34, GX = 60, GY = 14;
    const rows = Math.max(1, ...layers.map((l) => (l || []).length));
    const W = Math.max(1, layers.length) * (NW + GX), H = rows * (NH + GY) + GY;
    layers.forEach((layer, i) => (layer || []).forEach((node, j) => {
      node.x = i * (NW + GX) + 10; node.y = GY + j * (NH + GY) + ((rows - layer.length) * (NH + GY)) / 2;
    }));
    const svg = h("svg", { viewBox: `0 0 ${W} ${H}`, height: Math.min(H, 640), role: "img", "aria-label": "workflow graph" },
      h("defs", {}, h("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7,
        markerHeight: 7, orient: "auto-start-reverse" }, h("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#9aa3b5" }))));
    for (const [from, to] of data.edges) {
      const a = nodes.get(from), b = nodes.get(to);
      const x1 = a.x + NW, y1 = a.y + NH / 2, x2 = b.x, y2 = b.y + NH / 2, mx = (x1 + x2) / 2;
      svg.appendChild(h("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
    }
    for (const node of nodes.values()) {
      /* a folded class of interchangeable jobs: a stack with its count; a click expands it */
      const name = node.group ? `${TQ.num(node.count)} × ${node.name}` : node.name;
      const label = name.length > 22 ? name.slice(0, 21) + "…" : name;
      const title = node.group
        ? `${TQ.num(node.count)} ${node.state} jobs of ${node.name} (queue ${node.queue}) with the same neighbours\nclick to show them one by one`
        : `${node.name}\n${node.id}\n${node.state} (queue ${node.queue})`;
      const g = h("g", { class: `node ${node.state}${node.id === data.focus ? " focus" : ""}${node.group ? " group" : ""}`,
                         transform: `translate(${node.x},${node.y})`, dataset: { id: node.id, state: node.state, count: node.count || null } },
        node.group ? h("rect", { class: "under", x: 6, y: -6, width: NW, height: NH, rx: 6 }) : null,
        node.group ? h("rect", { class: "under", x: 3, y: -3, width: NW, height: NH, rx: 6 }) : null,
        h("rect", { width: NW, height: NH, rx: 6 }),
        h("text", { x: 9, y: 21, text: label }),
        h("title", { text: title }));
      g.style.cursor = "pointer";
      g.addEventListener("click", () => onClick(node));
      svg.appendChild(g);
    }
    TQ.fill(container, svg);
  };
})();
