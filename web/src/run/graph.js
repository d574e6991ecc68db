// run/graph.js — the run's DAG as SVG: laid out left to right by dagre
// (once per structure change: run/model.js structureKey), each node a
// <g class="node" data-task data-status data-kind> whose colour comes from
// style.css (#dag .st-NAME), its tooltip <title> the task's state and
// reason. Status changes repaint nodes in place (paint()): no layout, no
// new elements, so a run's events cost a few attribute writes each.
// Clusters (expanded groups) are boxes drawn behind their members.

import dagre from '@dagrejs/dagre';
import { s, replace } from '../dom.js';
import { duration, stateClass } from '../format.js';
import { itemCounts, itemTotal, why } from './model.js';

const H_TASK = 34, H_FAN = 50, CHAR_W = 7.2;

function label(n) {
  if (n.kind === 'group') return (n.open ? '\u25be ' : '\u25b8 ') + n.name;
  return n.name;
}

function size(n) {
  const w = Math.min(260, Math.max(110, Math.ceil(label(n).length * CHAR_W) + 28));
  return { width: n.kind === 'fanout' ? Math.max(w, 170) : w,
    height: n.kind === 'fanout' || n.kind === 'group' ? H_FAN : H_TASK };
}

/** The tooltip of a task: its name, state and why (model.why: a ready
 *  step's scheduler reason, a waiting one's open needs, a failed one's
 *  reason and exit code); byName: the run's tasks. */
export function tip(t, byName) {
  const lines = [t.name + ': ' + t.status];
  const w = why(t, byName);
  if (w) lines.push(w);
  if (t.status === 'failed' && t.has_exit) lines.push('exit code ' + t.exit_code);
  if (t.started_ms && t.status === 'running') lines.push('running for ' +
    duration(Date.now() - t.started_ms));
  return lines.join('\n');
}

/** The counts line of a fan-out or group node. */
function countsText(n, idx) {
  if (n.kind === 'fanout') {
    const total = itemTotal(n.task, idx);
    const parts = itemCounts(n.task, idx).filter(([, c]) => c > 0).map(([st, c]) => c + ' ' + st);
    return total ? total + ' items: ' + parts.join(', ') : 'no items yet';
  }
  return n.task.template ? 'template ' + n.task.template : 'group';
}

function fraction(n, idx) {
  const t = n.task;
  if (n.kind === 'fanout') {
    const total = itemTotal(t, idx);
    if (!total) return -1;
    let done = 0;
    for (const [st, c] of itemCounts(t, idx))
      if (st === 'succeeded' || st === 'cached' || st === 'skipped' || st === 'failed' ||
          st === 'cancelled') done += c;
    return done / total;
  }
  if (t.status === 'running' && typeof t.progress === 'number' && t.progress >= 0)
    return Math.min(1, t.progress);
  return -1;
}

/** Lay out and draw graph g (model.graphOf) into svg; idx: the view's
 *  index (model.index); open: Set of expanded groups; onClick(name).
 *  Returns {nodes: Map name → element refs, width, height} for paint(). */
