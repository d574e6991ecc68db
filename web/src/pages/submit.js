// pages/submit.js — submit a pipeline (#/submit): its YAML pasted into
// #spec or read from a file (#spec-file, FileReader: nothing leaves the
// browser until Submit), params as KEY=VALUE lines, then POST
// /api/v1/runs with the YAML as the body (?param=K=V, ?file=NAME,
// ?no_cache=1). droverd checks the whole spec before it stores anything:
// a refused spec answers 400 with errors [{file, line, col, message}],
// shown here twice — as a list (.spec-error, "file:line:col: message";
// clicking one puts the cursor there) and in a line-numbered view of the
// text as sent (.spec-line.bad at each line, a caret under the column and
// the message). Success goes to the new run (#/runs/ID).
//
// A token that may not submit (role read) sees why, and no form.
// Element contract (tests): #submit-form, #spec, #spec-file, #params,
// #submit-go, #spec-errors, #spec-view, .spec-error / .spec-line.bad
// (data-line, data-col), #submit-error, #submit-denied.

import { ApiError, json, seg } from '../api.js';
import { h, replace } from '../dom.js';

const DEFAULT_FILE = 'pipeline.yaml';

/** KEY=VALUE lines into ["K=V", ...]; blank lines and "# ..." skipped.
 *  Throws an Error naming the first bad line. */
export function parseParams(text) {
  const out = [];
  text.split(/\r\n|\r|\n/).forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith('#')) return;
    const eq = t.indexOf('=');
    if (eq <= 0) throw new Error(`params line ${i + 1}: expected KEY=VALUE, got "${t}"`);
    out.push(t.slice(0, eq).trim() + '=' + t.slice(eq + 1));
  });
  return out;
}

/** The index in text where line (1-based) and col (1-based) are. */
function offsetOf(text, line, col) {
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', off);
    if (nl < 0) return text.length;
    off = nl + 1;
  }
  const end = text.indexOf('\n', off);
  return Math.min(off + Math.max(0, col - 1), end < 0 ? text.length : end);
}

