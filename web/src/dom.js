// dom.js — the console's one way to make DOM: h(tag, attrs, ...children).
// Text always goes in as text nodes (never innerHTML anywhere in web/src:
// a test greps for it), so a step named "<img onerror=...>" or a log line
// holding "<script>" shows as those characters. Attribute values are set
// with setAttribute and "on*" keys take functions only (no inline script:
// the Content-Security-Policy forbids it anyway).

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) {
      if (typeof v !== 'function') throw new Error(`${k}: a function, not ${typeof v}`);
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nodes, strings, numbers, arrays of them; null skipped). */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element: h('a', {href: '#/runs', class: 'x'}, 'text', child). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element (the run graph). */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace el's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}
