// The mayu dashboard: machine table, counts per state and profile, a host page with its git
// audit trail. Data from the admin API; live from /admin/events.
import { AuthRequired, followEvents, getJson, NotFound, setToken, token } from './api.js';
import { confLines, jsonLineKey, lineDiff, withContext } from './diff.js';
import { barChart, h } from './dom.js';
import { createHostTable, failureBadge, formatTime, STATES, stuckBadge } from './host-table.js';
import { createActions } from './actions.js';
import { mountPending } from './pending.js';

/** @type {Map<string, any>} serial -> Host as GET /admin/hosts answers it */
const hosts = new Map();
/** @type {Map<string, any>} serial -> its install failure that still stands (GET /admin/install-failures) */
const failures = new Map();
/** @type {Map<string, any>} serial -> its stuck install (GET /admin/stuck, events with `stuck`) */
const stuck = new Map();
/** Search, filters, sorting and paging of the machines (kept across redraws and pages). */
const hostTable = createHostTable();
/** Reinstall, change profile, set metadata, delete on the host page. */
const actions = createActions({
  onDone: (serial, deleted) => {
    if (deleted) location.hash = '#/';
    else if (currentRoute().serial === serial) renderHostPage(serial);
  },
  onAuthRequired: (err) => failed(err),
});
/** @type {AbortController | undefined} */
let session;
/** Serials whose row changed lately (highlighted once). */
const changed = new Set();

const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const live = /** @type {HTMLElement} */ (document.getElementById('live'));
const forget = /** @type {HTMLButtonElement} */ (document.getElementById('forget'));

forget.addEventListener('click', () => {
  setToken('');
  start();
});
window.addEventListener('hashchange', () => render());

/** @param {'on' | 'off' | 'retry'} mode @param {string} text */
function setLive(mode, text) {
  live.dataset.live = mode;
  live.textContent = text;
}

/** Loads the hosts, then follows the event stream; a 401 anywhere shows the token prompt. */
async function start() {
  session?.abort();
  session = new AbortController();
  const { signal } = session;
  forget.hidden = !token();
  hosts.clear();
  main.replaceChildren(h('p', { class: 'muted' }, 'loading…'));
  try {
    await reloadHosts(signal);
  } catch (err) {
    return failed(err);
  }
  render();
  followEvents({
    signal,
    // Subscribed: reload, so changes made while (re)connecting are not missed.
    onOpen: () => {
      setLive('on', 'live');
      reloadHosts(signal).then(() => signal.aborted || renderOverviewParts(), failed);
    },
    onEvent: (e) => onHostEvent(e, signal),
    onError: (err) => {
      if (err instanceof AuthRequired) return failed(err);
      setLive('retry', 'reconnecting…');
    },
  });
}

/** @param {AbortSignal} signal */
async function reloadHosts(signal) {
  const [list, failed, stuckNow] = await Promise.all([getJson('/admin/hosts', signal), getJson('/admin/install-failures', signal), getJson('/admin/stuck', signal)]);
  hosts.clear();
  for (const host of list) hosts.set(host.Serial, host);
  failures.clear();
  for (const f of failed) failures.set(f.Serial, f);
  stuck.clear();
  for (const s of stuckNow) stuck.set(s.Serial, s);
}

/** @param {unknown} err */
function failed(err) {
  if (session?.signal.aborted && !(err instanceof AuthRequired)) return;
  if (err instanceof AuthRequired) {
    session?.abort();
    setLive('off', 'offline');
    showTokenPrompt(token() ? 'That admin token was refused.' : 'This mayu has an admin token: enter it to continue.');
    return;
  }
  main.replaceChildren(h('p', { class: 'error', role: 'alert' }, String(err instanceof Error ? err.message : err)));
}

/** @param {string} message */
function showTokenPrompt(message) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true, minlength: 16, size: 40 });
  const form = h('form', { class: 'token-form', 'aria-label': 'admin token' },
    h('p', { id: 'token-message' }, message),
    h('label', { for: 'token' }, 'Admin token '), input, ' ',
    h('button', { type: 'submit' }, 'Open'),
    h('p', { class: 'muted' }, 'Kept in this tab only (sessionStorage), sent as "Authorization: Bearer".'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    setToken(/** @type {HTMLInputElement} */ (input).value.trim());
    start();
  });
  main.replaceChildren(form);
  input.focus();
}

/** Serials changed by events and not fetched yet. */
const dirty = new Set();
/** Serials whose last event was a deletion (`deleted: true`, `to: null`): dropped, not fetched. */
const gone = new Set();
let pumping = false;

/** A host changed: fetch it whole (an event carries only serial and states); a deleted one goes. */
function onHostEvent(/** @type {any} */ e, /** @type {AbortSignal} */ signal) {
  if (e.deleted === true) gone.add(e.serial);
  else gone.delete(e.serial);
  // A report opens a failure; any state change clears it (as mayu does, in that change's commit).
  if (e.installFailure) failures.set(e.serial, { Serial: e.serial, ...e.installFailure });
  else if (e.deleted === true || e.from !== e.to) failures.delete(e.serial);
  // A stuck install is flagged by its own event (nothing written); leaving the state ends it.
  if (e.stuck) stuck.set(e.serial, e.stuck);
  else if (e.deleted === true || e.from !== e.to) stuck.delete(e.serial);
  dirty.add(e.serial);
  if (!pumping) pump(signal);
}

