// The machine table: search by serial, filter by state, profile and stuck, sort by any column,
// one page at a time (10 000 hosts are 100 rows in the DOM, not 10 000), with badges for a
// standing install failure and a stuck install. The controls are built once and kept, so live
// updates redraw rows without taking the focus or the text from the search box.
import { h } from './dom.js';

export const STATES = ['unknown', 'configured', 'installing', 'installed', 'running'];
const ZERO_TIME = '0001-01-01T00:00:00Z';
export const PAGE_SIZE = 100;

/** @param {string | undefined} t */
export function formatTime(t) {
  if (!t || t === ZERO_TIME) return 'never';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toISOString().replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');
}

/** "1h12m": how long, for humans (as mayuctl list --stuck prints it). @param {number} seconds */
export function formatFor(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(hours / 24)}d${hours % 24}h`;
}

/** A standing install failure next to the state: stage on the badge, reason and time on hover. @param {any} f */
export function failureBadge(f) {
  if (!f) return '';
  return h('span', { class: 'badge badge-fail', 'data-install-failure': f.Stage, title: `${formatTime(f.Time)}: ${f.Reason}` }, `install failed: ${f.Stage}`);
}

/** A stuck install (GET /admin/stuck, or the event): how long on the badge, since when on hover. @param {any} s */
export function stuckBadge(s) {
  if (!s) return '';
  const seconds = Math.max(s.Seconds ?? 0, Math.floor((Date.now() - Date.parse(s.Since)) / 1000));
  return h('span', { class: 'badge badge-stuck', 'data-stuck': s.State, title: `in ${s.State} since ${formatTime(s.Since)}${s.From ? ` (from ${s.From})` : ''}` }, `stuck ${formatFor(seconds)}`);
}

/** @param {string | undefined} ip */
function ipSortKey(ip) {
  return (ip ?? '').split('.').map((p) => p.padStart(3, '0')).join('.');
}

const COLUMNS = [
  { key: 'serial', label: 'Serial', value: (/** @type {any} */ x) => x.Serial ?? '' },
  { key: 'ip', label: 'IP', value: (/** @type {any} */ x) => x.InternalAddr ?? '', sort: (/** @type {any} */ x) => ipSortKey(x.InternalAddr) },
  { key: 'profile', label: 'Profile', value: (/** @type {any} */ x) => x.Profile ?? '' },
  { key: 'state', label: 'State', value: (/** @type {any} */ x) => x.State ?? '', sort: (/** @type {any} */ x) => String(STATES.indexOf(x.State)) },
  { key: 'macs', label: 'MACs', value: (/** @type {any} */ x) => (x.MacAddresses ?? []).join(' ') },
  { key: 'lastboot', label: 'Last boot', value: (/** @type {any} */ x) => formatTime(x.LastBoot), sort: (/** @type {any} */ x) => x.LastBoot ?? '' },
];

/**
 * @typedef {{ q: string, state: string, profile: string, stuckOnly: boolean, page: number, sortKey: string, sortDir: number }} View
 */

/**
 * The hosts the view shows, in order (pure). `q` matches anywhere in the serial, ignoring case.
 * @param {any[]} list @param {View} view @param {Map<string, any>} stuck
 */
export function selectHosts(list, view, stuck) {
  const q = view.q.trim().toLowerCase();
  const rows = list.filter((x) => (!q || (x.Serial ?? '').toLowerCase().includes(q))
    && (!view.state || x.State === view.state)
    && (!view.profile || (x.Profile ?? '') === view.profile)
    && (!view.stuckOnly || stuck.has(x.Serial)));
  const col = COLUMNS.find((c) => c.key === view.sortKey) ?? COLUMNS[0];
  const key = col.sort ?? col.value;
  // Keys computed once per host, not once per comparison: 10 000 hosts sort in a few ms.
  const keyed = rows.map((x) => ({ x, k: key(x), s: x.Serial ?? '' }));
  keyed.sort((a, b) => (a.k !== b.k ? (a.k < b.k ? -1 : 1) * view.sortDir : a.s < b.s ? -1 : a.s > b.s ? 1 : 0));
  return keyed.map((r) => r.x);
}

/**
 * @typedef {{ list: any[], failures: Map<string, any>, stuck: Map<string, any>, changed: Set<string> }} TableData
 */

/** The table with its controls; update() redraws it with new data, keeping the view. */
export function createHostTable() {
  /** @type {View} */
  const view = { q: '', state: '', profile: '', stuckOnly: false, page: 0, sortKey: 'serial', sortDir: 1 };
  /** @type {TableData} */
  let data = { list: [], failures: new Map(), stuck: new Map(), changed: new Set() };

  const search = /** @type {HTMLInputElement} */ (h('input', { type: 'search', id: 'host-search', placeholder: 'serial contains…', 'aria-label': 'search by serial', autocomplete: 'off' }));
  const stateSel = /** @type {HTMLSelectElement} */ (h('select', { id: 'filter-state', 'aria-label': 'filter by state' },
    h('option', { value: '' }, 'any state'), ...STATES.map((s) => h('option', { value: s }, s))));
  const profileSel = /** @type {HTMLSelectElement} */ (h('select', { id: 'filter-profile', 'aria-label': 'filter by profile' }, h('option', { value: '' }, 'any profile')));
  const stuckBox = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id: 'filter-stuck' }));
  const stuckLabel = h('label', { for: 'filter-stuck' }, 'stuck only');
  const summary = h('span', { id: 'table-summary', class: 'muted', role: 'status' });
  const tableBox = h('div', { class: 'table-box' });
  const pageLabel = h('span', { id: 'page-label' });
  const pageButton = (/** @type {string} */ id, /** @type {string} */ label, /** @type {() => number} */ to) => {
    const b = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', id, 'aria-label': id.replace('page-', '') + ' page' }, label));
    b.addEventListener('click', () => {
      view.page = to();
      draw();
    });
    return b;
  };
  const pages = () => Math.max(1, Math.ceil(shown / PAGE_SIZE));
  const first = pageButton('page-first', '«', () => 0);
  const prev = pageButton('page-prev', '‹ prev', () => view.page - 1);
  const next = pageButton('page-next', 'next ›', () => view.page + 1);
  const last = pageButton('page-last', '»', () => pages() - 1);
  const pager = h('nav', { class: 'pager', 'aria-label': 'pages' }, first, prev, pageLabel, next, last);
  const element = h('div', { class: 'host-table' },
    h('div', { class: 'filters' }, search, stateSel, profileSel, h('span', {}, stuckBox, ' ', stuckLabel), summary),
    tableBox, pager);
  /** Hosts matching the filters (all pages). */
  let shown = 0;

  const refilter = () => {
    view.page = 0;
    draw();
  };
  search.addEventListener('input', () => ((view.q = search.value), refilter()));
  stateSel.addEventListener('change', () => ((view.state = stateSel.value), refilter()));
  profileSel.addEventListener('change', () => ((view.profile = profileSel.value), refilter()));
  stuckBox.addEventListener('change', () => ((view.stuckOnly = stuckBox.checked), refilter()));

  /** Profiles present among the hosts; the one selected stays listed even when none holds it now. */
  function syncProfiles() {
    const names = [...new Set(data.list.map((x) => x.Profile ?? ''))].filter(Boolean).sort();
    if (view.profile && !names.includes(view.profile)) names.push(view.profile);
    const have = [...profileSel.options].slice(1).map((o) => o.value);
    if (have.join('\n') === names.join('\n')) return;
    profileSel.replaceChildren(h('option', { value: '' }, 'any profile'), ...names.map((p) => h('option', { value: p }, p)));
    profileSel.value = view.profile;
  }

  function draw() {
    const t0 = performance.now();
    const rows = selectHosts(data.list, view, data.stuck);
    shown = rows.length;
    view.page = Math.min(Math.max(0, view.page), pages() - 1);
    const start = view.page * PAGE_SIZE;
    const slice = rows.slice(start, start + PAGE_SIZE);
    tableBox.replaceChildren(table(slice));
    const filtered = shown !== data.list.length;
    summary.textContent = shown === 0 ? (filtered ? `no machine matches (of ${data.list.length})` : '')
      : `${start + 1}–${start + slice.length} of ${shown}${filtered ? ` (filtered from ${data.list.length})` : ''}`;
    pageLabel.textContent = `page ${view.page + 1} of ${pages()}`;
    first.disabled = prev.disabled = view.page === 0;
    next.disabled = last.disabled = view.page >= pages() - 1;
    pager.hidden = pages() === 1;
    stuckLabel.textContent = `stuck only (${data.stuck.size})`;
    // Read by the browser test (render time for 10 000 hosts).
    element.dataset.drawMs = (performance.now() - t0).toFixed(1);
  }

  /** @param {any[]} rows */
  function table(rows) {
    const head = h('tr', {}, ...COLUMNS.map((c) => {
      const sorted = c.key === view.sortKey;
      const button = h('button', { type: 'button', 'data-sort': c.key }, c.label, sorted ? (view.sortDir > 0 ? ' ▲' : ' ▼') : '');
      button.addEventListener('click', () => {
        if (view.sortKey === c.key) view.sortDir = -view.sortDir;
        else (view.sortKey = c.key), (view.sortDir = 1);
        draw();
      });
      return h('th', { scope: 'col', 'aria-sort': sorted ? (view.sortDir > 0 ? 'ascending' : 'descending') : undefined }, button);
    }));
    const body = rows.map((x) => h('tr', { 'data-serial': x.Serial, class: data.changed.has(x.Serial) ? 'changed' : undefined },
      h('td', { 'data-field': 'serial' }, h('a', { href: `#/host/${encodeURIComponent(x.Serial)}` }, x.Serial)),
      h('td', { 'data-field': 'ip' }, COLUMNS[1].value(x)),
      h('td', { 'data-field': 'profile' }, COLUMNS[2].value(x)),
      h('td', {}, h('span', { class: `state state-${x.State}`, 'data-field': 'state' }, x.State), failureBadge(data.failures.get(x.Serial)), stuckBadge(data.stuck.get(x.Serial))),
      h('td', { 'data-field': 'macs', class: 'mono' }, COLUMNS[4].value(x)),
      h('td', { 'data-field': 'lastboot' }, COLUMNS[5].value(x))));
    if (!rows.length) {
      const text = data.list.length ? 'No machine matches the search and filters.' : 'No machines yet: they appear here when they first netboot.';
      body.push(h('tr', {}, h('td', { colspan: COLUMNS.length, class: 'muted' }, text)));
    }
    return h('table', { class: 'machines' }, h('thead', {}, head), h('tbody', {}, ...body));
  }

  return {
    element,
    /** @param {TableData} next */
    update(next) {
      data = next;
      syncProfiles();
      draw();
    },
  };
}
