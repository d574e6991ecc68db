// pages/login.js — token login: the token (`drover token create NAME
// --role ROLE`) is kept in this tab's sessionStorage only (api.js).

import { setToken } from '../api.js';
import { h, replace } from '../dom.js';
import { loggedIn } from '../app.js';

export function mount(root) {
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off',
    placeholder: 'drva1.…', size: 60, required: true });
  const err = h('p', { class: 'error', id: 'login-error', role: 'alert' });
  const form = h('form', { id: 'login', class: 'card', onsubmit: async (e) => {
    e.preventDefault();
    replace(err);
    setToken(input.value.trim());
    try {
      await loggedIn();
    } catch (ex) {
      setToken('');
      replace(err, ex.message);
    }
  } },
  h('h1', {}, 'Log in'),
  h('p', {}, 'An API token: ', h('code', {}, 'drover token create NAME --role read|submit|admin'),
    ' prints one. It stays in this browser tab only.'),
  h('label', { for: 'token' }, 'Token '), input, ' ',
  h('button', { type: 'submit', id: 'login-submit' }, 'Log in'),
  err);
  replace(root, form);
  input.focus();
}