/** mount(root, route, ctx): the form, or why this token cannot submit. */
export function mount(root, route, ctx) {
  if (!ctx.can('submit')) {
    replace(root, h('div', { class: 'submit-page' }, h('h1', {}, 'Submit a run'),
      h('p', { id: 'submit-denied', class: 'card submit-denied' },
        `This token (${ctx.who.name}, role ${ctx.who.role}) cannot submit runs: it needs ` +
        'role submit or admin (drover token create NAME --role submit).')));
    return null;
  }
  let fileName = '';
  let dead = false;
  const spec = h('textarea', { id: 'spec', name: 'spec', rows: 22, cols: 90, spellcheck: 'false',
    placeholder: 'name: hello\nsteps:\n  - name: greet\n    script: echo hello',
    class: 'mono' });
  const fileIn = h('input', { type: 'file', id: 'spec-file', accept: '.yaml,.yml,text/yaml' });
  const fileNote = h('span', { class: 'muted', id: 'spec-file-name' });
  const params = h('textarea', { id: 'params', name: 'params', rows: 4, cols: 50,
    spellcheck: 'false', placeholder: 'KEY=VALUE, one a line', class: 'mono' });
  const noCache = h('input', { type: 'checkbox', id: 'no-cache', name: 'no_cache' });
  const go = h('button', { type: 'submit', id: 'submit-go', class: 'primary' }, 'Submit');
  const err = h('p', { id: 'submit-error', class: 'error', role: 'alert', hidden: true });
  const errors = h('div', { id: 'spec-errors', class: 'spec-errors', hidden: true });

  fileIn.addEventListener('change', () => {
    const file = fileIn.files && fileIn.files[0];
    if (!file) return;
    const rd = new FileReader();
    rd.onload = () => {
      if (dead) return;
      spec.value = String(rd.result);
      fileName = file.name;
      replace(fileNote, 'read ', file.name);
    };
    rd.onerror = () => showError('could not read ' + file.name + ': ' + rd.error);
    rd.readAsText(file);
  });
  spec.addEventListener('input', () => {
    if (fileName) { fileName = ''; replace(fileNote, 'edited'); }
  });

  function showError(msg) {
    err.hidden = !msg;
    replace(err, msg || '');
  }

  /** Put the cursor at line:col of the text box. */
  function jump(line, col) {
    const off = offsetOf(spec.value, line, col);
    spec.focus();
    spec.setSelectionRange(off, off);
  }

  /** The refused spec's errors: the list and the line-numbered text. */
  function showSpecErrors(list, text, file) {
    const byLine = new Map();
    for (const e of list)
      if (e.file === file && e.line > 0) {
        if (!byLine.has(e.line)) byLine.set(e.line, []);
        byLine.get(e.line).push(e);
      }
    const items = list.map((e) => h('li', {},
      h('button', { type: 'button', class: 'link spec-error mono',
        dataset: { line: e.line, col: e.col, file: e.file },
        onclick: () => { if (e.file === file) jump(e.line, e.col); } },
      `${e.file}:${e.line}:${e.col}: ${e.message}`)));
    const lines = text.split(/\r\n|\r|\n/);
    if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop(); // the final newline
    const width = String(lines.length).length;
    const view = lines.map((t, i) => {
      const n = i + 1, bad = byLine.get(n);
      return [h('div', { class: 'spec-line' + (bad ? ' bad' : ''), dataset: { line: n } },
        h('span', { class: 'spec-ln' }, String(n).padStart(width)),
        h('span', { class: 'spec-text' }, t || ' ')),
      (bad || []).map((e) => h('div', { class: 'spec-msg', dataset: { line: n, col: e.col } },
        h('span', { class: 'spec-ln' }, ' '.repeat(width)),
        h('span', { class: 'spec-text' }, ' '.repeat(Math.max(0, e.col - 1)) + '^ ' + e.message)))];
    });
    replace(errors,
      h('h2', {}, `Refused: ${list.length} error${list.length === 1 ? '' : 's'} ` +
        '(nothing was stored)'),
      h('ol', { class: 'spec-error-list' }, items),
      byLine.size ? h('div', { id: 'spec-view', class: 'spec-view mono' }, view) : null);
    errors.hidden = false;
    errors.scrollIntoView({ block: 'start' });
  }

  const form = h('form', { id: 'submit-form', class: 'card submit-form', onsubmit: async (e) => {
    e.preventDefault();
    showError('');
    errors.hidden = true;
    replace(errors);
    const text = spec.value;
    if (!text.trim()) { showError('The spec is empty: paste its YAML or choose a file.'); return; }
    let ps;
    try { ps = parseParams(params.value); } catch (ex) { showError(ex.message); return; }
    const file = fileName || DEFAULT_FILE;
    go.disabled = true;
    try {
      const res = await json('/runs', { method: 'POST', body: text,
        contentType: 'application/yaml',
        query: { param: ps, file, no_cache: noCache.checked ? '1' : '' } });
      if (dead) return;
      ctx.go('#/runs/' + seg(res.run_id));
    } catch (ex) {
      if (dead) return;
      if (ex instanceof ApiError && ex.errors.length) showSpecErrors(ex.errors, text, file);
      else showError(ex.message);
    } finally {
      go.disabled = false;
    }
  } },
  h('label', { for: 'spec' }, 'Pipeline spec (YAML)'), ' ',
  h('span', { class: 'submit-upload' }, 'or upload: ', fileIn, ' ', fileNote),
  spec,
  h('label', { for: 'params' }, 'Params'), params,
  h('div', { class: 'submit-actions' }, h('label', {}, noCache, ' do not reuse cached results'),
    ' ', go),
  err);

  replace(root, h('div', { class: 'submit-page' }, h('h1', {}, 'Submit a run'), form, errors));
  return () => { dead = true; };
}
