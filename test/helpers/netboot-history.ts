// The commit subjects (without the `<serial>: ` prefix) one machine's netboot leaves in the
// cluster repo, as 0.11 wrote them: the VM tests compare the native git log against these.

/** Power-on of a blank machine → installer → install → disk boot → `running`. */
export const FIRST_INSTALL_SUBJECTS = [
  'host created', 'updated with predefined settings', 'updated host InternalAddr',
  'updated host profile and metadata', 'set default etcd discovery token',
  'collected host mac addresses', 'updated host connected nic', 'updated host state to installing',
  'updated state to installed', 'updated state to running',
];

/** `mayuctl set <serial> state configured` (reinstall) → netboot → install → disk boot → `running`. */
export const REINSTALL_SUBJECTS = ['updated host state', 'updated host state to installing', 'updated state to installed', 'updated state to running'];
