// app.js — the console's shell: the hash router, the login gate, who the
// token is (GET /api/v1/whoami: name and role, so pages show only the
// buttons the role may use; droverd decides anyway), and the flash line.
//
// A page is a module with mount(root, route, ctx) that fills root and
// returns a function that undoes what it started (streams, timers): the
// router calls it before the next page mounts. route = {name, params,
// query}; ctx = {who, can(role), flash(msg, kind), go(hash)}.
// Routes (hash, so drover-web serves one index.html):
//   #/login  #/runs?status=&name=&owner=  #/runs/ID?step=NAME  #/submit
//   #/agents

import { ApiError, json, setToken, token } from './api.js';
import { h, replace } from './dom.js';
import * as login from './pages/login.js';
import * as runs from './pages/runs.js';
import * as run from './pages/run.js';
import * as submit from './pages/submit.js';
import * as agents from './pages/agents.js';

const ROUTES = [
  { name: 'login', re: /^\/login$/, page: login },
  { name: 'runs', re: /^\/runs$/, page: runs },
  { name: 'run', re: /^\/runs\/([^/]+)$/, page: run, keys: ['id'] },
  { name: 'submit', re: /^\/submit$/, page: submit },
  { name: 'agents', re: /^\/agents$/, page: agents },
];

const RANK = { read: 1, submit: 2, admin: 3 };
let who = null;
let unmount = null;

function parse(hash) {
  const raw = hash.replace(/^#/, '') || '/runs';
  const [path, qs] = raw.split('?', 2);
  const query = Object.fromEntries(new URLSearchParams(qs || ''));
  for (const r of ROUTES) {
    const m = r.re.exec(path);
    if (!m) continue;
    const params = {};
    (r.keys || []).forEach((k, i) => { params[k] = decodeURIComponent(m[i + 1]); });
    return { name: r.name, page: r.page, params, query };
  }
  return null;
}

export function flash(msg, kind = 'error') {
  const el = document.getElementById('flash');
  if (!msg) { el.hidden = true; return; }
  el.className = 'flash-' + kind;
  replace(el, msg, ' ', h('button', { class: 'link', onclick: () => flash(null) }, 'dismiss'));
  el.hidden = false;
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

const ctx = {
  get who() { return who; },
  can: (role) => !!who && (RANK[who.role] || 0) >= RANK[role],
  flash,
  go,
};

async function whoami() {
  try {
    who = await json('/whoami');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return false;
    throw e;
  }
  const el = document.getElementById('who');
  replace(el, h('span', { class: 'who-name' }, who.name), ' ', h('span', { class: 'who-role' },
    who.role), ' ', h('button', { class: 'link', id: 'logout', onclick: logout }, 'log out'));
  return true;
}

function logout() {
  setToken('');
  who = null;
  replace(document.getElementById('who'));
  go('#/login');
}

async function route() {
  if (unmount) { try { unmount(); } catch (e) { console.error(e); } unmount = null; }
  flash(null);
  let r = parse(location.hash);
  const root = document.getElementById('page');
  if (!r) {
    replace(root, h('p', { class: 'empty' }, 'No such page: ', location.hash));
    return;
  }
  if (r.name !== 'login' && (!token() || (!who && !(await whoami().catch((e) => {
    flash(e.message);
    return false;
  }))))) {
    sessionStorage.setItem('drover.after-login', location.hash);
    location.hash = '#/login';
    return;
  }
  for (const a of document.querySelectorAll('#nav a'))
    a.classList.toggle('active', a.dataset.nav === r.name || (r.name === 'run' &&
      a.dataset.nav === 'runs'));
  replace(root);
  root.dataset.page = r.name;
  const done = r.page.mount(root, r, ctx);
  unmount = typeof done === 'function' ? done : null;
}

/** Called by the login page once a token works. */
export async function loggedIn() {
  who = null;
  if (!(await whoami())) throw new ApiError(401, 'unauthenticated', 'the token was refused');
  const next = sessionStorage.getItem('drover.after-login') || '#/runs';
  sessionStorage.removeItem('drover.after-login');
  go(next.startsWith('#/login') ? '#/runs' : next);
}

window.addEventListener('drover-unauthenticated', () => {
  if (parse(location.hash)?.name !== 'login') {
    sessionStorage.setItem('drover.after-login', location.hash);
    setToken('');
    who = null;
    location.hash = '#/login';
  }
});
window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', route);