export function draw(svg, g, idx, open, onClick) {
  const dg = new dagre.graphlib.Graph({ compound: g.clusters.length > 0 });
  // clusters add border ranks of their own: closer ranks keep edges short
  dg.setGraph({ rankdir: 'LR', nodesep: 14, ranksep: g.clusters.length ? 22 : 46, edgesep: 8,
    marginx: 12, marginy: 12 });
  dg.setDefaultEdgeLabel(() => ({}));
  // dagre's ids are ours, never step names: a step may be named
  // "__proto__" or "constructor", which dagre's maps cannot hold
  const ids = new Map();
  g.clusters.forEach((c, i) => ids.set(c.id, 'c' + i));
  g.nodes.forEach((n, i) => ids.set(n.name, 'n' + i));
  const id = (name) => ids.get(name);
  for (const c of g.clusters) dg.setNode(id(c.id), { paddingTop: 8 });
  for (const n of g.nodes) {
    n.open = open.has(n.name);
    dg.setNode(id(n.name), size(n));
  }
  for (const c of g.clusters) if (id(c.parent)) dg.setParent(id(c.id), id(c.parent));
  for (const n of g.nodes) if (id(n.parent)) dg.setParent(id(n.name), id(n.parent));
  for (const [a, b] of g.edges) dg.setEdge(id(a), id(b));
  dagre.layout(dg);

  const gr = dg.graph();
  const width = Math.ceil(gr.width || 0), height = Math.ceil(gr.height || 0);
  const clusterLayer = s('g', { class: 'clusters' });
  for (const c of g.clusters) {
    const b = dg.node(id(c.id));
    if (!b || b.width === undefined) continue;
    clusterLayer.appendChild(s('rect', { class: 'cluster', 'data-group': c.group,
      x: b.x - b.width / 2, y: b.y - b.height / 2, width: b.width, height: b.height, rx: 8 }));
  }
  const edgeLayer = s('g', { class: 'edges' });
  for (const [a, b] of g.edges) {
    const e = dg.edge(id(a), id(b));
    if (!e || !e.points) continue;
    const d = e.points.map((p, i) => (i ? 'L' : 'M') + p.x.toFixed(1) + ',' + p.y.toFixed(1))
      .join(' ');
    edgeLayer.appendChild(s('path', { class: 'edge', d, 'data-from': a, 'data-to': b,
      'marker-end': 'url(#dag-arrow)' }));
  }
  const nodeLayer = s('g', { class: 'nodes' });
  const refs = new Map();
  for (const n of g.nodes) {
    const b = dg.node(id(n.name));
    const w = b.width, hgt = b.height;
    const rect = s('rect', { class: 'box', width: w, height: hgt, rx: 5 });
    const title = s('title', {});
    const text = s('text', { class: 'label', x: 10, y: 21 }, label(n));
    const kids = [title, rect, text];
    let sub = null, bar = null;
    if (n.kind !== 'task') {
      sub = s('text', { class: 'sub', x: 10, y: 38 });
      kids.push(sub);
    }
    const barW = w - 20;
    const barBg = s('rect', { class: 'bar-bg', x: 10, y: hgt - 7, width: barW, height: 3 });
    bar = s('rect', { class: 'bar-fg', x: 10, y: hgt - 7, width: 0, height: 3 });
    kids.push(barBg, bar);
    const el = s('g', { class: 'node', 'data-task': n.name, 'data-kind': n.kind,
      transform: `translate(${(b.x - w / 2).toFixed(1)},${(b.y - hgt / 2).toFixed(1)})`,
      tabindex: 0, role: 'button', onclick: () => onClick(n.name),
      onkeydown: (ev) => { if (ev.key === 'Enter') onClick(n.name); } }, kids);
    if (n.open) el.dataset.open = '1';
    refs.set(n.name, { n, el, rect, title, sub, bar, barBg, barW, last: '' });
    nodeLayer.appendChild(el);
  }
  const defs = s('defs', {}, s('marker', { id: 'dag-arrow', viewBox: '0 0 10 10', refX: 9,
    refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
  s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' })));
  replace(svg, defs, clusterLayer, edgeLayer, nodeLayer);
  svg.setAttribute('width', Math.max(width, 10));
  svg.setAttribute('height', Math.max(height, 10));
  svg.setAttribute('viewBox', `0 0 ${Math.max(width, 10)} ${Math.max(height, 10)}`);
  const out = { nodes: refs, width, height };
  paint(out, idx, null);
  return out;
}

/** Repaint the drawn nodes from idx (the latest view, or the tasks an
 *  event changed): status attribute, colour, tooltip, counts, bar. names:
 *  only these (null: all). Writes only what changed. */
export function paint(drawn, idx, names) {
  const list = names ? [...names].map((n) => drawn.nodes.get(n)).filter(Boolean)
    : drawn.nodes.values();
  for (const r of list) {
    const t = idx.byName.get(r.n.name);
    if (!t) continue;
    r.n.task = t;
    const status = t.status;
    const sub = r.sub ? countsText(r.n, idx) : '';
    const f = fraction(r.n, idx);
    const key = status + '|' + why(t, idx.byName) + '|' + sub + '|' + f + '|' + t.exit_code;
    if (key === r.last) continue;
    r.last = key;
    r.el.dataset.status = status;
    r.rect.setAttribute('class', 'box ' + stateClass(status));
    r.title.textContent = tip(t, idx.byName);
    if (r.sub) r.sub.textContent = sub;
    const show = f >= 0;
    r.barBg.setAttribute('visibility', show ? 'visible' : 'hidden');
    r.bar.setAttribute('visibility', show ? 'visible' : 'hidden');
    r.bar.setAttribute('width', show ? (r.barW * f).toFixed(1) : 0);
  }
}
