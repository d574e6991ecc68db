// run/model.js — what the run page draws, computed from a RunView (the
// summary view, GET /runs/{id}?view=summary, or the full one): which tasks
// are nodes, which are folded into another node, and the edges.
//
// Invariants:
// - Items of a fan-out (fan_out_of set, or "P[i]" with P a task of the run)
//   are never nodes: the fan-out task is one node with counts by state
//   (item_counts, or counted here from the items when the view has them).
//   Tasks inside an item (members of a for_each group's instances) are
//   never drawn either.
// - A group instance (is_group) is one node while collapsed: its members
//   (t.group = the instance's name, at any depth) fold into it. Expanded
//   (the page's `expanded` set), its members are drawn inside a cluster
//   box; edges into the group stay on its node (which then leads to the
//   members that need nothing inside it), edges out of it leave from its
//   members that nothing inside it needs.
// - Edges are the tasks' `needs` mapped to the nodes drawn for them.
// - structureKey() changes exactly when the nodes or edges do: the page
//   lays the graph out again only then, never for a status change.

const ITEM_RE = /^(.*)\[(\d+)\]$/;
/** Task states that never change again (a retry makes a new attempt, not a
 *  new state of an ended one). */
export const FINAL = new Set(['succeeded', 'failed', 'skipped', 'cancelled', 'cached']);
/** Run states that never change again. */
export const RUN_FINAL = new Set(['succeeded', 'failed', 'cancelled']);

/** A status name as the page uses it: lowercased, no enum prefix
 *  ("TASK_STATUS_RUNNING", "RUNNING" and "running" → "running"). */
export function norm(status) {
  return String(status || '').toLowerCase().replace(/^(task|run)_status_/, '');
}

/** The tasks of a view indexed: {byName, items (fan-out name → its item
 *  tasks when the view lists them), fanouts (Set of names), isItem(t)}. */
export function index(view) {
  const byName = new Map();
  for (const t of view.tasks || []) {
    t.status = norm(t.status);
    byName.set(t.name, t);
  }
  const items = new Map();
  const fanouts = new Set();
  const itemOf = (t) => {
    if (t.fan_out_of) return t.fan_out_of;
    const m = ITEM_RE.exec(t.name);
    return m && byName.has(m[1]) ? m[1] : '';
  };
  for (const t of byName.values()) {
    if (t.fan_out) fanouts.add(t.name);
    const p = itemOf(t);
    if (!p) continue;
    t._item = true;
    fanouts.add(p);
    if (!items.has(p)) items.set(p, []);
    items.get(p).push(t);
  }
  return { byName, items, fanouts };
}

/** The counts of a fan-out's items by status: [[status, count]...]
 *  (item_counts when droverd gave them, else counted from the items). */
export function itemCounts(t, idx) {
  if (t.item_counts && t.item_counts.length)
    return t.item_counts.map((c) => [norm(c.status), Number(c.count)]);
  const n = new Map();
  for (const it of idx.items.get(t.name) || []) n.set(it.status, (n.get(it.status) || 0) + 1);
  return [...n.entries()];
}

/** How many items a fan-out has now. */
export function itemTotal(t, idx) {
  if (t.item_total) return Number(t.item_total);
  return (idx.items.get(t.name) || []).length;
}

/** The graph to draw: {nodes: [{name, kind, task, parent}], clusters:
 *  [{id, group, parent}], edges: [[from, to]], hidden: count of tasks not
 *  drawn because of the cap}. expanded: Set of expanded group names; max:
 *  the most nodes drawn (the rest are counted in hidden). */
export function graphOf(view, idx, expanded, max) {
  const { byName, fanouts } = idx;
  const repMemo = new Map();
  // rep(name): the drawn node that stands for task name ('' = not drawn)
  const rep = (name) => {
    if (repMemo.has(name)) return repMemo.get(name);
    repMemo.set(name, ''); // a cycle of groups cannot happen; guard anyway
    const t = byName.get(name);
    let r = '';
    if (t && !t._item) {
      if (!t.group) r = name;
      else {
        const g = byName.get(t.group);
        const gr = g ? rep(t.group) : '';
        if (!gr) r = '';
        else if (gr !== t.group) r = gr;
        else r = expanded.has(t.group) ? name : t.group;
      }
    }
    repMemo.set(name, r);
    return r;
  };
  const isOpen = (name) => expanded.has(name) && rep(name) === name &&
    byName.get(name)?.is_group;
  // members of each drawn, expanded group
  const members = new Map();
  for (const t of byName.values())
    if (t.group && isOpen(t.group) && rep(t.name) === t.name) {
      if (!members.has(t.group)) members.set(t.group, []);
      members.get(t.group).push(t);
    }
  const sinksMemo = new Map();
  // the nodes an edge out of name leaves from
  const outOf = (name) => {
    const r = rep(name);
    if (!r || !isOpen(r) || !members.has(r)) return r ? [r] : [];
    if (sinksMemo.has(r)) return sinksMemo.get(r);
    sinksMemo.set(r, [r]);
    const ms = members.get(r);
    const needed = new Set();
    for (const m of ms) for (const n of m.needs || []) needed.add(n);
    const out = [];
    for (const m of ms) if (!needed.has(m.name)) out.push(...outOf(m.name));
    const res = out.length ? [...new Set(out)] : [r];
    sinksMemo.set(r, res);
    return res;
  };

  const nodes = [];
  const clusters = [];
  let hidden = 0;
  const drawn = new Set();
  for (const t of byName.values()) {
    if (rep(t.name) !== t.name) continue;
    if (nodes.length >= max) { hidden++; continue; }
    const kind = t.is_group ? 'group' : fanouts.has(t.name) ? 'fanout' : 'task';
    const parent = t.group && isOpen(t.group) ? 'cluster:' + t.group : '';
    nodes.push({ name: t.name, kind, task: t, parent });
    drawn.add(t.name);
    if (kind === 'group' && isOpen(t.name) && members.has(t.name))
      clusters.push({ id: 'cluster:' + t.name, group: t.name, parent });
  }
  const edges = [];
  const seen = new Set();
  const add = (a, b) => {
    if (a === b || !drawn.has(a) || !drawn.has(b)) return;
    const k = a + '\u0000' + b;
    if (seen.has(k)) return;
    seen.add(k);
    edges.push([a, b]);
  };
  for (const t of byName.values()) {
    const to = rep(t.name);
    if (!to) continue;
    const needs = t.needs || [];
    for (const n of needs) for (const from of outOf(n)) add(from, to);
    // a member that needs nothing inside its (expanded) group starts from the group's node
    if (t.group && to === t.name && isOpen(t.group) && !needs.length) add(t.group, to);
  }
  return { nodes, clusters, edges, hidden };
}

/** Why task t is where it is: its reason, or for a step waiting on its
 *  needs, which of them have not ended ("waiting for train, baseline");
 *  byName: the run's tasks by name (statuses of the needs). */
export function why(t, byName) {
  if (t.reason) return t.reason;
  if (norm(t.status) !== 'waiting' || !(t.needs || []).length) return '';
  const open = t.needs.filter((n) => !FINAL.has(norm(byName.get(n)?.status)));
  return open.length ? 'waiting for ' + open.join(', ') : 'waiting for its trigger rule';
}

/** A string that changes when the drawn nodes, clusters or edges do. */
export function structureKey(g) {
  return g.nodes.map((n) => n.kind[0] + n.name + '@' + n.parent).join('\u0001') + '\u0002' +
    g.edges.map((e) => e[0] + '>' + e[1]).join('\u0001') + '\u0002' + g.hidden;
}