/** Fetches one changed host into `hosts`; drops it when it was deleted (event or 404). */
async function refreshHost(/** @type {string} */ serial, /** @type {AbortSignal} */ signal) {
  if (!gone.has(serial)) {
    try {
      const host = await getJson(`/admin/host/${encodeURIComponent(serial)}`, signal);
      hosts.set(host.Serial, host);
      return;
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
    }
  }
  hosts.delete(serial);
  changed.delete(serial);
}

/**
 * Fetches changed hosts one batch at a time, so answers never land out of order and the last
 * fetch of a host follows its last event. Many at once (a boot storm): one list reload instead.
 * @param {AbortSignal} signal
 */
async function pump(signal) {
  pumping = true;
  try {
    while (dirty.size && !signal.aborted) {
      const batch = [...dirty];
      dirty.clear();
      if (batch.length > 20) {
        await reloadHosts(signal);
      } else {
        for (const serial of batch) await refreshHost(serial, signal);
      }
      for (const serial of batch) if (hosts.has(serial)) changed.add(serial);
      if (signal.aborted) break;
      const route = currentRoute();
      if (route.serial && batch.includes(route.serial)) {
        if (hosts.has(route.serial)) renderHostPage(route.serial);
        else renderDeletedHost(route.serial);
      } else if (!route.serial) renderOverviewParts();
    }
  } catch (err) {
    if (err instanceof AuthRequired) failed(err);
    else if (!signal.aborted) setLive('retry', `update failed: ${err instanceof Error ? err.message : err}`);
  } finally {
    pumping = false;
  }
}

function currentRoute() {
  const m = /^#\/host\/(.+)$/.exec(location.hash);
  return { serial: m ? decodeURIComponent(m[1]) : undefined };
}

function render() {
  if (session?.signal.aborted) return;
  const { serial } = currentRoute();
  if (serial) renderHostPage(serial);
  else renderOverview();
}

// ---- overview -------------------------------------------------------------------------------

function renderOverview() {
  document.title = 'mayu: machines';
  main.replaceChildren(
    h('section', { class: 'charts' },
      h('figure', { id: 'by-state' }),
      h('figure', { id: 'by-profile' })),
    h('section', { id: 'pending', hidden: true }),
    h('section', {},
      h('h2', {}, 'Machines ', h('span', { id: 'host-count', class: 'muted' })),
      h('div', { id: 'table' })),
  );
  // Machines waiting for admission (issue 17): src/ui/pending.js.
  if (session) mountPending(/** @type {HTMLElement} */ (document.getElementById('pending')), session.signal, failed);
  renderOverviewParts();
}

/** Redraws counts and table in place (the overview's frame stays: no flicker, focus kept). */
function renderOverviewParts() {
  if (currentRoute().serial) return;
  const table = document.getElementById('table');
  if (!table) return renderOverview();
  const list = [...hosts.values()];
  /** @type {Map<string, number>} */
  const byState = new Map(STATES.map((s) => [s, 0]));
  /** @type {Map<string, number>} */
  const byProfile = new Map();
  for (const host of list) {
    byState.set(host.State, (byState.get(host.State) ?? 0) + 1);
    const p = host.Profile || '(none)';
    byProfile.set(p, (byProfile.get(p) ?? 0) + 1);
  }
  const profiles = [...byProfile].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  document.getElementById('by-state')?.replaceChildren(
    h('figcaption', {}, 'Hosts per state'), barChart('hosts per state', [...byState], 'state'), countList([...byState], 'state'));
  document.getElementById('by-profile')?.replaceChildren(
    h('figcaption', {}, 'Hosts per profile'),
    profiles.length ? barChart('hosts per profile', profiles, 'profile') : h('p', { class: 'muted' }, 'no hosts yet'),
    countList(profiles, 'profile'));
  const count = document.getElementById('host-count');
  if (count) count.textContent = `(${list.length})`;
  if (hostTable.element.parentElement !== table) table.replaceChildren(hostTable.element);
  hostTable.update({ list, failures, stuck, changed });
  changed.clear();
}

/** The counts as text too (screen readers, copy and paste, tests). */
function countList(/** @type {[string, number][]} */ rows, /** @type {string} */ kind) {
  return h('dl', { class: 'counts visually-hidden' }, ...rows.flatMap(([label, n]) => [
    h('dt', {}, label), h('dd', { [`data-${kind}-count`]: label }, String(n)),
  ]));
}

// ---- host page ------------------------------------------------------------------------------

let hostPageLoad = 0;

