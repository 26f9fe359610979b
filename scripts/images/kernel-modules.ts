// Kernel module load order for busybox insmod, which resolves nothing by itself. Debian's kernel
// .deb ships no modules.dep, so each module's dependencies are read from its own `.modinfo`
// strings ("depends=virtio,virtio_ring"). Pure: bytes and names in, an ordered list out.

export class ModuleError extends Error {}

/** The `depends=` list in a module's bytes ([] when it depends on nothing). */
export function moduleDepends(ko: Uint8Array): string[] {
  const text = Buffer.from(ko).toString('latin1');
  const m = /\0depends=([^\0]*)\0/.exec(text);
  if (!m) throw new ModuleError('no depends= string in the module (not a kernel module?)');
  return m[1]!.split(',').filter(Boolean);
}

/** Module names use "_" where file names may use "-" (e.g. virtio-rng.ko is virtio_rng). */
export const moduleName = (fileOrName: string) => fileOrName.replace(/\.ko$/, '').replace(/-/g, '_');

/**
 * `wanted` plus everything they depend on, each after its dependencies (depth first, in the
 * order given). `dependsOf` returns a module's dependencies, or undefined when there is no such
 * module file (built into the kernel, or a typo): a wanted one is an error, as is a cycle.
 */
export function loadOrder(wanted: readonly string[], dependsOf: (name: string) => string[] | undefined): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]) => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') throw new ModuleError(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const deps = dependsOf(name);
    if (deps === undefined) throw new ModuleError(`no module file for ${name}${chain.length ? ` (needed by ${chain.at(-1)})` : ''}`);
    state.set(name, 'visiting');
    for (const d of deps) visit(moduleName(d), [...chain, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const w of wanted) visit(moduleName(w), []);
  return order;
}

/** The `alias=` strings of a module's .modinfo (device patterns, e.g. "pci:v00008086d000010D3sv*sd*bc*sc*i*"). */
export function moduleAliases(ko: Uint8Array): string[] {
  const text = Buffer.from(ko).toString('latin1');
  const out: string[] = [];
  for (const m of text.matchAll(/\0alias=([^\0]+)(?=\0)/g)) out.push(m[1]!);
  return out;
}

/** `firmware=` strings: files under /lib/firmware the module may ask for. */
export function moduleFirmware(ko: Uint8Array): string[] {
  const text = Buffer.from(ko).toString('latin1');
  return [...text.matchAll(/\0firmware=([^\0]+)(?=\0)/g)].map((m) => m[1]!);
}

/**
 * modules.alias in the kernel's own format ("alias <pattern> <module>"), device aliases only
 * (bus:... patterns; the fs-/net-pf-style request_module names are of no use to coldplug), sorted
 * so the file is the same for the same modules.
 */
export function modulesAliasFile(modules: readonly { name: string; aliases: readonly string[] }[]): string {
  const lines = new Set<string>();
  for (const m of modules) {
    for (const a of m.aliases) if (/^[a-z0-9]+:/.test(a) && !/\s/.test(a)) lines.add(`alias ${a} ${m.name}`);
  }
  return [...lines].sort().map((l) => `${l}\n`).join('');
}

/**
 * modules.alias.keyed for coldplug: "<key> <pattern> <module>", each alias filed under the literal
 * start every modalias it can match shares: `pci:vVVVVVVVVdDDDDDDDD` (vendor and device fixed,
 * nearly all of them), `pci:vVVVVVVVV` (device a wildcard), else `any:<bus>`. mayu-coldplug then
 * glob-tests a device only against the few lines under its own keys instead of every alias.
 */
export function modulesAliasIndex(aliasFile: string): string {
  const lines: string[] = [];
  for (const line of aliasFile.split('\n')) {
    const [word, pattern, module] = line.split(' ');
    if (word !== 'alias' || !pattern || !module) continue;
    const pci = /^pci:v([0-9A-F]{8})(?:d([0-9A-F]{8})sv)?/.exec(pattern);
    const key = pci ? (pci[2] ? `pci:v${pci[1]}d${pci[2]}` : `pci:v${pci[1]}`) : `any:${pattern.slice(0, pattern.indexOf(':'))}`;
    lines.push(`${key} ${pattern} ${module}`);
  }
  return lines.sort().map((l) => `${l}\n`).join('');
}

/**
 * modules.dep for the installer's loader: "<module>: <dep> <dep> ...", each module's whole
 * dependency closure in load order (so the loader insmods the list, then the module, and resolves
 * nothing itself).
 */
export function modulesDepFile(names: readonly string[], dependsOf: (name: string) => string[] | undefined): string {
  return [...names].sort().map((name) => {
    const closure = loadOrder([name], dependsOf).filter((n) => n !== name);
    return `${name}:${closure.map((n) => ` ${n}`).join('')}\n`;
  }).join('');
}
