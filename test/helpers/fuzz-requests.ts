// Hostile request generators for the fuzz test: every request is one that must not change any
// host (wrong or missing credentials, bad input, illegal transitions, wrong methods, path
// tricks), each with the statuses it may legitimately get.
import fc from 'fast-check';
import { isIpv4 } from '../../src/core/addresses.ts';
import { normalizeSerial } from '../../src/core/serial.ts';

export interface FuzzRequest {
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Statuses this request may get; anything else (and every 5xx) is a failure. */
  expect: readonly number[];
}

export interface FuzzWorld {
  adminToken: string;
  /** Seeded hosts by state; fuzzing must not move them. */
  running: readonly string[];
  installed: readonly string[];
  reportTokens: Readonly<Record<string, string>>;
}

const JSON_LIMIT = 64 * 1024;
const ADMIN_PUTS = ['set_metadata', 'set_provider_id', 'set_ipmi_addr', 'set_cabinet', 'set_state', 'set_etcd_cluster_token', 'override', 'mark_fresh'];
const REPORTS = ['set_installed', 'boot_complete', 'install_failed'];
const STAGES = ['driver', 'network', 'disk', 'image', 'config', 'report', 'other'];
const WRONG_METHODS = ['DELETE', 'PATCH', 'POST', 'GET', 'PUT'];

/** Strings made mostly of characters that end quotes, lines, paths and expansions. */
export const hostileText = fc.oneof(
  fc.constantFrom('', "'", '"', '..', '../..', '/', '\\', '\n', '\r\n', '\0', '${x}', '$(reboot)', '`id`', '}}', '{{x}}', '"},{"a":1}', '\u2028', '%00', '%2e%2e%2f', 'é', '🙂'),
  fc.string({ unit: fc.constantFrom("'", '"', '\\', '\n', '\r', '\0', '$', '`', '{', '}', '#', ':', ',', '=', ' ', '/', '.', '%', 'a', 'Z', '0', '\u2028', '\x7f'), maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
);

const printable = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 80 });

function decodedParam(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function validSerial(raw: string): boolean {
  try {
    normalizeSerial(raw);
    return true;
  } catch {
    return false;
  }
}

/** encodeURIComponent, which refuses lone surrogates: those go as broken percent-encoding. */
function encodeSegment(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return '%ED%A0%80';
  }
}

/** A non-empty path segment for a serial: hostile, encoded or raw path tricks. */
const serialSegment = fc.oneof(
  fc.constantFrom('..', '.', '%2e%2e', '..%2F..%2Fetc', 'a%2Fb', 'a%00b', '%0a', '%zz', '.git', 'HEAD', 'x'.repeat(300), '%20', 'a%20b', '-'),
  hostileText.map(encodeSegment),
).filter((s) => s !== '' && !/^(\.|%2e)+$/i.test(s)); // "." and ".." segments are resolved by the router (see pathTricks)

