// follow.js — what the runs list and the agents page share to stay live:
// the cluster-wide event stream (GET /api/v1/events, all runs) read from
// a known seq, and a throttle so a burst of events becomes at most one
// re-read a second. Pages apply events idempotently (an event may repeat
// what a view already shows, design20.md "Live updates") and re-read
// anything they cannot apply.

import { json } from './api.js';
import { stream } from './sse.js';

/** fn, called at most once every ms: call() runs it now when the last run
 *  is ms old, else once when ms has passed (calls meanwhile merge into
 *  that one). A run still in flight (a promise) delays the next until it
 *  settles. cancel() drops a pending call and any later one. */
export function throttle(fn, ms) {
  let last = 0, timer = null, busy = false, again = false, dead = false;
  async function run() {
    timer = null;
    if (dead) return;
    if (busy) { again = true; return; }
    busy = true;
    last = Date.now();
    try { await fn(); } catch (e) { console.error(e); }
    busy = false;
    if (again) { again = false; call(); }
  }
  function call() {
    if (dead || timer) return;
    if (busy) { again = true; return; }
    timer = setTimeout(run, Math.max(0, last + ms - Date.now()));
  }
  return { call, cancel() { dead = true; if (timer) clearTimeout(timer); } };
}

/** The seq of the last event droverd committed, as a run view says it
 *  (RunView.event_seq of the newest run); undefined when the views do not
 *  carry it (or there is no run): follow then starts at the log's start. */
export async function latestSeq() {
  const page = await json('/runs', { query: { limit: 1 } });
  const r = page.runs && page.runs[0];
  return r && typeof r.event_seq === 'number' ? r.event_seq : undefined;
}

/** Follow every run's events after since. onEvent(record) for task, run,
 *  agent, checkpoint and pool_node events (the EventRecord, parsed);
 *  onResync() when events were lost (`truncated`): re-read the state.
 *  opts.onError(err) when the stream is refused. Returns {close()}. */
export function followAll(since, onEvent, onResync, opts = {}) {
  return stream('/events', { since }, (e) => {
    if (e.event === 'truncated') { onResync(); return; }
    if (e.event === 'end' || e.event === 'error') return;
    let rec;
    try { rec = JSON.parse(e.data); } catch (ex) { return; }
    onEvent(rec);
  }, { onError: opts.onError, onOpen: opts.onOpen });
}

/** Milliseconds as "12s ago" / "3m ago" (last seen); "never" for 0. */
export function ago(ms, now = Date.now()) {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return s + 's ago';
  if (s < 3600) return Math.floor(s / 60) + 'm ago';
  if (s < 172800) return Math.floor(s / 3600) + 'h ago';
  return Math.floor(s / 86400) + 'd ago';
}
