// pages/runs.js — the runs list (#/runs?status=&name=&owner=&before=&limit=):
// newest first, a page at a time (GET /api/v1/runs: `before` = the `next`
// of the page before; the pages walked through are remembered in this
// tab's sessionStorage so "newer" goes back), filtered by status, name and
// owner. The filters and the page live in the hash, so a reload or a
// shared link shows the same list.
//
// Live: the cluster-wide event stream from the page's largest
// RunView.event_seq. A run event sets its row's status in place (the
// event's `to`, never arithmetic: events may repeat what the view shows);
// anything a row cannot show from the event (progress, a new run, a run
// that now fails the filters) re-reads the page, throttled to once a
// second. Durations of running runs tick every second.
//
// Cost: RunView.cost, droverd's sum over the run's attempts (re-summed at
// most once a second while the run goes on); the column shows when the
// views carry it (a drover-web older than the console does not).
//
// Element contract (tests): #runs table, tr.run data-id data-status,
// #runs-filter (#f-status, #f-name, #f-owner), #runs-next, #runs-prev,
// #runs-empty.

import { json, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { money, span, stateClass, when } from '../format.js';
import { followAll, throttle } from '../follow.js';

const RUN_STATES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];
const FINAL = new Set(['succeeded', 'failed', 'cancelled']);
const DEFAULT_LIMIT = 50;
const TRAIL_KEY = 'drover.runs.trail';

/** The filters of a route's query (only the known keys, trimmed). */
function filters(query) {
  const f = {};
  for (const k of ['status', 'name', 'owner']) if (query[k]) f[k] = query[k].trim();
  if (f.status && !RUN_STATES.includes(f.status)) delete f.status;
  const limit = parseInt(query.limit, 10);
  if (limit > 0 && limit <= 1000) f.limit = limit;
  return f;
}

/** The hash of the list with filters f (and before, a page). */
function hashOf(f, before) {
  const q = new URLSearchParams();
  for (const k of ['status', 'name', 'owner', 'limit']) if (f[k]) q.set(k, f[k]);
  if (before) q.set('before', before);
  const qs = q.toString();
  return '#/runs' + (qs ? '?' + qs : '');
}

/** The trail of `before`s that led to this page, for these filters. */
function trail(f) {
  try {
    const t = JSON.parse(sessionStorage.getItem(TRAIL_KEY) || 'null');
    if (t && t.key === hashOf(f)) return t.pages;
  } catch (e) { /* none */ }
  return [];
}

function setTrail(f, pages) {
  sessionStorage.setItem(TRAIL_KEY, JSON.stringify({ key: hashOf(f), pages }));
}

