// run/log.js — a step's log in a <pre>, following live: GET
// /runs/{id}/logs/{task}?follow=1 over sse.js (`event: log` chunks whose
// data is the bytes as text, `end` when the attempt has ended, `error`
// when the step never came to be). Text only ever goes in as text nodes.
// The pre keeps the last MAX_CHARS characters (older chunks dropped from
// its head, with a note), so a chatty step cannot grow the tab without end.

import { seg } from '../api.js';
import { h } from '../dom.js';
import { stream } from '../sse.js';

const MAX_CHARS = 1 << 20;

/** Follow the log of task in run id into a new <pre id="step-log">.
 *  Returns {el, close(), attempt}; el.dataset.state: "following", "ended"
 *  (with data-exit-code) or "error". */
export function follow(id, task) {
  const pre = h('pre', { id: 'step-log', class: 'log', 'data-state': 'following' });
  const chunks = [];
  let size = 0;
  let dropped = null;
  const st = stream(`/runs/${seg(id)}/logs/${seg(task)}`, { follow: 1 }, (ev) => {
    if (ev.event === 'log') {
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      const node = document.createTextNode(ev.data);
      chunks.push(node);
      size += ev.data.length;
      pre.appendChild(node);
      while (size > MAX_CHARS && chunks.length > 1) {
        const old = chunks.shift();
        size -= old.data.length;
        old.remove();
        if (!dropped) {
          dropped = h('span', { class: 'muted log-dropped' }, '[earlier output not shown]\n');
          pre.insertBefore(dropped, pre.firstChild);
        }
      }
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    } else if (ev.event === 'end') {
      let d = {};
      try { d = JSON.parse(ev.data); } catch (e) { /* keep {} */ }
      pre.dataset.state = 'ended';
      if (d.exit_code !== undefined) pre.dataset.exitCode = d.exit_code;
      if (d.truncated) pre.appendChild(h('span', { class: 'muted' }, '\n[log truncated]'));
    } else if (ev.event === 'error') {
      pre.dataset.state = 'error';
      let msg = ev.data;
      try { msg = JSON.parse(ev.data).error || msg; } catch (e) { /* as is */ }
      pre.appendChild(h('span', { class: 'error' }, '[' + msg + ']'));
    }
  }, { onError: (e) => {
    pre.dataset.state = 'error';
    pre.appendChild(h('span', { class: 'error' }, '[' + e.message + ']'));
  } });
  return { el: pre, close: () => st.close() };
}
