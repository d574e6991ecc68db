// run/panel.js — the step panel (#step-panel): one task of the run, read
// with its attempts from GET /runs/{id}/tasks/{task}: state and reason,
// the approve/reject buttons of a suspended gate, the attempts table, the
// log following live (run/log.js), output params, artifacts with download
// and a fan-out's items a page at a time (GET /runs/{id}/items/{task}).
//
// refresh() re-reads the task (the page calls it, debounced, when an event
// names it) and rebuilds every section but the log, which keeps following;
// a new attempt (a retry) starts a new log. Downloads go through fetch with
// the bearer (a plain link could not send it). A file up to BLOB_MAX is
// fetched into a blob, its SHA-256 checked against X-Drover-Digest with
// crypto.subtle where the page has it, and saved from a blob URL; a larger
// one, or a directory (a tar), is saved by the browser itself from a
// download ticket's URL (POST .../ticket: used once, no token needed), so
// gigabytes stream to disk instead of into the tab (drover-web checks the
// digest before the last byte goes out: a corrupt file is cut short).

import { json, request, seg } from '../api.js';
import { h, replace } from '../dom.js';
import { bytes, duration, money, stateClass, when } from '../format.js';
import { follow } from './log.js';
import { FINAL, norm, why } from './model.js';

const ITEMS_PAGE = 50;
const BLOB_MAX = 32 << 20;

function hex(buf) {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Download artifact art of task, checking its digest; status: the
 *  element that says how it went. */
async function download(id, task, art, status) {
  replace(status, 'downloading…');
  status.className = 'artifact-status muted';
  const path = `/runs/${seg(id)}/artifacts/${seg(task)}/${seg(art.name)}`;
  try {
    if (art.is_dir || Number(art.size) > BLOB_MAX) {
      const ticket = await json(path + '/ticket', { method: 'POST' });
      const a = h('a', { href: ticket.url, download: art.is_dir ? art.name + '.tar' : art.name });
      document.body.appendChild(a);
      a.click();
      a.remove();
      status.classList.remove('muted');
      replace(status, 'saving (', bytes(art.size), art.is_dir ? ', a tar of the directory' : '',
        '; streamed by the browser, the digest checked by drover-web)');
      status.dataset.ticket = '1';
      return;
    }
    const resp = await request(path);
    const blob = await resp.blob();
    const want = (resp.headers.get('X-Drover-Digest') || '').replace(/^sha256:/, '');
    let note = bytes(blob.size);
    if (want && window.crypto && crypto.subtle) {
      const got = hex(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
      if (got !== want) throw new Error(`digest mismatch: got sha256:${got}, expected ${want}`);
      status.dataset.digest = got;
      note += ', sha256 verified';
      status.classList.add('verified');
    }
    const a = h('a', { href: URL.createObjectURL(blob), download: art.name });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    status.classList.remove('muted');
    replace(status, 'downloaded (', note, ')');
  } catch (e) {
    status.className = 'artifact-status error';
    replace(status, e.message);
  }
}

function attemptsTable(t) {
  const rows = (t.history || []).map((a) => h('tr', { 'data-attempt': a.number },
    h('td', {}, a.number),
    h('td', {}, a.agent),
    h('td', {}, a.agent ? (a.spot ? 'spot' : 'on-demand') : ''),
    h('td', { class: 'exit-code' }, a.finished_ms && norm(a.status) !== 'preempted' &&
      norm(a.status) !== 'lost' ? String(a.exit_code) + (a.term_signal ? ' (signal ' +
      a.term_signal + ')' : '') : ''),
    h('td', {}, h('span', { class: stateClass(norm(a.status)) }, norm(a.status)), ' ',
      a.reason || ''),
    h('td', {}, a.started_ms ? duration((a.finished_ms || Date.now()) - a.started_ms) : ''),
    h('td', {}, a.checkpoints ? String(a.checkpoints) : '', a.resumed ? ' (resumed at ' +
      a.resumed_step + ')' : ''),
    h('td', {}, a.lost_ms ? duration(a.lost_ms) : '')));
  return h('table', { id: 'step-attempts' },
    h('thead', {}, h('tr', {}, ['attempt', 'agent', 'spot/on-demand', 'exit code', 'status',
      'duration', 'checkpoints', 'work lost'].map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 8, class: 'empty' },
      'no attempt yet'))));
}

