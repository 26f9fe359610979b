// Operator actions on the host page: reinstall, change profile, set metadata, delete. Each asks
// for a confirmation naming what will happen and the mayuctl command that does the same, then
// calls the admin route that command calls, with the field it sends, so the commits are the
// CLI's. Errors (a full profile's 409, a bad value's 400) stay in the dialog, in mayu's words.
import { AuthRequired, token } from './api.js';
import { h } from './dom.js';

/** mayu said no: the status and its text. */
export class ActionError extends Error {
  /** @param {number} status @param {string} text */
  constructor(status, text) {
    super(`${status}: ${text || 'no reason given'}`);
    this.status = status;
    this.text = text;
  }
}

/** @param {'PUT' | 'DELETE'} method @param {string} path @param {unknown} [body] */
async function send(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = {};
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  if (res.status === 401) throw new AuthRequired(await res.text());
  if (!res.ok) throw new ActionError(res.status, (await res.text()).trim());
}

const hostPath = (/** @type {string} */ serial) => `/admin/host/${encodeURIComponent(serial)}`;
/** A value as a shell word in the mayuctl line shown (for reading, not for pasting secrets). */
const word = (/** @type {string} */ v) => (/^[A-Za-z0-9._:,=@+-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);

/**
 * A modal confirmation. `run` does the work; on an error the dialog stays open with the message,
 * and `retry(err)` may offer a second button (the profile's force). Resolves true when done.
 * @param {{ id: string, title: string, text: (string | Node)[], command: string, confirm: string, danger?: boolean,
 *   typeToConfirm?: string, run: () => Promise<void>, retry?: (err: unknown) => { label: string, command: string, run: () => Promise<void> } | undefined }} o
 * @returns {Promise<boolean>}
 */
function confirmDialog(o) {
  return new Promise((resolve, reject) => {
    const error = h('p', { class: 'error', role: 'alert', 'data-action-error': '' });
    error.hidden = true;
    const typed = o.typeToConfirm === undefined ? undefined
      : /** @type {HTMLInputElement} */ (h('input', { type: 'text', id: 'confirm-typed', autocomplete: 'off', 'aria-label': `type ${o.typeToConfirm} to confirm` }));
    const ok = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: o.danger ? 'danger' : 'primary', 'data-confirm': '' }, o.confirm));
    const cancel = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', 'data-cancel': '' }, 'Cancel'));
    const retryBox = h('span', {});
    const dialog = /** @type {HTMLDialogElement} */ (h('dialog', { class: 'confirm', 'data-dialog': o.id, 'aria-labelledby': `${o.id}-title` },
      h('h3', { id: `${o.id}-title` }, o.title),
      h('p', {}, ...o.text),
      h('p', { class: 'muted' }, 'Same as: ', h('code', { 'data-command': '' }, o.command)),
      typed ? h('p', {}, h('label', { for: 'confirm-typed' }, `Type ${o.typeToConfirm} to confirm: `), typed) : '',
      error,
      h('p', { class: 'dialog-buttons' }, cancel, ' ', ok, ' ', retryBox)));
    if (typed) {
      ok.disabled = true;
      typed.addEventListener('input', () => (ok.disabled = typed.value !== o.typeToConfirm));
    }
    let done = false;
    /** @type {unknown} */
    let authError;
    const close = (/** @type {boolean} */ result) => {
      done = result;
      dialog.close();
    };
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (authError) reject(authError);
      else resolve(done);
    });
    cancel.addEventListener('click', () => close(false));
    const attempt = async (/** @type {() => Promise<void>} */ run, /** @type {HTMLButtonElement} */ button) => {
      const buttons = [...dialog.querySelectorAll('button')];
      buttons.forEach((b) => (b.disabled = true));
      button.textContent += '…';
      try {
        await run();
        close(true);
      } catch (err) {
        if (err instanceof AuthRequired) return ((authError = err), close(false));
        error.textContent = err instanceof ActionError ? `mayu refused it (${err.message})` : `failed: ${err instanceof Error ? err.message : err}`;
        error.hidden = false;
        buttons.forEach((b) => (b.disabled = false));
        button.textContent = button.textContent.replace(/…$/, '');
        if (typed) ok.disabled = typed.value !== o.typeToConfirm;
        const second = o.retry?.(err);
        retryBox.replaceChildren();
        if (second) {
          const b = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'danger', 'data-retry': '' }, second.label));
          b.title = `Same as: ${second.command}`;
          b.addEventListener('click', () => attempt(second.run, b));
          retryBox.append(b);
        }
      }
    };
    ok.addEventListener('click', () => attempt(o.run, ok));
    document.body.append(dialog);
    dialog.showModal();
    (typed ?? ok).focus();
  });
}

/**
 * The actions of the host page. `onDone(serial, deleted)` runs after a change mayu took (the page
 * redraws; a change that changed nothing makes no event). The last result per host is kept here,
 * so it survives the host page's redraws.
 * @param {{ onDone: (serial: string, deleted: boolean) => void, onAuthRequired: (err: unknown) => void }} deps
 */
