import { RECORD_FOLDERS } from '../store.ts';

// Where the etcd store keeps a cluster, all under one prefix (config etcd.prefix, e.g. "/mayu/"):
//
//   cluster.json              cluster.json's text, as the git store writes it
//   hosts/<serial>            the host's conf.json text, byte for byte what the git store commits
//   files/<serial>/<name>     a side file of the host (install-failures.json), its text
//   addr/<InternalAddr>       the serial holding the address: created in the same transaction
//                             that gives it out, so two replicas cannot both hand it out
//   quota/<profile>           a counter bumped by every change that puts a host into a profile
//                             with a quantity; compared on its mod revision, so two replicas
//                             cannot both take that profile's last place
//   log                       the changes of the latest transaction (change-log.ts): etcd keeps
//                             every revision of it until compaction, the audit history is made from them
//   history-start             the first revision of `log` the git history has to take
//   history-writer/<lease>    the election of the replica that writes git (history-writer.ts)
//   _admission/<serial>.json  admission records and the inventory (issue 17), the same files
//   _config/inventory.yaml    the git store keeps in its reserved folders, compared on their
//                             mod revision by every change of them
//   migrated-out              set by `mayu migrate --to git`: the cluster lives in git again; no
//                             replica starts on this prefix while it is there

export class EtcdKeys {
  constructor(readonly prefix: string) {}

  get cluster() { return `${this.prefix}cluster.json`; }
  get log() { return `${this.prefix}log`; }
  get historyStart() { return `${this.prefix}history-start`; }
  get election() { return `${this.prefix}history-writer/`; }
  get migratedOut() { return `${this.prefix}migrated-out`; }
  record(folder: string, name: string) { return `${this.prefix}${folder}/${name}`; }
  host(serial: string) { return `${this.prefix}hosts/${serial}`; }
  file(serial: string, name: string) { return `${this.prefix}files/${serial}/${name}`; }
  addr(ip: string) { return `${this.prefix}addr/${ip}`; }
  quota(profile: string) { return `${this.prefix}quota/${profile}`; }

  /** What a key under the prefix is; undefined for anything else (ignored). */
  parse(key: string):
    | { kind: 'host'; serial: string }
    | { kind: 'file'; serial: string; name: string }
    | { kind: 'quota'; profile: string }
    | { kind: 'record'; folder: string; name: string }
    | { kind: 'other' } {
    if (!key.startsWith(this.prefix)) return { kind: 'other' };
    const rest = key.slice(this.prefix.length);
    if (rest.startsWith('hosts/')) return { kind: 'host', serial: rest.slice(6) };
    if (rest.startsWith('files/')) {
      const [serial, name] = rest.slice(6).split('/');
      if (serial && name) return { kind: 'file', serial, name };
    }
    if (rest.startsWith('quota/')) return { kind: 'quota', profile: rest.slice(6) };
    const slash = rest.indexOf('/');
    if (slash > 0 && RECORD_FOLDERS.includes(rest.slice(0, slash))) {
      const name = rest.slice(slash + 1);
      // One level of plain file names, as the git store keeps them.
      if (/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) return { kind: 'record', folder: rest.slice(0, slash), name };
    }
    return { kind: 'other' };
  }
}
