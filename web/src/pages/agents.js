// pages/agents.js — placeholder until its helper's branch lands.
import { h, replace } from '../dom.js';

export function mount(root) {
  replace(root, h('p', { class: 'empty' }, 'The agents page is being built.'));
}
