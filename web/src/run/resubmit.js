// run/resubmit.js — submit a run again with changed params (#resubmit-form):
// the YAML it was submitted from (GET /runs/{id}/spec, X-Drover-File its
// file name) is posted back as application/yaml with one ?param=K=V per
// param of the run (RunView.params: the values it ran with), edited in the
// form's inputs (input[name=K]). A spec that imports other files cannot be
// sent this way (GET /spec gives the main file only): droverd then refuses
// it, naming the import, and the form shows that error.

import { json, request, seg } from '../api.js';
import { h, replace } from '../dom.js';

/** Fill box with the form for run; ctx.go to the new run on success. */
export function show(box, run, ctx) {
  const inputs = Object.entries(run.params || {}).map(([k, v]) =>
    [k, h('input', { name: k, id: 'resubmit-p-' + k, value: v, size: 40 })]);
  const err = h('div', { class: 'error', id: 'resubmit-error', role: 'alert' });
  const go = h('button', { type: 'submit', id: 'resubmit-go', class: 'primary' }, 'Submit again');
  const form = h('form', { id: 'resubmit-form', class: 'card', onsubmit: async (e) => {
    e.preventDefault();
    go.disabled = true;
    replace(err);
    try {
      const sp = await request(`/runs/${seg(run.id)}/spec`);
      const text = await sp.text();
      const file = sp.headers.get('X-Drover-File') || '';
      const res = await json('/runs', { method: 'POST', body: text,
        contentType: 'application/yaml',
        query: { param: inputs.map(([k, inp]) => k + '=' + inp.value), file } });
      ctx.flash(`submitted ${res.run_id}`, 'info');
      ctx.go('#/runs/' + encodeURIComponent(res.run_id));
    } catch (ex) {
      go.disabled = false;
      replace(err, ex.message, ex.errors.map((x) => h('div', { class: 'spec-error' },
        `${x.file || ''}:${x.line}:${x.col}: ${x.message}`)));
    }
  } },
  h('h3', {}, 'Submit again with these params'),
  inputs.length ? h('table', { class: 'params' }, h('tbody', {}, inputs.map(([k, inp]) =>
    h('tr', {}, h('th', {}, h('label', { for: 'resubmit-p-' + k }, k)), h('td', {}, inp)))))
    : h('p', { class: 'muted' }, 'This pipeline has no params.'),
  go, ' ', h('button', { type: 'button', onclick: () => { box.hidden = true; } }, 'Cancel'), err);
  replace(box, form);
  box.hidden = false;
}