/** The server's metadata rule (core/host-changes.ts), to generate entries it must refuse. */
const metadataOk = (m: string) => /^[^=\s]+=.*$/.test(m) && m.length <= 256 && !/[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(m);

/** JSON text that parses to an object: the routes would take it (and maybe change a host). */
function isJsonObject(text: string): boolean {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** Bodies that are not JSON, or JSON of the wrong shape. */
const badJson = fc.oneof(
  fc.constantFrom('', '{', '}', '[', 'null', 'true', '1', '"x"', '[]', '{"a":', '{"State":}', '{,}', '\u0000', '{"FleetMetadata":["a=b"],}', 'NaN', '{"__proto__":{"x":1}}'),
  hostileText,
);

const hugeBody = fc.integer({ min: JSON_LIMIT + 1, max: 3 * JSON_LIMIT }).map((n) => `{"ProviderId":"${'x'.repeat(n)}"}`);

export function fuzzRequests(w: FuzzWorld): fc.Arbitrary<FuzzRequest> {
  const seeded = [...w.running, ...w.installed];
  const anySeeded = fc.constantFrom(...seeded);
  const unknownSerial = fc.constantFrom('nobody', 'ghost-1', 'fz-never-seen');
  const admin = { authorization: `Bearer ${w.adminToken}` };
  const json = { 'content-type': 'application/json' };

  /** Authorization headers that are not the admin token. */
  const wrongAuth: fc.Arbitrary<Record<string, string>> = fc.oneof(
    fc.constant({}),
    fc.constantFrom('Bearer', 'Bearer ', 'Basic YWRtaW46YWRtaW4=', `Bearer ${w.adminToken} x`, `Bearer ${w.adminToken.toUpperCase()}`, w.adminToken, `Bearer ${w.adminToken}x`, `Bearer ${w.adminToken.slice(1)}`, `Bearer ${'a'.repeat(4000)}`, 'Bearer\t', 'Token abc')
      .map((v) => ({ authorization: v })),
    printable.filter((s) => s !== w.adminToken).map((s) => ({ authorization: `Bearer ${s}` })),
    fc.constantFrom(...Object.values(w.reportTokens)).map((t) => ({ authorization: `Bearer ${t}` })),
  );

  const serialFor = fc.oneof(anySeeded, unknownSerial, serialSegment);

  // Admin-only routes without the admin token: 401 whatever the rest says.
  const adminNoToken = fc.record({
    route: fc.oneof(
      fc.constant({ method: 'GET', path: '/admin/hosts' }),
      serialFor.map((s) => ({ method: 'GET', path: `/admin/host/${s}` })),
      serialFor.map((s) => ({ method: 'GET', path: `/admin/host/${s}/history` })),
      serialFor.map((s) => ({ method: 'DELETE', path: `/admin/host/${s}` })),
      fc.tuple(serialFor, fc.constantFrom(...ADMIN_PUTS)).map(([s, r]) => ({ method: 'PUT', path: `/admin/host/${s}/${r}` })),
    ),
    auth: wrongAuth,
    body: fc.option(fc.oneof(badJson, hugeBody, fc.constant('{"FleetMetadata":["a=b"]}'), fc.constant('{"State":"configured"}')), { nil: undefined }),
  }).map(({ route, auth, body }): FuzzRequest => ({
    kind: 'admin route, wrong token',
    ...route,
    headers: { ...json, ...auth },
    body: route.method === 'GET' ? undefined : body,
    expect: [401],
  }));

  // Machine reports without their host's token: 403 (400 for a serial that cannot exist).
  const reportWrongToken = fc.record({
    serial: serialFor,
    route: fc.constantFrom(...REPORTS),
    auth: wrongAuth,
    body: fc.option(fc.oneof(badJson, fc.constant('{}'), fc.constant('{"CoreOSVersion":"1.2.3"}')), { nil: undefined }),
  }).chain(({ serial, route, auth, body }) => {
    // The host's own token is right: leave it out here (own-token reports are generated below).
    const own = w.reportTokens[serial];
    const headers = own && auth.authorization === `Bearer ${own}` ? {} : auth;
    return fc.constant<FuzzRequest>({ kind: 'report, wrong token', method: 'PUT', path: `/admin/host/${serial}/${route}`, headers, body, expect: validSerial(decodedParam(serial)) ? [403] : [400, 403] });
  });

  // The host's own token on set_installed of a running host (illegal) or an installed one (no-op).
  const reportOwnToken = fc.constantFrom(...seeded).map((serial): FuzzRequest => ({
    kind: 'report, own token, nothing to change',
    method: 'PUT',
    path: `/admin/host/${serial}/set_installed`,
    headers: { authorization: `Bearer ${w.reportTokens[serial]}` },
    expect: w.running.includes(serial) ? [400] : [202],
  }));

  // The admin token with reads.
  const adminReads = fc.oneof(
    fc.constant<FuzzRequest>({ kind: 'admin read', method: 'GET', path: '/admin/hosts', headers: admin, expect: [200] }),
    serialFor.map((s): FuzzRequest => ({ kind: 'admin read', method: 'GET', path: `/admin/host/${s}`, headers: admin, expect: [200, 400, 404] })),
    serialFor.map((s): FuzzRequest => ({ kind: 'admin read', method: 'HEAD', path: `/admin/host/${s}/history`, headers: admin, expect: [200, 400] })),
  );

  // The admin token with bodies that must be refused.
  const withBadKey = <T>(good: fc.Arbitrary<T[]>, bad: fc.Arbitrary<T>) => fc.tuple(good, bad, fc.nat()).map(([list, b, i]) => { const l = [...list]; l.splice(i % (l.length + 1), 0, b); return l; });
  const badMetadata = withBadKey(fc.array(fc.constantFrom('a=b', 'role=x', 'k=v=w'), { maxLength: 5 }), fc.oneof(fc.constantFrom('novalue', '=x', ' a=b', 'a b=c', '', 'a=b\u0001', `a=${'x'.repeat(300)}`), hostileText.filter((m) => !metadataOk(m))));
  const badOverrideKey = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'a.b', '1x', 'a-b', '', 'x'.repeat(65)), hostileText.filter((k) => !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(k)));
  const adminBadBody = fc.oneof(
    fc.tuple(anySeeded, badMetadata).map(([s, m]) => [s, 'set_metadata', JSON.stringify({ FleetMetadata: m })] as const),
    fc.tuple(anySeeded, fc.oneof(hostileText.map((t) => `${t}\u0001`), fc.constant('x'.repeat(257)))).map(([s, p]) => [s, 'set_provider_id', JSON.stringify({ ProviderId: p })] as const),
    fc.tuple(anySeeded, fc.oneof(hostileText, fc.constantFrom('010.0.0.1', '10.0.0.256', '::1', '10.0.0'))).filter(([, ip]) => ip !== '' && !isIpv4(ip)).map(([s, ip]) => [s, 'set_ipmi_addr', JSON.stringify({ IPMIAddr: ip })] as const),
    fc.tuple(anySeeded, fc.constantFrom('-1', '1.5', '"3"', '1e400', '[]', '{}', 'true')).map(([s, c]) => [s, 'set_cabinet', `{"Cabinet":${c}}`] as const),
    fc.tuple(anySeeded, fc.oneof(hostileText.map((t) => `${t}/`), fc.constant('x'.repeat(129)))).map(([s, t]) => [s, 'set_etcd_cluster_token', JSON.stringify({ EtcdClusterToken: t })] as const),
    fc.tuple(anySeeded, fc.oneof(hostileText.filter((t) => !['unknown', 'configured', 'installing', 'installed', 'running'].includes(t)).map((t) => JSON.stringify({ State: t })), fc.constant('{}'))).map(([s, b]) => [s, 'set_state', b] as const),
    // (An operator's set_state may set any state from any state, as in 0.11: no illegal ones to send.)
    fc.tuple(anySeeded, badOverrideKey, hostileText).map(([s, k, v]) => [s, 'override', JSON.stringify({ Overrides: { ok_key: 'v', [k]: v } })] as const),
    fc.tuple(anySeeded, fc.constantFrom('{"Overrides":{}}', '{"Overrides":{"install_disk":"sda"}}', '{"Overrides":{"ssh_authorized_keys":[1]}}', '{"Overrides":{"ssh_authorized_keys":{"a":1}}}', '{"Overrides":[]}')).map(([s, b]) => [s, 'override', b] as const),
    fc.tuple(anySeeded, fc.constantFrom('CoreOSVersion', 'DockerVersion', 'K8sVersion'), hostileText.map((t) => `${t}/`)).map(([s, f, v]) => [s, 'boot_complete', JSON.stringify({ [f]: v })] as const),
    // install_failed: a stage that is none, a reason that is not one line, details with controls, unknown fields.
    fc.tuple(anySeeded, hostileText.filter((t) => !STAGES.includes(t))).map(([s, t]) => [s, 'install_failed', JSON.stringify({ Stage: t, Reason: 'x' })] as const),
    fc.tuple(anySeeded, hostileText).map(([s, t]) => [s, 'install_failed', JSON.stringify({ Stage: 'disk', Reason: `${t}\n${t}` })] as const),
    fc.tuple(anySeeded, hostileText).map(([s, t]) => [s, 'install_failed', JSON.stringify({ Stage: 'disk', Reason: 'x', Details: `${t}\u0000` })] as const),
    fc.tuple(anySeeded, hostileText.filter((k) => !['Stage', 'Reason', 'Details'].includes(k))).map(([s, k]) => [s, 'install_failed', JSON.stringify({ Stage: 'disk', Reason: 'x', [k]: 1 })] as const),
    // Not for mark_fresh / set_installed: they read no body, so they would change the host.
    fc.tuple(anySeeded, fc.constantFrom(...ADMIN_PUTS.filter((r) => r !== 'mark_fresh'), 'boot_complete', 'install_failed'), badJson.filter((b) => b.trim() !== '' && !isJsonObject(b))).map(([s, r, b]) => [s, r, b] as const),
    fc.tuple(unknownSerial, fc.constantFrom(...ADMIN_PUTS, ...REPORTS)).map(([s, r]) => [s, r, r === 'set_state' ? '{"State":"unknown"}' : '{}'] as const),
  ).map(([serial, route, body]): FuzzRequest => ({ kind: `admin token, bad ${route}`, method: 'PUT', path: `/admin/host/${serial}/${route}`, headers: { ...admin, ...json }, body, expect: [400] }));

  const adminHuge = fc.tuple(anySeeded, fc.constantFrom(...ADMIN_PUTS, 'boot_complete', 'install_failed'), hugeBody).map(([s, r, body]): FuzzRequest => ({ kind: 'admin token, huge body', method: 'PUT', path: `/admin/host/${s}/${r}`, headers: admin, body, expect: [413] }));

  // Machine routes: a valid serial is swapped for a seeded one, whose state refuses reinstalling.
  const machineSerial = (raw: string) => (validSerial(raw) ? null : raw);
  const firstStage = fc.tuple(serialSegment, anySeeded).map(([seg, seededSerial]): FuzzRequest => {
    const bad = machineSerial(decodedParam(seg));
    return { kind: 'first-stage script', method: 'GET', path: `/first-stage-script/${bad === null ? seededSerial : seg}`, headers: {}, expect: bad === null ? [200] : [400] };
  });
  const hostDataBody = fc.record({
    Serial: fc.oneof(hostileText, anySeeded, fc.constant(undefined), fc.constant(7)),
    NetDevs: fc.oneof(
      fc.array(fc.record({ Name: fc.oneof(fc.constant('eth0'), hostileText), MacAddress: fc.oneof(fc.constantFrom('52:54:00:12:34:56', '52-54-00-12-34-57', 'zz:zz', '52:54:00:12:34', ''), hostileText) }), { maxLength: 4 }),
      fc.constantFrom('eth0', null, 5, {}),
    ),
    IPMIAddress: fc.oneof(fc.constantFrom('', '10.0.0.9', '010.0.0.9', 7), hostileText),
    ConnectedNIC: fc.oneof(fc.constantFrom('', 'eth0'), hostileText),
  }, { requiredKeys: [] }).chain((data) => anySeeded.map((seededSerial) => {
    // A serial that could create a host becomes a seeded one (running/installed: reinstall refused).
    const serial = typeof data.Serial === 'string' && validSerial(data.Serial) ? seededSerial : data.Serial;
    return JSON.stringify({ ...data, Serial: serial });
  }));
  const finalConfig = fc.tuple(fc.constantFrom('/final-cloud-config.yaml', '/final-ignition-config.json'), fc.oneof(hostDataBody, badJson, hugeBody))
    .map(([path, body]): FuzzRequest => ({ kind: 'final config', method: 'POST', path, headers: json, body, expect: body.length > JSON_LIMIT ? [413] : [400] }));
  const images = fc.oneof(anySeeded, serialSegment).map((s): FuzzRequest => ({ kind: 'install image', method: 'GET', path: `/images/${s}/install_image.bin.bz2`, headers: {}, expect: [400, 404] }));
  const plainGets = fc.constantFrom('/', '/ipxebootscript', '/ipxebootscript?serial=%00&mac=x', '/images/vmlinuz', '/hostinfo-helper')
    .map((p): FuzzRequest => ({ kind: 'plain get', method: 'GET', path: p, headers: {}, expect: p.startsWith('/images') || p === '/hostinfo-helper' ? [404] : [200] }));

  // Path tricks and wrong methods: never a success on /admin without the token.
  const pathTricks = fc.tuple(
    fc.constantFrom('/admin/hosts/', '/admin//hosts', '//admin/hosts', '/admin/hosts/..', '/admin/./hosts', '/admin/%68osts', '/ADMIN/hosts', '/admin/host/fz-run-1/set_state/x', '/admin/host/', '/admin/host//set_state', '/images/../admin/hosts', '/images/%2e%2e/%2e%2e/etc/passwd', '/first-stage-script/', '/first-stage-script/a/b', '/admin', '/admin/', '/%61dmin/hosts', `/admin/host/${'a'.repeat(9000)}`,
      '/admin/host/%2e%2e/hosts', '/admin/host/fz-run-1/%2e%2e/%2e%2e/hosts', '/admin/host/./set_state', '/first-stage-script/../admin/hosts', '/admin/host/fz-run-1/./set_state'),
    fc.constantFrom('GET', 'PUT', 'DELETE'),
    wrongAuth,
  ).map(([p, method, auth]): FuzzRequest => ({ kind: 'path trick', method, path: p, headers: auth, body: method === 'PUT' ? '{"State":"configured"}' : undefined, expect: [400, 401, 403, 404, 405, 414, 431] }));
  const wrongMethods = fc.tuple(
    fc.constantFrom('/admin/hosts', '/admin/host/fz-run-1', '/admin/host/fz-run-1/set_state', '/admin/host/fz-inst-1/set_installed', '/first-stage-script/fz-run-1', '/final-cloud-config.yaml', '/ipxebootscript'),
    fc.constantFrom(...WRONG_METHODS),
    fc.oneof(wrongAuth, fc.constant(admin)),
  ).filter(([p, m]) => !(
    (m === 'GET' && ['/admin/hosts', '/admin/host/fz-run-1', '/first-stage-script/fz-run-1', '/ipxebootscript'].includes(p)) ||
    (m === 'PUT' && p.startsWith('/admin/host/fz-') && p.split('/').length === 5) ||
    (m === 'POST' && p === '/final-cloud-config.yaml') ||
    (m === 'DELETE' && p === '/admin/host/fz-run-1') // deletes the host: a right method, covered without the token above
  )).map(([p, method, auth]): FuzzRequest => ({ kind: 'wrong method', method, path: p, headers: auth, body: method === 'GET' ? undefined : '{}', expect: [404, 405] }));

  return fc.oneof(
    { arbitrary: adminNoToken, weight: 6 },
    { arbitrary: reportWrongToken, weight: 4 },
    { arbitrary: reportOwnToken, weight: 1 },
    { arbitrary: adminReads, weight: 2 },
    { arbitrary: adminBadBody, weight: 6 },
    { arbitrary: adminHuge, weight: 1 },
    { arbitrary: firstStage, weight: 2 },
    { arbitrary: finalConfig, weight: 4 },
    { arbitrary: images, weight: 1 },
    { arbitrary: plainGets, weight: 1 },
    { arbitrary: pathTricks, weight: 2 },
    { arbitrary: wrongMethods, weight: 2 },
  );
}