export function createActions(deps) {
  /** @type {Map<string, string>} */
  const results = new Map();

  /** @param {string} serial @param {string} text @param {boolean} [deleted] */
  const finished = (serial, text, deleted = false) => {
    results.set(serial, text);
    deps.onDone(serial, deleted);
  };
  /** @param {Promise<boolean>} p */
  const guard = (p) => p.catch(deps.onAuthRequired);

  /**
   * @param {any} host as GET /admin/host/<serial> answers it
   * @param {string[]} profiles names to suggest (those the hosts carry)
   */
  function panel(host, profiles) {
    const serial = host.Serial;
    const reinstall = h('button', { type: 'button', 'data-action': 'reinstall' }, 'Reinstall…');
    reinstall.addEventListener('click', () => guard(confirmDialog({
      id: 'reinstall', title: `Reinstall ${serial}?`,
      text: [`Sets its state to configured (keeping its data disks): it gets the installer at its next netboot${host.State === 'configured' ? '. It is configured already: nothing changes' : ''}.`],
      command: `mayuctl set ${word(serial)} state configured`, confirm: 'Reinstall',
      run: () => send('PUT', `${hostPath(serial)}/set_state`, { State: 'configured' }),
    }).then((ok) => ok && finished(serial, `reinstall requested (state configured)`))));

    const profileInput = /** @type {HTMLInputElement} */ (h('input', { type: 'text', id: 'action-profile', list: 'profile-names', value: host.Profile ?? '', size: 14, 'aria-label': 'profile name' }));
    const force = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id: 'action-force' }));
    const profileButton = h('button', { type: 'button', 'data-action': 'profile' }, 'Change profile…');
    profileButton.addEventListener('click', () => {
      const name = profileInput.value.trim();
      const forced = force.checked;
      const cmd = (/** @type {boolean} */ f) => `mayuctl set ${word(serial)} profile ${word(name)}${f ? ' --force' : ''}`;
      const run = (/** @type {boolean} */ f) => () => send('PUT', `${hostPath(serial)}/set_profile`, { Profile: name, Force: f });
      guard(confirmDialog({
        id: 'profile', title: `Move ${serial} to profile ${name || '(none)'}?`,
        text: [`Applies the profile's tags, engine setting, CoreOS version and etcd token, as a new host of ${name || 'it'} would get. It takes effect at the host's next install.`,
          forced ? ' The profile\'s quantity is not checked (force).' : ' Refused if the profile already holds its quantity of hosts.'],
        command: cmd(forced), confirm: 'Change profile',
        run: run(forced),
        // A full profile: show mayu's 409 and offer what --force does.
        retry: (err) => (err instanceof ActionError && err.status === 409 && !forced
          ? { label: 'Move anyway (force)', command: cmd(true), run: run(true) } : undefined),
      }).then((ok) => ok && finished(serial, `profile set to ${name}`)));
    });

    const metadataInput = /** @type {HTMLInputElement} */ (h('input', { type: 'text', id: 'action-metadata', value: (host.FleetMetadata ?? []).join(','), size: 40, 'aria-label': 'metadata, comma-separated key=value' }));
    const metadataButton = h('button', { type: 'button', 'data-action': 'metadata' }, 'Set metadata…');
    metadataButton.addEventListener('click', () => {
      const value = metadataInput.value;
      // mayuctl splits its value on commas, "" included (which mayu refuses: key=value needed).
      const list = value.split(',');
      guard(confirmDialog({
        id: 'metadata', title: `Set the metadata of ${serial}?`,
        text: ['Replaces its fleet metadata with: ', h('code', {}, JSON.stringify(list))],
        command: `mayuctl set ${word(serial)} metadata ${word(value)}`, confirm: 'Set metadata',
        run: () => send('PUT', `${hostPath(serial)}/set_metadata`, { FleetMetadata: list }),
      }).then((ok) => ok && finished(serial, 'metadata set')));
    });

    const del = h('button', { type: 'button', class: 'danger', 'data-action': 'delete' }, 'Delete…');
    del.addEventListener('click', () => guard(confirmDialog({
      id: 'delete', title: `Delete ${serial}?`, danger: true, typeToConfirm: serial,
      text: ['Removes the host from mayu in one commit: its address and profile slot are free at once. Its history stays in git. A machine that netboots again later registers as a new host.'],
      command: `mayuctl delete ${word(serial)}`, confirm: 'Delete',
      run: () => send('DELETE', hostPath(serial)),
    }).then((ok) => ok && finished(serial, 'deleted', true))));

    const last = results.get(serial);
    return h('section', { class: 'actions', 'aria-label': 'actions' },
      h('datalist', { id: 'profile-names' }, ...profiles.map((p) => h('option', { value: p }))),
      h('div', { class: 'action-row' }, reinstall, ' ', del),
      h('div', { class: 'action-row' }, h('label', { for: 'action-profile' }, 'Profile '), profileInput, ' ', force, h('label', { for: 'action-force' }, ' force'), ' ', profileButton),
      h('div', { class: 'action-row' }, h('label', { for: 'action-metadata' }, 'Metadata '), metadataInput, ' ', metadataButton),
      last ? h('p', { class: 'action-result', role: 'status', 'data-action-result': '' }, `Done: ${last}.`) : '');
  }

  return { panel };
}