/** The step panel of task name in run id, mounted into el. ctx: the
 *  page's (can, flash); onChange(): something was done (approved...).
 *  Returns {name, refresh(), close()}. */
export function open(el, id, name, ctx, onChange) {
  const approveParams = h('textarea', { id: 'step-approve-params', rows: 2, cols: 30,
    placeholder: 'output params, K=V a line (optional)' });
  // kept across refreshes (a click between two refreshes lands on the same button)
  const approveBtn = h('button', { id: 'step-approve', class: 'primary', onclick: () =>
    gate(false) }, 'Approve');
  const rejectBtn = h('button', { id: 'step-reject', class: 'danger', onclick: () => gate(true) },
    'Reject');
  let lastData = '';
  let closed = false;
  let log = null;
  let logAttempt = 0;
  const logBox = h('div', { class: 'log-box' });
  const body = h('div', { class: 'panel-body' });
  const artStatus = new Map();  // task/name → its status element, kept across refreshes
  let itemsOffset = 0;
  let itemsBox = null;
  el.dataset.task = name;
  el.hidden = false;
  replace(el, h('div', { class: 'panel-head' }, h('h2', {}, name), h('button', {
    class: 'link', id: 'step-close', onclick: () => ctx.closePanel() }, 'close')), body,
  h('h3', {}, 'Log'), logBox);

  function startLog(t) {
    if (log) log.close();
    logAttempt = t.attempts;
    log = follow(id, name);
    replace(logBox, log.el);
  }

  async function gate(reject) {
    try {
      const params = {};
      for (const line of approveParams.value.split('\n')) {
        const eq = line.indexOf('=');
        if (line.trim() && eq <= 0) throw new Error(`"${line}": expected KEY=VALUE`);
        if (line.trim()) params[line.slice(0, eq).trim()] = line.slice(eq + 1);
      }
      await json(`/runs/${seg(id)}/resume`, { method: 'POST', body: { step: name, reject,
        params } });
      ctx.flash(reject ? `${name} rejected` : `${name} approved`, 'info');
      onChange();
      refresh();
    } catch (e) {
      ctx.flash(e.message);
    }
  }

  async function loadItems() {
    if (!itemsBox) return;
    let page;
    try {
      page = await json(`/runs/${seg(id)}/items/${seg(name)}`, { query: { offset: itemsOffset,
        limit: ITEMS_PAGE } });
    } catch (e) {
      replace(itemsBox, h('p', { class: 'error' }, e.message));
      return;
    }
    if (closed) return;
    const total = Number(page.total || 0);
    const rows = (page.items || []).map((it) => {
      const st = norm(it.status);
      return h('tr', { class: 'item', 'data-task': it.name, 'data-status': st },
        h('td', {}, h('button', { class: 'link', onclick: () => ctx.openStep(it.name) },
          it.name)),
        h('td', {}, h('span', { class: stateClass(st) }, st)),
        h('td', { class: 'mono' }, it.item_value || ''),
        h('td', {}, it.started_ms ? duration((it.finished_ms || Date.now()) - it.started_ms)
          : ''),
        h('td', {}, it.reason || ''));
    });
    replace(itemsBox,
      h('table', { id: 'fanout-items', 'data-total': total, 'data-offset': itemsOffset },
        h('thead', {}, h('tr', {}, ['item', 'status', 'value', 'duration', 'reason']
          .map((c) => h('th', {}, c)))),
        h('tbody', {}, rows)),
      h('div', { class: 'pager' },
        h('button', { id: 'fanout-prev', disabled: itemsOffset === 0, onclick: () => {
          itemsOffset = Math.max(0, itemsOffset - ITEMS_PAGE); loadItems(); } }, '‹ previous'),
        ' ', total ? `${itemsOffset + 1}–${Math.min(total, itemsOffset + ITEMS_PAGE)} of ${total}`
          : 'no items', ' ',
        h('button', { id: 'fanout-next', disabled: itemsOffset + ITEMS_PAGE >= total,
          onclick: () => { itemsOffset += ITEMS_PAGE; loadItems(); } }, 'next ›')));
  }

  async function refresh() {
    let t, arts;
    try {
      [t, arts] = await Promise.all([
        json(`/runs/${seg(id)}/tasks/${seg(name)}`),
        json(`/runs/${seg(id)}/artifacts`, { query: { task: name } }).catch(() => null)]);
    } catch (e) {
      if (!closed) replace(body, h('p', { class: 'error' }, e.message));
      return;
    }
    if (closed) return;
    // nothing new: leave the panel as it is (no flicker, no lost clicks);
    // a running step's duration moves on anyway
    const data = JSON.stringify([t, arts]);
    if (data === lastData && !(t.started_ms && !t.finished_ms)) return;
    lastData = data;
    const st = norm(t.status);
    el.dataset.status = st;
    const facts = [
      ['status', h('span', { class: stateClass(st), id: 'step-status' }, st)],
      ['reason', why(t, ctx.tasks()) ? h('span', { id: 'step-reason' }, why(t, ctx.tasks()))
        : null],
      ['exit code', t.has_exit ? h('span', { id: 'step-exit-code' }, String(t.exit_code)) : null],
      ['agent', t.agent || null],
      ['started', t.started_ms ? when(t.started_ms) : null],
      ['duration', t.started_ms ? duration((t.finished_ms || Date.now()) - t.started_ms) : null],
      ['progress', t.progress >= 0 && !FINAL.has(st) ? Math.round(t.progress * 100) + '%' : null],
      ['retries', t.retries_used ? String(t.retries_used) : null],
      ['preemptions', t.preemptions ? String(t.preemptions) : null],
      ['work lost', t.lost_ms ? duration(t.lost_ms) : null],
      ['cost', t.cost ? money(t.cost) : null],
      ['cached from', t.cached_from || null],
      ['item', t.item_value ? h('code', {}, t.item_value) : null],
      ['template', t.template || null],
      ['approved by', t.gate_by ? t.gate_by + (t.gate_rejected ? ' (rejected)' : '') : null],
    ].filter(([, v]) => v !== null);
    const gateBox = st === 'suspended' && ctx.mayAct() ? h('div', { class: 'gate' },
      'This gate waits for approval',
      t.suspend_deadline_ms ? ' (until ' + when(t.suspend_deadline_ms) + ')' : '', ': ',
      h('div', {}, approveParams), approveBtn, ' ', rejectBtn) : null;
    const params = Object.entries(t.out_params || {});
    const list = (arts && arts.artifacts) || [];
    const isFan = !!(t.fan_out || ctx.isFanout(name));
    const isGate = st === 'suspended' || !!t.suspended_ms || !!t.gate_at_ms;
    const runsNothing = isFan || t.is_group || isGate;  // no attempts, no log of its own
    replace(body,
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      gateBox,
      runsNothing ? null : [h('h3', {}, 'Attempts'), attemptsTable(t)],
      h('h3', {}, 'Output params'),
      h('table', { id: 'step-params' }, h('tbody', {}, params.length ? params.map(([k, v]) =>
        h('tr', { 'data-name': k }, h('th', {}, k), h('td', { class: 'mono' }, v))) :
        h('tr', {}, h('td', { class: 'empty' }, 'none')))),
      h('h3', {}, 'Artifacts'),
      h('ul', { id: 'step-artifacts' }, list.length ? list.map((a) => {
        const k = a.task + '/' + a.artifact.name;
        if (!artStatus.has(k)) artStatus.set(k, h('span', { class: 'artifact-status muted' }));
        const status = artStatus.get(k);
        return h('li', {}, h('button', { class: 'artifact-download', 'data-name':
          a.artifact.name, onclick: () => download(id, a.task, a.artifact, status) },
        a.artifact.name, a.artifact.is_dir ? '/ (tar)' : ''), ' ',
        h('span', { class: 'muted' }, bytes(a.artifact.size), ' · sha256:',
          String(a.artifact.digest || '').slice(0, 12)), ' ', status);
      }) : h('li', { class: 'empty' }, 'none')),
      isFan ? [h('h3', {}, 'Items'), itemsBox = itemsBox || h('div', { class: 'items-box' })]
        : null);
    if (isFan) loadItems();
    if (runsNothing) {
      // no output of its own: its members' or items' panels have theirs
      if (!log) replace(logBox, h('p', { class: 'muted' }, t.is_group
        ? 'A group: open it in the graph for its members and their logs.'
        : isFan ? 'A fan-out: its items (above) have the logs.'
          : 'An approval gate runs nothing.'));
    } else if (!log || (t.attempts > logAttempt && log.el.dataset.state !== 'following')) {
      startLog(t);
    }
  }

  refresh();
  return {
    name,
    refresh,
    close() {
      closed = true;
      if (log) log.close();
      el.hidden = true;
      delete el.dataset.task;
      replace(el);
    },
  };
}