/** mount(root, route, ctx): the list; returns its cleanup (stream, timers). */
export function mount(root, route, ctx) {
  const f = filters(route.query);
  const before = route.query.before || '';
  const limit = f.limit || DEFAULT_LIMIT;
  const rows = new Map(); // run id -> {tr, run}
  let costs = false;
  let es = null;
  let dead = false;

  const status = h('select', { id: 'f-status', name: 'status' },
    h('option', { value: '' }, 'any status'),
    RUN_STATES.map((s) => h('option', { value: s, selected: s === f.status }, s)));
  const name = h('input', { id: 'f-name', name: 'name', placeholder: 'pipeline name',
    value: f.name || '', size: 18 });
  const owner = h('input', { id: 'f-owner', name: 'owner', placeholder: 'owner',
    value: f.owner || '', size: 14 });
  const apply = () => {
    const nf = { status: status.value, name: name.value.trim(), owner: owner.value.trim(),
      limit: f.limit };
    ctx.go(hashOf(nf));
  };
  status.addEventListener('change', apply);
  const form = h('form', { id: 'runs-filter', class: 'runs-filter', onsubmit: (e) => {
    e.preventDefault();
    apply();
  } }, status, ' ', name, ' ', owner, ' ',
  h('button', { type: 'submit', id: 'f-apply' }, 'Filter'), ' ',
  (f.status || f.name || f.owner) ? h('a', { href: hashOf({ limit: f.limit }), id: 'f-clear' },
    'clear') : null);

  const head = h('thead');
  const body = h('tbody');
  const table = h('table', { id: 'runs', class: 'runs-table' }, head, body);
  const empty = h('p', { id: 'runs-empty', class: 'empty', hidden: true });
  const pager = h('div', { class: 'runs-pager' });
  const live = h('span', { class: 'runs-live muted', id: 'runs-live' });

  replace(root, h('div', { class: 'runs-page' },
    h('div', { class: 'runs-top' }, h('h1', {}, 'Runs'), live,
      ctx.can('submit') ? h('a', { href: '#/submit', class: 'runs-new' }, 'Submit a run') : null),
    form, table, empty, pager));

  function header() {
    replace(head, h('tr', {}, h('th', {}, 'Status'), h('th', {}, 'Name'), h('th', {}, 'Owner'),
      h('th', {}, 'Started'), h('th', {}, 'Duration'), h('th', {}, 'Progress'),
      costs ? h('th', {}, 'Cost') : null));
  }

  function progress(run) {
    const total = run.task_count || 0, done = run.tasks_done || 0;
    return [h('progress', { max: total || 1, value: total ? done : 0, class: 'run-progress' }),
      ' ', h('span', { class: 'run-count' }, `${done}/${total}`)];
  }

  function row(run) {
    const tr = h('tr', { class: 'run', dataset: { id: run.id, status: run.status } },
      h('td', {}, h('span', { class: stateClass(run.status) }, run.status)),
      h('td', {}, h('a', { href: '#/runs/' + seg(run.id), class: 'run-name' }, run.name),
        ' ', h('span', { class: 'muted mono run-id' }, run.id),
        run.schedule ? h('span', { class: 'muted run-sched' }, ' ⏱ ', run.schedule) : null),
      h('td', { class: 'run-owner' }, run.owner),
      h('td', { class: 'run-start' }, when(run.created_ms)),
      h('td', { class: 'run-dur' }, span(run.created_ms, run.finished_ms)),
      h('td', { class: 'run-prog' }, progress(run)),
      costs ? h('td', { class: 'run-cost' },
        typeof run.cost === 'number' ? money(run.cost) : '') : null);
    if (run.reason) tr.title = run.reason;
    return tr;
  }

  /** An event's status change, in place (idempotent). */
  function setStatus(id, to, timeMs) {
    const r = rows.get(id);
    if (!r || !RUN_STATES.includes(to)) return false;
    if (r.run.status !== to) shown = ''; // the row is ahead of (or behind) the last page read
    r.run.status = to;
    if (FINAL.has(to) && !r.run.finished_ms) r.run.finished_ms = timeMs;
    r.tr.dataset.status = to;
    const badge = r.tr.querySelector('.st');
    badge.className = stateClass(to);
    replace(badge, to);
    return true;
  }

  let shown = ''; // the page as last rendered (JSON): an unchanged re-read renders nothing

  function render(page) {
    const key = JSON.stringify(page);
    if (key === shown) return;
    shown = key;
    costs = page.runs.some((r) => typeof r.cost === 'number');
    header();
    rows.clear();
    replace(body, page.runs.map((run) => {
      const tr = row(run);
      rows.set(run.id, { tr, run });
      return tr;
    }));
    table.hidden = page.runs.length === 0;
    empty.hidden = page.runs.length !== 0;
    replace(empty, before ? 'No more runs.' : (f.status || f.name || f.owner)
      ? 'No runs match these filters.'
      : ['No runs yet. ', ctx.can('submit') ? h('a', { href: '#/submit' }, 'Submit one') : '',
        ctx.can('submit') ? '.' : '']);
    const pages = trail(f);
    replace(pager,
      before ? h('button', { id: 'runs-prev', type: 'button', onclick: () => {
        const t = trail(f);
        const back = t.length ? t.pop() : '';
        setTrail(f, t);
        ctx.go(hashOf(f, back));
      } }, '← newer') : null, ' ',
      page.next ? h('button', { id: 'runs-next', type: 'button', onclick: () => {
        setTrail(f, pages.concat([before]));
        ctx.go(hashOf(f, page.next));
      } }, 'older →') : null);
  }

  async function load() {
    const page = await json('/runs', { query: { status: f.status, name: f.name,
      owner: f.owner, before, limit } });
    if (dead) return null;
    render(page);
    return page;
  }

  const reread = throttle(() => load().catch((e) => { if (!dead) ctx.flash(e.message); }), 1000);

  function onEvent(ev) {
    if (ev.kind === 'run') {
      // A run the page shows: in place; a run it does not (a new one on the
      // first page, or one the filters now take in): re-read.
      setStatus(ev.run_id, ev.to, ev.time_ms);
      if (rows.has(ev.run_id) || !before) reread.call();
    } else if (ev.kind === 'task' && rows.has(ev.run_id)) {
      reread.call(); // progress (tasks_done) is not in the event
    }
  }

  const tick = setInterval(() => {
    for (const { tr, run } of rows.values())
      if (!run.finished_ms && run.status !== 'pending')
        replace(tr.querySelector('.run-dur'), span(run.created_ms, run.finished_ms));
  }, 1000);

  load().then((page) => {
    if (!page || dead) return;
    const seqs = page.runs.map((r) => r.event_seq).filter((s) => typeof s === 'number');
    const since = seqs.length ? Math.max(...seqs) : undefined;
    es = followAll(since, onEvent, () => reread.call(), {
      onOpen: () => replace(live, '● live'),
      onError: (e) => replace(live, 'not live: ', e.message),
    });
  }).catch((e) => {
    if (dead) return;
    ctx.flash(e.message);
    table.hidden = true;
  });

  return () => {
    dead = true;
    clearInterval(tick);
    reread.cancel();
    if (es) es.close();
  };
}
