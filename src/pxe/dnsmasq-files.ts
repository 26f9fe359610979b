import path from 'node:path';

// Where mayu keeps dnsmasq's files, and the command line it runs dnsmasq with. Paths are made
// absolute here because dnsmasq changes its working folder to / at start.

export interface DnsmasqFiles {
  /** The main conf, rendered from dnsmasq_template.conf once at start. */
  conf: string;
  /** Per-host lines, rewritten on host changes and reread by dnsmasq on SIGHUP. */
  hostsfile: string;
  leases: string;
  pid: string;
}

export function dnsmasqFiles(runDir: string): DnsmasqFiles {
  const dir = path.resolve(runDir);
  return {
    conf: path.join(dir, 'dnsmasq.conf'),
    hostsfile: path.join(dir, 'dnsmasq.hosts'),
    leases: path.join(dir, 'dnsmasq.leases'),
    pid: path.join(dir, 'dnsmasq.pid'),
  };
}

/**
 * The files are options rather than template lines so that an edited template cannot lose the
 * hostsfile mayu signals about. Logs go to stderr (`log-facility=-`), which mayu reads line by line.
 */
export function dnsmasqArgs(files: DnsmasqFiles): string[] {
  return [
    '--keep-in-foreground',
    `--conf-file=${files.conf}`,
    '--log-facility=-',
    `--pid-file=${files.pid}`,
    `--dhcp-leasefile=${files.leases}`,
    `--dhcp-hostsfile=${files.hostsfile}`,
  ];
}

/** dnsmasq prints this after every successful read of the hostsfile: at start and after each SIGHUP. */
export function isHostsfileRead(line: string, files: DnsmasqFiles): boolean {
  return line.endsWith(`: read ${files.hostsfile}`);
}

/** dnsmasq runs as user nobody: it keeps running but ignores a hostsfile it cannot read. */
export function isHostsfileUnreadable(line: string, files: DnsmasqFiles): boolean {
  return line.includes(`cannot read ${files.hostsfile}`);
}
