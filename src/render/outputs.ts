import type { MayuConfig } from '../config/schema.ts';
import type { Host } from '../core/host.ts';
import type { Renderer } from './renderer.ts';
import { buildView, type ViewOptions } from './view.ts';

/** What the machine-facing routes serve; each throws RenderError and returns the whole text. */
export interface Outputs {
  /** The installer boot script (for every machine that is not installed). */
  ipxeScript(): string;
  ipxeChainScript(): string;
  ipxeLocalBoot(host: Host): string;
  firstStageScript(host: Host): string;
  cloudConfig(host: Host): string;
  ignition(host: Host): string;
}

/** Binds the renderer to this server's config and URL: host in, whole document out. */
export function createOutputs(deps: { renderer: Renderer; config: MayuConfig; mayuUrl: string; version: string; useIgnition: boolean }): Outputs {
  const { renderer, config } = deps;
  const opts: ViewOptions = { mayuUrl: deps.mayuUrl, mayuVersion: deps.version, useIgnition: deps.useIgnition };
  const view = (host?: Host) => buildView(host, config, opts);
  return {
    ipxeScript: () => renderer.ipxeScript(view()),
    ipxeChainScript: () => renderer.ipxeChainScript(view()),
    ipxeLocalBoot: (host) => renderer.ipxeLocalBoot(view(host)),
    firstStageScript: (host) => renderer.firstStageScript(view(host)),
    cloudConfig: (host) => renderer.cloudConfig(view(host)),
    ignition: (host) => renderer.ignition(view(host)),
  };
}
