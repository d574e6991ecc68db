// pages/agents.js — agents and node pools (#/agents): GET /api/v1/agents
// and /api/v1/pools, one table each. An agent's state is one of
// connected (in service), draining (takes no new work), preempting (under
// a notice: a cloud's or a drill's, AgentView.preempt) and lost (not
// connected), the same words as the drover_agents metric; a pool shows
// its nodes by state, demand, back-off and min/max.
//
// Admin tokens get the drills and knobs: drain / undrain / preempt (with a
// deadline, asked inline) / forget a lost agent; scale / drain a pool.
// droverd decides anyway; the buttons only follow ctx.can('admin').
//
// Live: agent, pool_node and task events (used capacity, running steps)
// re-read both lists, throttled to once a second; and every 10 s for
// "last seen". Element contract (tests): #agents tr.agent data-name
// data-state, .agent-drain/.agent-undrain/.agent-preempt, #pools tr.pool
// data-name, .pool-scale, .pool-drain.

import { json, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { bytes, money, when } from '../format.js';
import { ago, followAll, latestSeq, throttle } from '../follow.js';

const NODE_STATES = ['requested', 'booting', 'up', 'draining', 'deleting'];

/** An agent's state word (see the top). */
export function agentState(a) {
  if (!a.connected) return 'lost';
  if (a.preempt) return 'preempting';
  if (a.drained) return 'draining';
  return 'connected';
}

function cpu(milli) {
  const c = (milli || 0) / 1000;
  return Number.isInteger(c) ? String(c) : c.toFixed(2);
}

/** "used / offered" of one resource. */
function usedOf(used, offered, fmt) {
  return `${fmt(used || 0)} / ${fmt(offered || 0)}`;
}

function klass(spot, price) {
  return [h('span', { class: spot ? 'cls-spot' : 'cls-ondemand' }, spot ? 'spot' : 'on-demand'),
    price > 0 ? [' ', h('span', { class: 'muted' }, money(price) + '/h')] : null];
}

/** mount(root, route, ctx): both tables; returns the cleanup. */
export function mount(root, route, ctx) {
  const admin = ctx.can('admin');
  let dead = false;
  let es = null;
  const open = new Map(); // agent or pool name -> its open inline form (kept across re-reads)

  const agentsBody = h('tbody');
  const poolsBody = h('tbody');
  const agentsEmpty = h('p', { class: 'empty', id: 'agents-empty', hidden: true },
    'No agents have connected yet (drover-agent --scheduler ...).');
  const poolsEmpty = h('p', { class: 'empty', id: 'pools-empty', hidden: true },
    'No node pools: droverd was started without --pools.');
  const live = h('span', { class: 'muted', id: 'agents-live' });

  replace(root, h('div', { class: 'agents-page' },
    h('div', { class: 'agents-top' }, h('h1', {}, 'Agents'), live),
    h('table', { id: 'agents', class: 'agents-table' },
      h('thead', {}, h('tr', {}, ['Name', 'State', 'Class', 'CPU used / offered',
        'Memory used / offered', 'GPUs used / offered', 'Running steps', 'Last seen', 'Labels',
        admin ? '' : null].filter((x) => x !== null).map((t) => h('th', {}, t)))),
      agentsBody),
    agentsEmpty,
    h('h1', {}, 'Node pools'),
    h('table', { id: 'pools', class: 'pools-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Class', 'Nodes by state', 'Demand', 'Min / max',
        'Back-off', 'Cost / hour', admin ? '' : null].filter((x) => x !== null)
        .map((t) => h('th', {}, t)))),
      poolsBody),
    poolsEmpty));

  async function act(what, path, body) {
    try {
      await json(path, { method: 'POST', body });
      ctx.flash(what, 'info');
    } catch (e) {
      ctx.flash(e.message);
    }
    open.clear();
    await load().catch((e) => ctx.flash(e.message));
  }

  /** The inline form a button opens in its row (a deadline, a size). */
  function inline(key, label, input, okText, onOk) {
    const form = h('form', { class: 'inline-ask', onsubmit: (e) => {
      e.preventDefault();
      onOk(input.value);
    } }, label, ' ', input, ' ', h('button', { type: 'submit', class: 'ask-go' }, okText), ' ',
    h('button', { type: 'button', class: 'link ask-cancel', onclick: () => {
      open.delete(key);
      load().catch((e) => ctx.flash(e.message));
    } }, 'cancel'));
    open.set(key, form);
    return form;
  }

  function agentActions(a, state, cell) {
    const name = a.name, path = '/agents/' + seg(name);
    if (open.has('a:' + name)) return replace(cell, open.get('a:' + name));
    const btns = [];
    if (a.connected && !a.drained)
      btns.push(h('button', { type: 'button', class: 'agent-drain', onclick: () =>
        act(`agent ${name} drained`, path + '/drain') }, 'drain'));
    if (a.drained)
      btns.push(h('button', { type: 'button', class: 'agent-undrain', onclick: () =>
        act(`agent ${name} undrained`, path + '/undrain') }, 'undrain'));
    if (a.connected && state !== 'preempting')
      btns.push(h('button', { type: 'button', class: 'agent-preempt danger', onclick: () => {
        const secs = h('input', { type: 'number', min: 0, step: 1, value: 30, size: 5,
          class: 'preempt-deadline', 'aria-label': 'deadline in seconds' });
        replace(cell, inline('a:' + name, 'preempt drill, deadline (s)', secs, 'preempt',
          (v) => {
            const s = Number(v);
            if (!(s >= 0)) { ctx.flash('the deadline: seconds, 0 or more'); return; }
            act(`agent ${name}: preemption drill sent (deadline ${s}s)`, path + '/preempt',
              { deadline_ms: Math.round(s * 1000) });
          }));
        secs.focus();
      } }, 'preempt…'));
    if (!a.connected)
      btns.push(h('button', { type: 'button', class: 'agent-forget', onclick: () => {
        json(path, { method: 'DELETE' }).then(() => ctx.flash(`agent ${name} forgotten`, 'info'),
          (e) => ctx.flash(e.message)).then(() => load()).catch((e) => ctx.flash(e.message));
      } }, 'forget'));
    return replace(cell, btns.map((b) => [b, ' ']));
  }

  function agentRow(a) {
    const state = agentState(a), cap = a.capacity || {}, used = a.used || {};
    const labels = Object.entries(a.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ');
    const note = a.preempt
      ? [' ', h('span', { class: 'muted agent-notice' }, a.preempt.reason || 'notice',
        a.preempt.deadline_ms ? ', until ' + when(a.preempt.deadline_ms) : '',
        a.preempt.terminate ? ' (then exits)' : '')]
      : null;
    const actions = admin ? h('td', { class: 'agent-actions' }) : null;
    const tr = h('tr', { class: 'agent', dataset: { name: a.name, state } },
      h('td', { class: 'mono' }, a.name),
      h('td', {}, h('span', { class: 'agent-state ag-' + state }, state), note),
      h('td', {}, klass(a.spot, a.price)),
      h('td', {}, usedOf(used.cpu_milli, cap.cpu_milli, cpu)),
      h('td', {}, usedOf(used.memory_bytes, cap.memory_bytes, bytes)),
      h('td', {}, usedOf(used.gpus, cap.gpus, String)),
      h('td', { class: 'agent-running' }, String(a.running || 0)),
      h('td', { class: 'agent-seen', title: when(a.last_seen_ms) }, ago(a.last_seen_ms)),
      h('td', { class: 'muted' }, labels),
      actions);
    if (actions) agentActions(a, state, actions);
    return tr;
  }

  function poolRow(p) {
    const counts = new Map();
    for (const n of p.nodes || []) counts.set(n.state, (counts.get(n.state) || 0) + 1);
    const nodes = NODE_STATES.filter((s) => counts.get(s)).map((s) =>
      h('span', { class: 'pool-nodes pn-' + s, dataset: { state: s } }, `${counts.get(s)} ${s}`));
    const now = Date.now();
    const backoff = p.backoff_until_ms > now
      ? [h('span', { class: 'pool-backoff' }, 'until ', when(p.backoff_until_ms)),
        ` (${p.failures} failure${p.failures === 1 ? '' : 's'})`]
      : (p.failures ? `${p.failures} failure${p.failures === 1 ? '' : 's'}` : '');
    const hold = p.hold && (p.hold.drained ? 'drained' : p.hold.scaled ? `held at ${p.hold.floor}`
      : '');
    const actions = admin ? h('td', { class: 'pool-actions' }) : null;
    if (actions) {
      const key = 'p:' + p.name, path = '/pools/' + seg(p.name);
      if (open.has(key)) replace(actions, open.get(key));
      else replace(actions,
        h('button', { type: 'button', class: 'pool-scale', onclick: () => {
          const n = h('input', { type: 'number', min: 0, step: 1, size: 4, class: 'scale-nodes',
            value: (p.nodes || []).filter((x) => x.state !== 'removed').length,
            'aria-label': 'nodes to keep' });
          replace(actions, inline(key, 'keep nodes', n, 'scale', (v) => {
            const k = Number(v);
            if (!Number.isInteger(k) || k < 0) {
              ctx.flash('nodes: a whole number, 0 or more');
              return;
            }
            act(`pool ${p.name}: keeping ${k} node${k === 1 ? '' : 's'}`, path + '/scale',
              { nodes: k });
          }));
          n.focus();
        } }, 'scale…'), ' ',
        h('button', { type: 'button', class: 'pool-drain danger', onclick: () => {
          replace(actions, inline(key, `drain and remove every node of ${p.name}?`, h('span'),
            'drain', () => act(`pool ${p.name}: draining`, path + '/drain')));
        } }, 'drain…'));
    }
    return h('tr', { class: 'pool', dataset: { name: p.name } },
      h('td', { class: 'mono' }, p.name, p.provider ? h('div', { class: 'muted' }, p.provider)
        : null),
      h('td', {}, klass(p.spot, p.price), p.fallback ? h('div', { class: 'muted' }, 'fallback ',
        p.fallback) : null),
      h('td', { class: 'pool-nodes-cell' }, nodes.length ? nodes.map((x) => [x, ' ']) : 'none'),
      h('td', {}, `${p.demand || 0} wanted`, p.waiting ? `, ${p.waiting} steps waiting` : ''),
      h('td', {}, `${p.min} / ${p.max}`, hold ? h('div', { class: 'muted' }, hold) : null),
      h('td', {}, backoff, p.last_error ? h('div', { class: 'error pool-error' }, p.last_error)
        : null),
      h('td', {}, p.cost_per_hour > 0 ? money(p.cost_per_hour) : ''),
      actions);
  }

  let shown = ''; // what the tables show (JSON, last seen aside): unchanged -> no re-render

  async function load() {
    const [ag, pl] = await Promise.all([json('/agents'), json('/pools')]);
    if (dead) return;
    const agents = (ag.agents || []).slice().sort((x, y) => x.name.localeCompare(y.name));
    const key = JSON.stringify([agents.map((a) => ({ ...a, last_seen_ms: 0 })), pl,
      [...open.keys()]]);
    if (key === shown) { // rows (and a button a user is about to click) stay; times move
      for (const a of agents) {
        const td = agentsBody.querySelector(`tr[data-name="${CSS.escape(a.name)}"] .agent-seen`);
        if (td) { replace(td, ago(a.last_seen_ms)); td.title = when(a.last_seen_ms); }
      }
      return;
    }
    shown = key;
    replace(agentsBody, agents.map(agentRow));
    agentsEmpty.hidden = agents.length !== 0;
    const pools = pl.pools || [];
    replace(poolsBody, pools.map(poolRow));
    poolsEmpty.hidden = pools.length !== 0;
  }

  const reread = throttle(() => load().catch((e) => { if (!dead) ctx.flash(e.message); }), 1000);
  const timer = setInterval(() => reread.call(), 10000);

  load().then(() => latestSeq()).then((since) => {
    if (dead) return;
    es = followAll(since, (ev) => {
      if (ev.kind === 'agent' || ev.kind === 'pool_node' || (ev.kind === 'task' && ev.agent))
        reread.call();
    }, () => reread.call(), {
      onOpen: () => replace(live, '● live'),
      onError: (e) => replace(live, 'not live: ', e.message),
    });
  }).catch((e) => { if (!dead) ctx.flash(e.message); });

  return () => {
    dead = true;
    clearInterval(timer);
    reread.cancel();
    if (es) es.close();
  };
}
