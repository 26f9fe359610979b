import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import * as yaml from 'js-yaml';
import { dataUrlLambda, type SectionLambda } from './data-url.ts';
import { escapeDnsmasq, escapeIpxe, escapeJson, escapeShell, escapeYaml } from './escape.ts';
import { ignitionProblems } from './ignition-check.ts';
import { RenderError } from './render-error.ts';
import { parseStrict, renderStrict, type Partials } from './strict-mustache.ts';
import type { TemplateView } from './view.ts';

export { RenderError } from './render-error.ts';

/** Template files in templatesDir (mayu 0.11's names). */
export const TEMPLATE_FILES = {
  ipxeScript: 'ipxe_boot_script.ipxe',
  ipxeChainScript: 'ipxe_chain_script.ipxe',
  ipxeLocalBoot: 'ipxe_local_boot.ipxe',
  firstStageScript: 'first_stage_script.sh',
  cloudConfig: 'last_stage_cloudconfig.yaml',
  ignition: 'last_stage_ignition.json',
  dnsmasqConf: 'dnsmasq_template.conf',
} as const;

export type TemplateKey = keyof typeof TEMPLATE_FILES;

// Partials ({{> name}}), per output format:
//   cloud-config: every <snippetsDir>/cloudconfig/<name>.yaml
//   Ignition:     every <snippetsDir>/ignition/<name>.json
// and `network` is an alias for net_<network.network_model> (net_singlenic, net_bond), which
// must exist in both folders. The iPXE scripts, first-stage script and dnsmasq.conf have no partials.
const SNIPPET_DIRS = { cloudConfig: { dir: 'cloudconfig', ext: '.yaml' }, ignition: { dir: 'ignition', ext: '.json' } } as const;
const NETWORK_MODELS = ['singlenic', 'bond'] as const;

export interface DnsmasqView extends TemplateView {
  /** network.ignore_installed_macs: DHCP ignores hosts tagged `installed` in the hostsfile (mayu 0.11's behaviour). */
  ignore_installed_macs: boolean;
  /** Absolute path dnsmasq serves undionly.kpxe / snponly.efi from. */
  tftp_root: string;
  /** Port of the plain-HTTP boot script URL. */
  http_port: number;
}

export interface Renderer {
  /** The installer: kernel, initrd and first-stage URL. */
  ipxeScript(view: TemplateView): string;
  /** Asks for the boot script again with the machine's identity in the query string. */
  ipxeChainScript(view: TemplateView): string;
  /** Leaves iPXE so the machine boots its local disk. */
  ipxeLocalBoot(view: TemplateView): string;
  firstStageScript(view: TemplateView): string;
  /** Rendered, checked to be a YAML mapping starting with #cloud-config. */
  cloudConfig(view: TemplateView): string;
  /** Rendered, JSON.parse'd, checked against Ignition 3.3.0, re-serialized with 2-space indent. */
  ignition(view: TemplateView): string;
  dnsmasqConf(view: DnsmasqView): string;
}

export interface TemplateDirs {
  templatesDir: string;
  snippetsDir: string;
  /**
   * A file to read instead of templatesDir/<its 0.11 name>, per template (0.11's
   * --first-stage-script, --last-stage-cloudconfig, --ignition-config, --dnsmasq-template).
   */
  files?: Partial<Record<TemplateKey, string>>;
}

async function readTemplate(file: string, name: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `cannot be read: ${(err as Error).message}`;
    throw new RenderError(`template file ${file} ${reason}`, { template: name }, { cause: err });
  }
  parseStrict(file, text); // syntax errors at load, naming the file
  return text;
}

async function readSnippets(dir: string, ext: string): Promise<Record<string, string>> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(ext)).sort();
  } catch (err) {
    throw new RenderError(`template snippet folder ${dir} cannot be read: ${(err as Error).message}`, { template: dir }, { cause: err });
  }
  const snippets: Record<string, string> = {};
  for (const name of names) snippets[path.basename(name, ext)] = await readTemplate(path.join(dir, name), name);
  for (const model of NETWORK_MODELS) {
    if (!(`net_${model}` in snippets)) {
      throw new RenderError(`template snippet ${path.join(dir, `net_${model}${ext}`)} is missing (network_model "${model}")`, { template: `net_${model}${ext}` });
    }
  }
  return snippets;
}

