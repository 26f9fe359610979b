// Machines waiting for admission (issue 17): GET /admin/pending, with approve and reject, each
// asking for a confirmation first. Mounted by app.js on the overview; refreshes itself every few
// seconds while it is on the page (waiting machines make no host events).
import { AuthRequired, getJson, token } from './api.js';
import { h } from './dom.js';

const REFRESH_MS = 3000;

/**
 * PUT an admin route with the admin token; the server's message on failure.
 * @param {string} path
 */
async function put(path) {
  const t = token();
  const res = await fetch(path, { method: 'PUT', headers: t ? { authorization: `Bearer ${t}` } : {}, cache: 'no-store' });
  if (res.status === 401) throw new AuthRequired(await res.text());
  if (!res.ok) throw new Error(`${res.status}: ${(await res.text()).trim()}`);
}

/**
 * Renders the pending list into `section` and keeps it fresh while `signal` is live and the
 * section is on the page. `onAuth` is told about a refused token.
 * @param {HTMLElement} section
 * @param {AbortSignal} signal
 * @param {(err: unknown) => void} onAuth
 */
export function mountPending(section, signal, onAuth) {
  /** Serial whose confirmation is open, and what it confirms. */
  let confirming = /** @type {{ serial: string, action: 'approve' | 'reject' } | undefined} */ (undefined);
  let message = /** @type {HTMLElement | null} */ (null);
  let timer = /** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined);

  const refresh = async () => {
    clearTimeout(timer);
    if (signal.aborted || !section.isConnected) return;
    try {
      draw(await getJson('/admin/pending', signal));
    } catch (err) {
      if (err instanceof AuthRequired) return onAuth(err);
      if (!signal.aborted) section.replaceChildren(h('p', { class: 'error', role: 'alert' }, `pending machines: ${err instanceof Error ? err.message : err}`));
    }
    if (!signal.aborted && section.isConnected) timer = setTimeout(refresh, REFRESH_MS);
  };

  /** @param {'approve' | 'reject'} action @param {string} serial */
  const act = async (action, serial) => {
    confirming = undefined;
    try {
      await put(`/admin/host/${encodeURIComponent(serial)}/${action}`);
      message = h('p', { class: 'muted', role: 'status' }, `${serial}: ${action === 'approve' ? 'approved' : 'rejected'}`);
    } catch (err) {
      if (err instanceof AuthRequired) return onAuth(err);
      message = h('p', { class: 'error', role: 'alert' }, `${action} ${serial}: ${err instanceof Error ? err.message : err}`);
    }
    await refresh();
  };

  /** @param {{ Mode: string, Machines: any[] }} answer */
  const draw = (answer) => {
    // Open mode with nobody recorded: nothing to show, nothing to decide.
    if (answer.Machines.length === 0 && answer.Mode === 'open') {
      section.hidden = true;
      section.replaceChildren();
      return;
    }
    section.hidden = false;
    const rows = answer.Machines.map((m) => {
      const open = confirming?.serial === m.Serial ? confirming.action : undefined;
      const actions = open
        ? h('td', { class: 'confirm' },
            `${open === 'approve' ? 'Approve' : 'Reject'} ${m.Serial}? `,
            h('button', { type: 'button', 'data-confirm': open, onclick: () => act(open, m.Serial) }, `Yes, ${open}`), ' ',
            h('button', { type: 'button', 'data-cancel': '', onclick: () => ((confirming = undefined), draw(answer)) }, 'Cancel'))
        : h('td', {},
            h('button', { type: 'button', 'data-action': 'approve', onclick: () => ((confirming = { serial: m.Serial, action: 'approve' }), draw(answer)) }, 'Approve'), ' ',
            m.Status === 'rejected' ? null
              : h('button', { type: 'button', 'data-action': 'reject', onclick: () => ((confirming = { serial: m.Serial, action: 'reject' }), draw(answer)) }, 'Reject'));
      return h('tr', { 'data-pending': m.Serial },
        h('td', {}, m.Serial), h('td', { 'data-field': 'status' }, m.Status), h('td', {}, m.FirstSeen),
        h('td', {}, m.LastSeen ?? '–'), h('td', {}, (m.MacAddresses ?? []).join(', ') || '–'), actions);
    });
    section.replaceChildren(
      h('h2', {}, 'Waiting for admission ', h('span', { class: 'muted' }, `(${answer.Machines.length}, mode ${answer.Mode})`)),
      message,
      rows.length === 0 ? h('p', { class: 'muted' }, 'No machine is waiting.')
        : h('table', {}, h('thead', {}, h('tr', {}, ...['serial', 'status', 'first seen', 'last seen', 'MACs', ''].map((c) => h('th', {}, c)))), h('tbody', {}, ...rows)),
    );
  };

  signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  void refresh();
}
