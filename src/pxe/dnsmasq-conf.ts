import type { MayuConfig } from '../config/schema.ts';
import type { Renderer } from '../render/renderer.ts';
import { buildView } from '../render/view.ts';

export interface DnsmasqConfInput {
  renderer: Renderer;
  config: MayuConfig;
  /** Absolute: dnsmasq serves undionly.kpxe / snponly.efi from here. */
  tftpRoot: string;
  /** Port of the plain-HTTP boot script URL handed to iPXE. */
  httpPort: number;
  version: string;
}

/** The main dnsmasq.conf from dnsmasq_template.conf (written once at start; hosts are in the hostsfile). */
export function renderDnsmasqConf(i: DnsmasqConfInput): string {
  const mayuUrl = `http://${i.config.network.bind_addr}:${i.httpPort}`;
  const view = buildView(undefined, i.config, { mayuUrl, mayuVersion: i.version });
  return i.renderer.dnsmasqConf({
    ...view,
    tftp_root: i.tftpRoot,
    http_port: i.httpPort,
    ignore_installed_macs: i.config.network.ignore_installed_macs,
  });
}
