// A small SVG line chart: points are [unix seconds, value] pairs.
export function lineChart(points, label, color) {
  const W = 600, H = 160, P = 28;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const el = (name, attrs, text) => {
    const n = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.appendChild(n);
    return n;
  };
  el("text", { x: P, y: 14, "font-size": 12, fill: "#6b7785" }, label);
  if (!points.length) {
    el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#9aa5b1" }, "—");
    return svg;
  }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || x0 + 1;
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = (x) => P + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * P);
  const sy = (y) => H - P + 6 - ((y - y0) / (y1 - y0)) * (H - 2 * P);
  for (const v of [y0, (y0 + y1) / 2, y1]) {
    el("line", { x1: P, x2: W - P, y1: sy(v), y2: sy(v), stroke: "#eef1f5" });
    el("text", { x: 2, y: sy(v) + 4, "font-size": 10, fill: "#9aa5b1" }, v.toFixed(1));
  }
  const d = points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
  el("path", { d, fill: "none", stroke: color || "#a4161a", "stroke-width": 2 });
  const last = points[points.length - 1];
  el("circle", { cx: sx(last[0]), cy: sy(last[1]), r: 3, fill: color || "#a4161a" });
  return svg;
}
