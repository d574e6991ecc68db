// pages/run.js — one run (#/runs/ID?step=NAME): the header with its
// buttons by role, the DAG (run/graph.js over run/model.js), the spot
// panel, and the step panel (run/panel.js) of the step named in ?step=.
//
// Data: GET /runs/{id}?view=summary (bounded by the spec, not by item
// counts: a fan-out is one task with item_counts), or the full view where
// drover-web does not know ?view. Live (design: "Live updates"): the events
// stream from the view's event_seq; a task event for a task the page knows
// sets its status (idempotently: the event's `to`) and repaints its node in
// the next animation frame; anything else (an item, an unknown task,
// `truncated`) and every change of counts re-reads the view, at most once a
// second; while the run goes on the view is re-read every 5 s anyway
// (progress and waiting reasons come with no event). The graph is laid out
// again only when its structure (nodes, edges) changes.

import { ApiError, json, seg } from '../api.js';
import { h, s, replace } from '../dom.js';
import { duration, money, span, stateClass, when } from '../format.js';
import { stream } from '../sse.js';
import { draw, paint } from '../run/graph.js';
import { graphOf, index, norm, RUN_FINAL, structureKey } from '../run/model.js';
import { open as openPanel } from '../run/panel.js';
import { show as showResubmit } from '../run/resubmit.js';

const MAX_NODES = 1500;      // nodes drawn at most (the rest are listed as a count)
const RELOAD_MIN_MS = 1000;  // re-reads of the view at most this often
const POLL_MS = 5000;        // and at least this often while the run goes on

