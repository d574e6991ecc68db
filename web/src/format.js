// format.js — how the console writes times, durations, sizes and states:
// one place, so every page says them the same way.

/** droverd's status names come lowercased without prefix ("running"). */
export const TASK_STATES = ['waiting', 'ready', 'assigned', 'running', 'succeeded', 'failed',
  'skipped', 'cancelled', 'cached', 'suspended', 'lost'];

/** A state's CSS class: the colour key (style.css, .st-NAME). */
export function stateClass(status) {
  return 'st st-' + String(status || 'unknown').replace(/[^a-z_]/g, '');
}

/** "1.2s", "3m 04s", "2h 05m", "3d 4h"; "" for none. */
export function duration(ms) {
  if (ms === null || ms === undefined || ms < 0 || Number.isNaN(ms)) return '';
  const s = ms / 1000;
  if (s < 60) return s < 10 ? s.toFixed(1) + 's' : Math.round(s) + 's';
  const m = Math.floor(s / 60), sec = Math.floor(s % 60);
  if (m < 60) return `${m}m ${String(sec).padStart(2, '0')}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

/** The span from start to end (or now, while it goes on); "" before it starts. */
export function span(startMs, endMs) {
  if (!startMs) return '';
  return duration((endMs || Date.now()) - startMs);
}

/** A local date-time "2026-12-08 14:03:05"; "" for 0. */
export function when(ms) {
  if (!ms) return '';
  const d = new Date(Number(ms));
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** "1.5 MiB". */
export function bytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

/** "$0.42" (droverd's estimate from the agents' prices). */
export function money(x) {
  if (!x) return '';
  return '$' + (x < 0.01 ? x.toFixed(4) : x.toFixed(2));
}
