// The admin API as the page uses it: fetch with the admin token (sessionStorage) as a bearer
// header, and /admin/events read as a fetch stream (EventSource cannot send headers).

const TOKEN_KEY = 'mayu.adminToken';

export class AuthRequired extends Error {}

/** A 404: e.g. a host deleted between its event and the fetch. */
export class NotFound extends Error {}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

/** @param {string} value */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function authHeaders() {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

/**
 * @param {string} path
 * @param {AbortSignal} [signal]
 */
export async function getJson(path, signal) {
  const res = await fetch(path, { headers: authHeaders(), signal, cache: 'no-store' });
  if (res.status === 401) throw new AuthRequired(await res.text());
  if (res.status === 404) throw new NotFound(`${path}: 404 ${(await res.text()).trim()}`);
  if (!res.ok) throw new Error(`${path}: ${res.status} ${(await res.text()).trim()}`);
  return res.json();
}

/** @param {number} ms @param {AbortSignal} signal */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve(undefined)), { once: true });
  });
}

/**
 * Follows /admin/events until `signal` aborts, reconnecting with backoff. `onOpen` runs each
 * time the server confirms the subscription (": subscribed"), before any event of that
 * connection: the caller reloads the list then, so nothing between two connections is missed.
 * A 401 ends it with `onError(AuthRequired)`.
 * @param {{ onOpen: () => void, onEvent: (e: any) => void, onError: (e: unknown) => void, signal: AbortSignal }} o
 */
export async function followEvents({ onOpen, onEvent, onError, signal }) {
  let delay = 500;
  while (!signal.aborted) {
    try {
      const res = await fetch('/admin/events', { headers: { ...authHeaders(), accept: 'text/event-stream' }, signal, cache: 'no-store' });
      if (res.status === 401) throw new AuthRequired(await res.text());
      if (!res.ok || !res.body) throw new Error(`/admin/events: ${res.status} ${(await res.text()).trim()}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split('\n');
          if (lines.includes(': subscribed')) {
            delay = 500;
            onOpen();
          }
          const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
          if (data) onEvent(JSON.parse(data));
        }
      }
      onError(new Error('event stream ended'));
    } catch (err) {
      if (signal.aborted) return;
      onError(err);
      if (err instanceof AuthRequired) return;
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 10_000);
  }
}
