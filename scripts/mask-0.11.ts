// What differs between two mayu runs by design, masked for comparing them (scripts/diff-0.11.ts
// and the fixtures recorded from 0.11): MachineID, Hostname (its first 16 digits) and etcd
// tokens become same-length placeholders (columns stay aligned); LastBoot's clock digits become
// letters, its offset and zone name stay. The zero time stays as it is.

/** `hosts`: the run's GET /admin/hosts; `clusterToken`: its cluster.json DefaultEtcdClusterToken. */
export function maskRandom(text: string, hosts: readonly Record<string, unknown>[], clusterToken: string): string {
  const secrets = new Map<string, string>([[clusterToken, 'T'.repeat(clusterToken.length)]]);
  for (const h of hosts) {
    for (const [key, letter] of [['MachineID', 'M'], ['Hostname', 'H'], ['EtcdClusterToken', 'T']] as const) {
      const v = h[key];
      if (typeof v === 'string' && v !== '') secrets.set(v, letter.repeat(v.length));
    }
  }
  let out = text;
  for (const [secret, mask] of [...secrets].sort((a, b) => b[0].length - a[0].length)) out = out.split(secret).join(mask);
  const keepZero = (mask: string) => (m: string) => (m.startsWith('0001-') ? m : mask);
  return out
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(?=Z|[+-]\d\d:\d\d)/g, keepZero('YYYY-MM-DDThh:mm:ss.nnn')) // conf.json
    .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})?(?= [+-]\d{4} )/g, keepZero('YYYY-MM-DD hh:mm:ss.nnn')) // mayuctl status
    .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?= *$)/gm, keepZero('YYYY-MM-DD hh:mm:ss')); // mayuctl list
}