/** @param {string} serial */
async function renderHostPage(serial) {
  document.title = `mayu: ${serial}`;
  const load = ++hostPageLoad;
  const signal = session?.signal;
  if (!main.querySelector(`[data-host-page="${CSS.escape(serial)}"]`)) {
    main.replaceChildren(h('p', {}, h('a', { href: '#/' }, '← all machines')), h('h2', {}, serial), h('p', { class: 'muted' }, 'loading…'));
  }
  let host;
  let history;
  let failureLog;
  try {
    [host, history, failureLog] = await Promise.all([
      getJson(`/admin/host/${encodeURIComponent(serial)}`, signal),
      getJson(`/admin/host/${encodeURIComponent(serial)}/history?with=conf`, signal),
      getJson(`/admin/host/${encodeURIComponent(serial)}/install-failures`, signal),
    ]);
  } catch (err) {
    if (load === hostPageLoad) failed(err);
    return;
  }
  if (load !== hostPageLoad || currentRoute().serial !== serial) return;
  hosts.set(host.Serial, host);
  const fields = [
    ['State', h('span', { class: `state state-${host.State}`, 'data-field': 'state' }, host.State)],
    ['IP', host.InternalAddr ?? ''], ['Profile', host.Profile ?? ''], ['MACs', (host.MacAddresses ?? []).join(' ')],
    ['Connected NIC', host.ConnectedNIC ?? ''], ['IPMI', host.IPMIAddr ?? ''], ['Hostname', host.Hostname ?? ''],
    ['Provider id', host.ProviderId ?? ''], ['Cabinet', String(host.Cabinet ?? 0)], ['Metadata', (host.FleetMetadata ?? []).join(', ')],
    ['CoreOS version', host.CoreOSVersion ?? ''], ['Last boot', formatTime(host.LastBoot)],
  ];
  const current = failureLog.Current;
  if (current) failures.set(serial, { Serial: serial, ...current });
  else failures.delete(serial);
  if (current) {
    fields.splice(1, 0, ['Install failure', h('div', { 'data-field': 'install-failure' },
      failureBadge(current), ' ', h('time', { datetime: current.Time }, formatTime(current.Time)), ` (state ${current.State}): `, current.Reason,
      current.Details ? h('pre', { class: 'failure-details' }, current.Details) : '')]);
  } else if (failureLog.Failures.length) {
    const last = failureLog.Failures[0];
    fields.push(['Last install failure', h('span', { 'data-field': 'install-failure', class: 'muted' },
      `${formatTime(last.Time)} ${last.Stage}: ${last.Reason} (cleared by: ${failureLog.ClearedBy ?? 'a state change'})`)]);
  }
  const stuckNow = stuck.get(serial);
  if (stuckNow) fields.splice(1, 0, ['Stuck', h('span', { 'data-field': 'stuck' }, stuckBadge(stuckNow), ` in ${stuckNow.State} since ${formatTime(stuckNow.Since)}`)]);
  const profiles = [...new Set([...hosts.values()].map((x) => x.Profile).filter(Boolean))].sort();
  main.replaceChildren(
    h('p', {}, h('a', { href: '#/' }, '← all machines')),
    h('article', { 'data-host-page': serial },
      h('h2', {}, serial),
      actions.panel(host, profiles),
      h('dl', { class: 'host-fields' }, ...fields.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      h('h3', {}, `Audit trail (${history.length} commits, newest first)`),
      h('ol', { class: 'history' }, ...history.map((c, i) => commitItem(c, history[i + 1])))));
}

/** The open host page's host was deleted while the page was open. @param {string} serial */
function renderDeletedHost(serial) {
  hostPageLoad++; // a host page load still under way must not draw over this
  main.replaceChildren(
    h('p', {}, h('a', { href: '#/' }, '← all machines')),
    h('h2', {}, serial),
    h('p', { class: 'muted', 'data-deleted': serial }, 'This host was deleted. Its audit trail stays in git: mayuctl history ' + serial + '.'));
}

/** @param {any} c a commit with conf @param {any} older the commit before it, if any */
function commitItem(c, older) {
  const diff = withContext(lineDiff(confLines(older ? older.conf : null), confLines(c.conf), jsonLineKey), 2);
  const pre = h('pre', { class: 'diff' }, ...diff.map((d) => h('span', { class: `d d-${{ ' ': 'same', '+': 'add', '-': 'del', '…': 'skip' }[d.op]}` }, `${d.op} ${d.line}`)));
  return h('li', { 'data-commit': c.commit },
    h('div', { class: 'commit-head' },
      h('time', { datetime: c.time }, formatTime(c.time)), ' ',
      h('span', { class: 'message' }, c.message), ' ',
      c.uncommitted
        ? h('span', { class: 'muted uncommitted', title: `${c.commit}: in etcd, the history writer has not committed it to git yet` }, 'not yet in git')
        : h('code', { class: 'muted', title: c.commit }, c.commit.slice(0, 10))),
    c.conf === null ? h('p', { class: 'muted' }, 'no conf.json in this commit') : h('details', { open: true }, h('summary', {}, 'conf.json diff'), pre));
}

start();