/** Mount the run page of route.params.id into root. */
export function mount(root, route, ctx) {
  const id = route.params.id;
  let view = null, idx = null, drawn = null, key = '';
  let summaryOk = true;
  let events = null, panel = null, pollTimer = null, reloadTimer = null;
  let lastLoad = 0, loading = null, again = false, stopped = false;
  let frame = 0;
  let panelSig = '';
  const dirty = new Set();
  const expanded = new Set();

  const header = h('div', { id: 'run-header', class: 'card' }, 'Loading ', id, '…');
  const svg = s('svg', { id: 'dag', xmlns: 'http://www.w3.org/2000/svg' });
  const note = h('p', { class: 'muted dag-note', id: 'dag-note' });
  const spot = h('div', { id: 'spot-panel', class: 'card' });
  const panelEl = h('aside', { id: 'step-panel', class: 'card', hidden: true });
  const resub = h('div', { id: 'resubmit-box', hidden: true });
  const wrap = h('div', { class: 'card dag-wrap', id: 'dag-wrap' }, svg, note);
  const page = h('div', { id: 'run', class: 'run-page' }, header, resub,
    h('div', { class: 'run-body' }, h('div', { class: 'run-main' }, wrap, spot), panelEl));
  replace(root, page);

  const pctx = {
    can: ctx.can, flash: ctx.flash,
    closePanel: () => setStep(''),
    openStep: (n) => setStep(n),
    isFanout: (n) => !!idx && idx.fanouts.has(n),
    tasks: () => (idx ? idx.byName : new Map()),
    mayAct: () => !!view && canCancel(),
  };

  function setStep(name) {
    const q = new URLSearchParams();
    if (name) q.set('step', name);
    const hash = '#/runs/' + encodeURIComponent(id) + (name ? '?' + q.toString() : '');
    // the route stays this page: keep it mounted, change only the hash
    history.replaceState(null, '', hash);
    showPanel(name);
  }

  /** Scale the drawn graph down to the width it has (not below 60%: a
   *  wider graph scrolls), again when the panel opens or closes. */
  function fit() {
    if (!drawn) return;
    const avail = wrap.clientWidth - 20;
    const f = avail > 0 && drawn.width > avail ? Math.max(0.6, avail / drawn.width) : 1;
    svg.setAttribute('width', Math.max(10, Math.ceil(drawn.width * f)));
    svg.setAttribute('height', Math.max(10, Math.ceil(drawn.height * f)));
  }

  function showPanel(name) {
    if (panel && panel.name === name) return;
    if (panel) { panel.close(); panel = null; }
    page.classList.toggle('with-panel', !!name);
    for (const el of svg.querySelectorAll('.node.selected')) el.classList.remove('selected');
    if (!name) { fit(); return; }
    panel = openPanel(panelEl, id, name, pctx, () => scheduleReload(0));
    fit();  // the panel now takes its room
    const t = idx && idx.byName.get(name);
    panelSig = t ? JSON.stringify([t.status, t.attempts, t.reason, t.progress, t.item_counts,
      t.out_params]) : '';
    const r = drawn && drawn.nodes.get(name);
    if (r) r.el.classList.add('selected');
  }

  function clickNode(name) {
    const t = idx && idx.byName.get(name);
    if (t && t.is_group) {
      if (expanded.has(name)) expanded.delete(name);
      else expanded.add(name);
      render(true);
    }
    setStep(name);
  }

  // ---- header, buttons, spot panel

  /** Whether the token may act on this run (cancel it, resume its gates):
   *  admin, or its owner with role submit (droverd decides anyway). */
  function canCancel() {
    return ctx.can('admin') || (ctx.can('submit') && view.owner === ctx.who.name);
  }

  async function act(what, fn) {
    try {
      await fn();
      ctx.flash(what, 'info');
      scheduleReload(0);
    } catch (e) {
      ctx.flash(e.message);
    }
  }

  function renderHeader() {
    const v = view;
    const st = v.status;
    page.dataset.status = st;
    const done = Number(v.tasks_done || 0), total = Number(v.task_count || 0);
    const cost = totals().cost;
    const ended = RUN_FINAL.has(st);
    const del = h('button', { id: 'run-delete', class: 'danger', disabled: !ended,
      title: ended ? 'delete this run and its logs and artifacts' : 'only an ended run',
      onclick: () => {
        if (del.dataset.confirm !== '1') {
          del.dataset.confirm = '1';
          replace(del, 'Really delete?');
          return;
        }
        act(`deleted ${id}`, async () => {
          await json(`/runs/${seg(id)}`, { method: 'DELETE' });
          ctx.go('#/runs');
        });
      } }, 'Delete');
    replace(header,
      h('div', { class: 'run-title' },
        h('h1', {}, v.name || id), ' ', h('span', { class: 'mono run-id' }, v.id), ' ',
        h('span', { class: stateClass(st), id: 'run-status' }, st),
        h('span', { class: 'run-actions' },
          !ended && canCancel() ? h('button', { id: 'run-cancel', class: 'danger', onclick: () =>
            act(`cancelled ${id}`, () => json(`/runs/${seg(id)}/cancel`, { method: 'POST' })) },
          'Cancel') : null,
          ctx.can('submit') ? h('button', { id: 'run-resubmit', onclick: () =>
            showResubmit(resub, v, ctx) }, 'Re-submit…') : null,
          ctx.can('admin') ? del : null)),
      h('dl', { class: 'run-facts' },
        h('dt', {}, 'owner'), h('dd', { id: 'run-owner' }, v.owner || ''),
        h('dt', {}, 'created'), h('dd', {}, when(v.created_ms)),
        h('dt', {}, 'duration'), h('dd', {}, span(v.created_ms, v.finished_ms)),
        h('dt', {}, 'progress'), h('dd', { id: 'run-progress', 'data-done': done,
          'data-total': total }, h('span', { class: 'bar' }, h('span', { class:
          'w' + Math.round(total ? (done / total) * 20 : 0) })), ` ${done}/${total}`),
        h('dt', {}, 'cost'), h('dd', { id: 'run-cost' }, money(cost) || '—'),
        v.reason ? [h('dt', {}, 'reason'), h('dd', { id: 'run-reason' }, v.reason)] : null));
  }

  /** The run's spot figures: droverd's sums over every task's attempts,
   *  fan-out items included (RunView cost, spot_ms, ondemand_ms, lost_ms,
   *  preemptions; re-summed at most once a second while the run goes on). */
  function totals() {
    return { pre: Number(view.preemptions || 0), spotMs: Number(view.spot_ms || 0),
      odMs: Number(view.ondemand_ms || 0), lost: Number(view.lost_ms || 0),
      cost: Number(view.cost || 0) };
  }

  function renderSpot() {
    const { pre, spotMs, odMs, lost, cost } = totals();
    const all = spotMs + odMs;
    replace(spot, h('h3', {}, 'Spot'),
      h('dl', { class: 'spot-facts' },
        h('dt', {}, 'preemptions'), h('dd', { id: 'spot-preemptions' }, String(pre)),
        h('dt', {}, 'on spot'), h('dd', { id: 'spot-time' }, duration(spotMs) || '0s',
          all ? ` (${Math.round((spotMs / all) * 100)}%)` : ''),
        h('dt', {}, 'on-demand'), h('dd', { id: 'ondemand-time' }, duration(odMs) || '0s'),
        h('dt', {}, 'work lost'), h('dd', { id: 'spot-lost' }, duration(lost) || '0s'),
        h('dt', {}, 'cost'), h('dd', { id: 'spot-cost' }, money(cost) || '—')),
      all ? h('span', { class: 'bar spot-bar' }, h('span', { class: 'w' +
        Math.round((spotMs / all) * 20) })) : null);
  }

  // ---- the graph

  function render(force) {
    const g = graphOf(view, idx, expanded, MAX_NODES);
    const k = structureKey(g);
    if (force || k !== key || !drawn) {
      key = k;
      const t0 = performance.now();
      drawn = draw(svg, g, idx, expanded, clickNode);
      svg.dataset.layoutMs = Math.round(performance.now() - t0);
      svg.dataset.nodes = g.nodes.length;
      fit();
      replace(note, g.hidden ? `${g.hidden} more steps not drawn (the graph shows at most ` +
        `${MAX_NODES}); open a group or fan-out's panel for its members.` : '');
      if (panel) {
        const r = drawn.nodes.get(panel.name);
        if (r) r.el.classList.add('selected');
      }
    } else {
      paint(drawn, idx, null);
    }
    svg.dataset.seq = String(view.event_seq || 0);
  }

  // ---- loading and live updates

  async function fetchView() {
    if (summaryOk) {
      try {
        return await json(`/runs/${seg(id)}`, { query: { view: 'summary' } });
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 400) throw e;
        summaryOk = false;  // a drover-web without ?view
      }
    }
    return json(`/runs/${seg(id)}`);
  }

  async function load() {
    if (loading) { again = true; return loading; }
    lastLoad = Date.now();
    loading = (async () => {
      try {
        const v = await fetchView();
        if (stopped) return;
        v.status = norm(v.status);
        view = v;
        idx = index(v);
        const t0 = performance.now();
        renderHeader();
        render(false);
        renderSpot();
        page.dataset.renderMs = Math.round(performance.now() - t0);
        page.dataset.loaded = String(Number(page.dataset.loaded || 0) + 1);
        if (!events) follow();
        if (panel) {
          // the panel re-reads its task when the view says it changed (an
          // item, not in a summary, always)
          const t = idx.byName.get(panel.name);
          const sig = t ? JSON.stringify([t.status, t.attempts, t.reason, t.progress,
            t.item_counts, t.out_params]) : String(Math.random());
          if (sig !== panelSig) { panelSig = sig; panel.refresh(); }
        }
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError && e.status === 404 && !view) {
          replace(page, h('p', { class: 'empty', id: 'run-missing' }, `No run ${id}.`));
          stop();
          return;
        }
        ctx.flash(e.message);
      }
    })();
    await loading;
    loading = null;
    if (again && !stopped) { again = false; scheduleReload(RELOAD_MIN_MS); }
  }

  function scheduleReload(minGap = RELOAD_MIN_MS) {
    if (reloadTimer || stopped) return;
    const wait = Math.max(0, lastLoad + minGap - Date.now());
    reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, wait);
  }

  function flush() {
    frame = 0;
    if (!drawn || stopped) return;
    paint(drawn, idx, dirty);
    dirty.clear();
  }

  let panelTimer = null;
  function onEvent(ev) {
    if (ev.event === 'truncated') { scheduleReload(); return; }
    if (ev.event !== 'task' && ev.event !== 'run') return;
    let d;
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    if (d.run_id && d.run_id !== id) return;
    if (ev.event === 'run') {
      const to = norm(d.to);
      if (to && view && view.status !== to) {
        view.status = to;
        renderHeader();
      }
      scheduleReload(RUN_FINAL.has(to) ? 0 : RELOAD_MIN_MS);
      return;
    }
    const t = idx && idx.byName.get(d.task);
    if (t && !t._item) {
      const to = norm(d.to);
      if (to && t.status !== to) {
        t.status = to;
        if (d.reason !== undefined) t.reason = d.reason;
        if (d.has_exit) { t.has_exit = true; t.exit_code = d.exit_code; }
        if (drawn && drawn.nodes.has(t.name)) {
          dirty.add(t.name);
          if (!frame) frame = requestAnimationFrame(flush);
        }
      }
      if (panel && panel.name === t.name && !panelTimer)
        panelTimer = setTimeout(() => { panelTimer = null; if (panel) panel.refresh(); }, 300);
    }
    // counts (the header, a fan-out's or group's) and tasks not on the page
    scheduleReload();
  }

  function follow() {
    events = stream('/events', { run: id, since: view.event_seq || 0 }, onEvent, {
      onError: (e) => ctx.flash('live updates stopped: ' + e.message) });
  }

  function poll() {
    pollTimer = setTimeout(() => {
      if (stopped) return;
      if (view && !RUN_FINAL.has(view.status)) load();
      poll();
    }, POLL_MS);
  }

  function stop() {
    stopped = true;
    window.removeEventListener('resize', fit);
    if (events) events.close();
    if (panel) panel.close();
    clearTimeout(pollTimer);
    clearTimeout(reloadTimer);
    clearTimeout(panelTimer);
    if (frame) cancelAnimationFrame(frame);
  }

  window.addEventListener('resize', fit);
  load().then(() => { if (!stopped && view && route.query.step) showPanel(route.query.step); });
  poll();
  return stop;
}
