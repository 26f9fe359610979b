// The files of the record folders (`_admission/`, `_config/`) as a store holds them in memory:
// folder → file name → text. Shared by the git and etcd stores.

export type RecordFiles = Map<string, Map<string, string>>;

/** Sets (or with `undefined` removes) one record file; returns what it held. */
export function setRecordFile(files: RecordFiles, folder: string, name: string, content: string | undefined): string | undefined {
  let inFolder = files.get(folder);
  if (!inFolder) files.set(folder, (inFolder = new Map()));
  const prev = inFolder.get(name);
  if (content === undefined) inFolder.delete(name);
  else inFolder.set(name, content);
  return prev;
}