function withNetwork(snippets: Partials, view: TemplateView, template: string): Partials {
  const model = view.network.network_model;
  const network = snippets[`net_${model}`];
  if (network === undefined) {
    throw new RenderError(`template "${template}": no network snippet for network_model "${model}" (known: ${NETWORK_MODELS.join(', ')})`, { template });
  }
  return { ...snippets, network };
}

/** Reads and parses every template once; a missing file or a syntax error fails here, naming the file. */
export async function loadTemplates(opts: TemplateDirs): Promise<Renderer> {
  const entries = await Promise.all(
    (Object.keys(TEMPLATE_FILES) as TemplateKey[]).map(async (key) => {
      const file = TEMPLATE_FILES[key];
      const given = opts.files?.[key];
      return [key, await readTemplate(given ?? path.join(opts.templatesDir, file), given ? path.basename(given) : file)] as const;
    }),
  );
  const source = Object.fromEntries(entries) as Record<TemplateKey, string>;
  const cloudSnippets = await readSnippets(path.join(opts.snippetsDir, SNIPPET_DIRS.cloudConfig.dir), SNIPPET_DIRS.cloudConfig.ext);
  const ignitionSnippets = await readSnippets(path.join(opts.snippetsDir, SNIPPET_DIRS.ignition.dir), SNIPPET_DIRS.ignition.ext);

  return {
    ipxeScript(view) {
      return renderStrict(TEMPLATE_FILES.ipxeScript, source.ipxeScript, view, { escape: escapeIpxe });
    },

    ipxeChainScript(view) {
      return renderStrict(TEMPLATE_FILES.ipxeChainScript, source.ipxeChainScript, view, { escape: escapeIpxe });
    },

    ipxeLocalBoot(view) {
      return renderStrict(TEMPLATE_FILES.ipxeLocalBoot, source.ipxeLocalBoot, view, { escape: escapeIpxe });
    },

    firstStageScript(view) {
      return renderStrict(TEMPLATE_FILES.firstStageScript, source.firstStageScript, view, { escape: escapeShell });
    },

    cloudConfig(view) {
      const name = TEMPLATE_FILES.cloudConfig;
      const partials = withNetwork(cloudSnippets, view, name);
      const text = renderStrict(name, source.cloudConfig, view, { escape: escapeYaml, partials });
      if (!/^#cloud-config\r?\n/.test(text)) {
        throw new RenderError(`template "${name}": output must start with a "#cloud-config" line`, { template: name });
      }
      let doc: unknown;
      try {
        doc = yaml.load(text);
      } catch (err) {
        throw new RenderError(`template "${name}": output is not valid YAML: ${(err as Error).message}`, { template: name }, { cause: err });
      }
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
        throw new RenderError(`template "${name}": output is not a YAML mapping`, { template: name });
      }
      return text;
    },

    ignition(view) {
      const name = TEMPLATE_FILES.ignition;
      const partials = withNetwork(ignitionSnippets, view, name);
      const root: TemplateView & { data_url?: SectionLambda } = { ...view };
      root.data_url = dataUrlLambda(name, root, partials);
      const text = renderStrict(name, source.ignition, root, { escape: escapeJson, partials });
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch (err) {
        throw new RenderError(`template "${name}": output is not valid JSON: ${(err as Error).message}`, { template: name }, { cause: err });
      }
      const problems = ignitionProblems(doc);
      if (problems.length) {
        throw new RenderError(`template "${name}": output is not a valid Ignition 3.3.0 config: ${problems.join('; ')}`, { template: name });
      }
      return JSON.stringify(doc, null, 2);
    },

    dnsmasqConf(view) {
      return renderStrict(TEMPLATE_FILES.dnsmasqConf, source.dnsmasqConf, view, { escape: escapeDnsmasq });
    },
  };
}
