// sse.js — server-sent events over fetch (EventSource cannot send the
// Authorization header): stream(path, query, onEvent) reads
// "text/event-stream" as the HTML spec parses it, reconnects after a drop
// with Last-Event-ID (drover-web resumes the event log at that seq and a
// log at that byte offset), and stops for good on close() or when the
// server ends the stream with an `end` or `error` event.

import { ApiError, headers, url } from './api.js';

const RETRY_MS = 1000;

/** Follow path's stream. onEvent({event, data, id}) for each event (data
 *  is the text; JSON.parse it yourself). opts.onError(err) on a refusal
 *  (the stream stops); opts.onOpen() on each (re)connection. Returns
 *  {close()}. */
export function stream(path, query, onEvent, opts = {}) {
  let stopped = false;
  let ctl = null;
  let lastId = opts.lastEventId || '';

  async function once() {
    ctl = new AbortController();
    const hd = headers({ Accept: 'text/event-stream' });
    if (lastId) hd.set('Last-Event-ID', lastId);
    const resp = await fetch(url(path, query), { headers: hd, signal: ctl.signal,
      cache: 'no-store' });
    if (!resp.ok) {
      let body = null;
      try { body = await resp.json(); } catch (e) { /* not JSON */ }
      throw new ApiError(resp.status, body && body.code, (body && body.error) || resp.statusText);
    }
    if (opts.onOpen) opts.onOpen();
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let ev = { event: 'message', data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buf += value;
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (ev.data.length) {
            if (ev.id !== null) lastId = ev.id;
            const e = { event: ev.event, data: ev.data.join('\n'), id: ev.id };
            onEvent(e);
            if (e.event === 'end' || e.event === 'error') return true;
          }
          ev = { event: 'message', data: [], id: null };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? '' : line.slice(colon + 1);
        if (v.startsWith(' ')) v = v.slice(1);
        if (field === 'event') ev.event = v;
        else if (field === 'data') ev.data.push(v);
        else if (field === 'id') ev.id = v;
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        if (await once()) return;
      } catch (e) {
        if (stopped || e.name === 'AbortError') return;
        if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
          if (opts.onError) opts.onError(e);
          return;
        }
      }
      if (!stopped) await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  })();

  return {
    close() {
      stopped = true;
      if (ctl) ctl.abort();
    },
  };
}
