import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as yaml from 'js-yaml';
import { loadTemplates, RenderError, type Renderer } from '../src/render/renderer.ts';
import { buildView, type TemplateView } from '../src/render/view.ts';
import { HOSTILE_VALUES, SAMPLE_REPORT_TOKEN, sampleConfig, sampleHost, TEMPLATE_DIRS, VIEW_OPTS } from './fixtures/render/sample.ts';

// CI installs Debian's `ignition` package; the validator is assumed, not optional.
const IGNITION_VALIDATE = '/usr/bin/ignition-validate';

let tmp: string;
let renderer: Renderer;

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'mayu-render-'));
  renderer = await loadTemplates(TEMPLATE_DIRS);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function ignitionValidate(json: string): Promise<void> {
  const file = path.join(tmp, `ignition-${process.hrtime.bigint()}.json`);
  await writeFile(file, json);
  const res = spawnSync(IGNITION_VALIDATE, [file], { encoding: 'utf8' });
  assert.equal(res.error, undefined, `cannot run ${IGNITION_VALIDATE}: ${String(res.error)}`);
  assert.equal(res.status, 0, `ignition-validate: ${res.stdout}${res.stderr}`);
}

// CI installs Debian's `cloud-init` too: its own schema check of the rendered cloud-config.
const CLOUD_INIT = '/usr/bin/cloud-init';

async function cloudInitSchema(text: string): Promise<void> {
  const file = path.join(tmp, `cloud-config-${process.hrtime.bigint()}.yaml`);
  await writeFile(file, text);
  const res = spawnSync(CLOUD_INIT, ['schema', '--config-file', file], { encoding: 'utf8' });
  assert.equal(res.error, undefined, `cannot run ${CLOUD_INIT}: ${String(res.error)}`);
  if (res.status !== 0) throw new Error(`cloud-init schema: ${res.stdout}${res.stderr}`);
}

function dataUrlContent(source: string): string {
  assert.match(source, /^data:,/);
  return decodeURIComponent(source.slice('data:,'.length));
}

interface IgnitionDoc {
  passwd: { users: { name: string; sshAuthorizedKeys: string[] }[] };
  storage: { files: { path: string; mode?: number; contents: { source: string } }[] };
}

function fileContent(doc: IgnitionDoc, file: string): string {
  const entry = doc.storage.files.find((f) => f.path === file);
  assert.ok(entry, `no ${file} in the Ignition config`);
  return dataUrlContent(entry.contents.source);
}

const MODELS = ['singlenic', 'bond'] as const;
const view = (model: string, hostFields = {}, env = {}): TemplateView =>
  buildView(sampleHost(hostFields), sampleConfig({ network: { network_model: model }, templates_env: env }), VIEW_OPTS);

describe('iPXE script', () => {
  it('boots the installer with the 0.11 command line plus initrd=, panic=1 and the boot NIC as BOOTIF', () => {
    const lines = renderer.ipxeScript(buildView(undefined, sampleConfig(), VIEW_OPTS)).trimEnd().split('\n');
    const U = VIEW_OPTS.mayuUrl;
    assert.deepEqual(lines, [
      '#!ipxe',
      ':mayu_load',
      `kernel ${U}/images/vmlinuz initrd=initrd.cpio.gz coreos.autologin maybe-install-coreos=stable panic=1 console=ttyS0,115200n8 BOOTIF=01-\${mac:hexhyp} mayu=${U} next-script=${U}/first-stage-script/__SERIAL__ && initrd ${U}/images/initrd.cpio.gz && boot ||`,
      // A failed download (mayu busy or restarting): free, wait, try again, 10 times at most.
      'imgfree',
      'inc mayu_loads',
      'iseq ${mayu_loads} 10 && exit ||',
      'echo downloading the installer from mayu failed (${errno}): trying again in 5 s',
      'sleep 5',
      'goto mayu_load',
    ]);
  });
  it('chain script: asks again with iPXE\'s serial, MAC and UUID in the query string', () => {
    const U = VIEW_OPTS.mayuUrl;
    assert.deepEqual(renderer.ipxeChainScript(buildView(undefined, sampleConfig(), VIEW_OPTS)).trimEnd().split('\n'), [
      '#!ipxe',
      ':mayu_ask',
      `chain ${U}/ipxebootscript?serial=\${serial:uristring}&mac=\${mac:hexhyp}&uuid=\${uuid} && exit ||`,
      // The local boot answer fails on purpose (exit 1, see below): iPXE ends with it.
      'iseq ${mayu_answer} local-disk && exit 1 ||',
      // mayu busy (503), restarting or unreachable: wait, ask again, 10 times at most, then the next boot device.
      'inc mayu_tries',
      'iseq ${mayu_tries} 10 && exit 1 ||',
      'echo mayu did not answer (${errno}): asking again in 5 s',
      'sleep 5',
      'goto mayu_ask',
    ]);
  });
  it('local boot script: one echo line naming the host, BIOS boots the first disk itself, else exit 1 (UEFI goes on to the next boot option); a hostile serial stays on its line', () => {
    assert.deepEqual(renderer.ipxeLocalBoot(buildView(sampleHost({ State: 'running' }), sampleConfig(), VIEW_OPTS)).trimEnd().split('\n'), [
      '#!ipxe',
      'echo mayu: 004b27ed-692e-b32e is running, booting from the local disk',
      // Read by the chain script: this exit 1 is the answer, not a failed request.
      'set mayu_answer local-disk',
      // BIOS: no return to the firmware (iPXE's 2 s prompt); a disk that does not boot falls through.
      'iseq ${platform} pcbios && sanboot --no-describe --drive 0x80 ||',
      'exit 1',
    ]);
    for (const value of HOSTILE_VALUES) {
      const lines = renderer.ipxeLocalBoot(buildView(sampleHost({ Serial: value, State: 'installed' }), sampleConfig(), VIEW_OPTS)).trimEnd().split('\n');
      assert.equal(lines.length, 5);
      assert.equal(lines[4], 'exit 1');
      assert.doesNotMatch(lines[1]!, /\$\{/);
    }
  });
  it('a hostile URL cannot add lines, arguments or ${} expansions', () => {
    const hostile = 'http://h:1/a b\nshell ${x}';
    const out = renderer.ipxeScript(buildView(undefined, sampleConfig(), { ...VIEW_OPTS, mayuUrl: hostile }));
    assert.equal(out.trimEnd().split('\n').length, 9);
    assert.deepEqual(out.match(/\$\{[^}]*\}/g), ['${mac:hexhyp}', '${mayu_loads}', '${errno}'], 'the only expansions are the template\'s own (BOOTIF, the retry loop)');
    assert.equal(decodeURIComponent(/ mayu=(\S+) /.exec(out)![1]!), hostile);
  });
});

describe('first-stage script', () => {
  function valuesBlock(script: string): string {
    const m = /# --- values rendered by mayu ---\n([\s\S]*?)# --- end of values ---/.exec(script);
    assert.ok(m, 'values block not found');
    return m[1]!;
  }

  for (const useIgnition of [false, true]) {
    it(`parses (sh -n) and posts to the ${useIgnition ? 'Ignition' : 'cloud-config'} route`, () => {
      const script = renderer.firstStageScript(buildView(sampleHost(), sampleConfig(), { ...VIEW_OPTS, useIgnition }));
      execFileSync('sh', ['-n'], { input: script });
      assert.match(script, /^#!\/bin\/sh\n/);
      assert.match(script, new RegExp(`CONFIG_KIND='${useIgnition ? 'ignition' : 'cloud-config'}'`));
      assert.match(script, /timeout "\$HTTP_TIMEOUT" wget /);
      assert.doesNotMatch(script, /^[^#\n]*wget -T/m); // busybox wget -T segfaults
      assert.match(script, /\/admin\/host\/\$SERIAL\/set_installed/);
    });
  }

  it('reboots only after a 2xx answer to set_installed', () => {
    const script = renderer.firstStageScript(view('singlenic'));
    const loop = script.slice(script.indexOf('installed_url='));
    assert.ok(loop.indexOf('2??) break') < loop.indexOf('reboot -f'));
    assert.match(loop, /fail report "PUT \$installed_url failed/);
    // the only reboot command is the last line, reached by the loop's break
    assert.deepEqual(script.match(/^\s*reboot\b.*$/gm), ['reboot -f']);
    assert.ok(script.trimEnd().endsWith('\nreboot -f'));
  });

  /**
   * Runs the script's "report and reboot" part in sh with nc, timeout, sleep and reboot stubbed:
   * nc records each request and answers the next status of `statuses`.
   */
  function runReportPart(script: string, statuses: string[], extraHeaders = ''): { code: number; output: string; requests: string[] } {
    const dir = path.join(tmp, `report-${process.hrtime.bigint()}`);
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'statuses'), `${statuses.join('\n')}\n`);
    writeFileSync(path.join(dir, 'count'), '0\n');
    const constants = script.slice(script.indexOf('# --- end of values ---'), script.indexOf('say() {'));
    const reports = script.slice(script.indexOf('# --- reports to mayu ---'), script.indexOf('# --- end of reports ---'));
    const part = script.slice(script.indexOf('# --- report and reboot ---'));
    const harness = [
      valuesBlock(script),
      constants,
      'say() { echo "mayu-installer: $*"; }',
      extraHeaders ? reports.replace(/report_headers\(\) \{\n[^}]*\}/, `report_headers() {\n  ${extraHeaders}\n}`) : reports,
      // The stage is the first argument; the failure report itself is tested against a real mayu (first-stage-fail-report).
      'fail() { shift; echo "mayu-installer: ERROR: $*"; exit 1; }',
      'timeout() { shift; "$@"; }',
      'sleep() { :; }',
      'reboot() { echo REBOOTED; }',
      // nc runs in a subshell (pipeline inside $(...)): count requests in a file.
      `nc() { n=$(($(cat '${dir}/count') + 1)); echo $n >'${dir}/count'; cat >"${dir}/request-$n"; status=$(sed -n "\${n}p" '${dir}/statuses'); [ -n "$status" ] && printf 'HTTP/1.1 %s X\\r\\n\\r\\n' "$status"; }`,
      part,
    ].join('\n');
    const res = spawnSync('sh', ['-c', harness], { encoding: 'utf8', timeout: 20_000 });
    const count = Number(readFileSync(path.join(dir, 'count'), 'utf8'));
    const requests = Array.from({ length: count }, (_, i) => readFileSync(path.join(dir, `request-${i + 1}`), 'utf8'));
    return { code: res.status ?? -1, output: res.stdout + res.stderr, requests };
  }

  it('set_installed: retried until a 2xx, and only then reboots', () => {
    const script = renderer.firstStageScript(view('singlenic'));
    const ok = runReportPart(script, ['500', '', '202']);
    assert.equal(ok.code, 0, ok.output);
    assert.equal(ok.requests.length, 3);
    const token = view('singlenic').report_token;
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.equal(ok.requests[0], `PUT /admin/host/004b27ed-692e-b32e/set_installed HTTP/1.0\r\nHost: 10.0.3.251:4080\r\nContent-Length: 0\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    assert.match(ok.output, /answered 500, retrying[\s\S]*answered nothing, retrying[\s\S]*installed \(mayu answered 202\); rebooting\nREBOOTED\n$/);

    const never = runReportPart(script, ['500', '503', '404', '500', '502', '202']);
    assert.equal(never.code, 1);
    assert.equal(never.requests.length, 5);
    assert.doesNotMatch(never.output, /REBOOTED/);
    assert.match(never.output, /mayu-installer: ERROR: PUT \S+\/set_installed failed 5 times \(last answer: 502\): not rebooting/);
  });

  it('set_installed refused as busy (429/503 with "retry after N s"): waits as told, not counted as a failed try', () => {
    const script = renderer.firstStageScript(view('singlenic'));
    const busy = '503 Service Unavailable, retry after 2 s';
    const r = runReportPart(script, [busy, busy, busy, busy, busy, busy, '500', '202']);
    assert.equal(r.code, 0, r.output);
    assert.equal(r.requests.length, 8);
    assert.equal(r.output.match(/answered 503 \(mayu is busy\): asking again in about 2 s/g)?.length, 6);
    assert.match(r.output, /answered 500, retrying in 5 s[\s\S]*installed \(mayu answered 202\); rebooting\nREBOOTED\n$/);
  });

  it('decompress: bzip2, gzip and zstd by their magic bytes, byte-exact; anything else is a named failure', () => {
    const script = renderer.firstStageScript(view('singlenic'));
    const fn = /^decompress\(\) \{\n[\s\S]*?^\}\n/m.exec(script);
    assert.ok(fn, 'decompress() not found');
    const image = Buffer.concat([Buffer.from([0xfa, 0x31, 0xc0]), Buffer.alloc(70_000), Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) & 255))]);
    const run = (input: Buffer) => {
      const dir = path.join(tmp, `decompress-${process.hrtime.bigint()}`);
      mkdirSync(dir);
      // busybox sh, as in the installer; dd/od/bunzip2/gunzip/zstd from PATH.
      const r = spawnSync('busybox', ['sh', '-c', `WORKDIR='${dir}'\nsay() { echo "mayu-installer: $*"; }\n${fn[0]}decompress`], { input, maxBuffer: 1 << 24 });
      const failed = (() => { try { return readFileSync(path.join(dir, 'failed'), 'utf8'); } catch { return ''; } })();
      return { out: r.stdout, err: r.stderr.toString(), failed };
    };
    for (const [tool, magic] of [['bzip2', '425a6839'], ['gzip', '1f8b0800'], ['zstd', '28b52ffd']] as const) {
      const packed = execFileSync(tool, ['-c'], { input: image, maxBuffer: 1 << 24 });
      const r = run(packed);
      assert.equal(r.failed, '', `${tool}: ${r.err}`);
      assert.ok(r.out.equals(image), `${tool}: the image comes out byte-exact`);
      assert.match(r.err, new RegExp(`mayu-installer: image starts with ${magic.slice(0, 4)}`));
    }
    const raw = run(image);
    assert.match(raw.failed, /^decompression: the image is neither bzip2, gzip nor zstd \(first bytes fa31c000\)$/m);
    assert.equal(raw.out.length, 0);
    const truncated = run(execFileSync('zstd', ['-c'], { input: image }).subarray(0, 100));
    assert.match(truncated.failed, /^zstd \(corrupt or truncated image\)$/m);
  });

  it('report requests get extra header lines from one place (report_headers), before the blank line', () => {
    const script = renderer.firstStageScript(view('singlenic'));
    const r = runReportPart(script, ['202'], `printf 'Authorization: Bearer %s\\r\\n' t0ken`);
    assert.equal(r.code, 0, r.output);
    assert.match(r.requests[0]!, /\r\nContent-Length: 0\r\nAuthorization: Bearer t0ken\r\n\r\n$/);
  });

  it("config placement: the NoCloud seed of the Debian image and Flatcar's OEM partition by default, the test OS tar partition from templates_env", () => {
    const values = (script: string) =>
      execFileSync('sh', ['-c', `${valuesBlock(script)}printf '%s|%s|%s|%s|%s' "$CONFIG_STORE" "$CONFIG_PARTITION" "$CONFIG_PATH" "$MACHINE_ID" "$HOSTNAME"`], { encoding: 'utf8' });
    assert.equal(values(renderer.firstStageScript(view('singlenic'))), 'nocloud|2|/var/lib/cloud/seed/nocloud|00006811af601fe8e1d3f37902021ae0|00006811af601fe8');
    assert.match(values(renderer.firstStageScript(buildView(sampleHost(), sampleConfig(), { ...VIEW_OPTS, useIgnition: true }))), /^file\|6\|\/config\.ign\|/);
    assert.match(values(renderer.firstStageScript(view('singlenic', {}, { config_store: 'tar', config_partition: 2 }))), /^tar\|2\|\/var\/lib\/cloud\/seed\/nocloud\|/);
  });

  for (const value of HOSTILE_VALUES) {
    it(`a hostile serial, hostname, install disk and config path come out byte-identical: ${JSON.stringify(value)}`, () => {
      const disk = `/dev/${value}`;
      const configPath = `/x/${value}`;
      const script = renderer.firstStageScript(view('singlenic', { Serial: value, Hostname: value }, { install_disk: disk, config_path: configPath }));
      execFileSync('sh', ['-n'], { input: script });
      const out = execFileSync('sh', ['-c', `${valuesBlock(script)}printf '%s\\0%s\\0%s\\0%s' "$SERIAL" "$INSTALL_DISK" "$CONFIG_PATH" "$HOSTNAME"`]);
      assert.deepEqual(out, Buffer.from(`${value}\0${disk}\0${configPath}\0${value}`));
    });
  }
});

describe('cloud-config', () => {
  interface CloudConfig {
    hostname: string;
    ssh_authorized_keys: string[];
    write_files: { path: string; content: string; permissions?: string }[];
    runcmd: string[][];
  }
  for (const model of MODELS) {
    it(`renders valid YAML that cloud-init's own schema check accepts, for network_model ${model}`, async () => {
      const text = renderer.cloudConfig(view(model));
      assert.match(text, /^#cloud-config\n/);
      const doc = yaml.load(text) as CloudConfig;
      assert.equal(doc.hostname, '00006811af601fe8');
      assert.deepEqual(doc.ssh_authorized_keys, ['ssh-ed25519 AAAAC3Nza core@example']);
      const files = new Map(doc.write_files.map((f) => [f.path, f]));
      assert.equal(files.get('/etc/mayu-env')!.permissions, '0600', 'the report token is for root only');
      assert.match(files.get('/etc/systemd/system/mayu-boot-complete.service')!.content, /^ExecStart=\/usr\/local\/sbin\/mayu-boot-complete$/m);
      assert.match(files.get('/usr/local/sbin/mayu-boot-complete')!.content, /^#!\/usr\/bin\/python3\n/);
      assert.deepEqual(doc.runcmd, [['networkctl', 'reload'], ['systemctl', 'enable', 'mayu-boot-complete.service'], ['systemctl', 'start', '--no-block', 'mayu-boot-complete.service']]);
      const network = [...files.keys()].filter((f) => f.startsWith('/etc/systemd/network/'));
      if (model === 'singlenic') {
        assert.deepEqual(network, ['/etc/systemd/network/10-static.network']);
        assert.match(files.get(network[0]!)!.content, /^\[Match\]\nName=ens3\n\n\[Network\]\nAddress=10\.0\.3\.31\/22\nGateway=10\.0\.3\.1\nDNS=8\.8\.8\.8\nDNS=1\.1\.1\.1\n$/);
      } else {
        assert.deepEqual(network, ['10-bond0.netdev', '20-bond0-members.network', '30-bond0.network'].map((f) => `/etc/systemd/network/${f}`));
        assert.match(files.get(network[1]!)!.content, /MACAddress=00:16:3e:a0:b7:df\nMACAddress=00:16:3e:a0:b7:e0\n/);
        assert.match(files.get(network[2]!)!.content, /Address=10\.0\.3\.31\/22/);
      }
      await cloudInitSchema(text);
    });
  }

  it("cloud-init's schema check rejects what it must: a broken config never passes as valid", async () => {
    const text = renderer.cloudConfig(view('singlenic'));
    await assert.rejects(cloudInitSchema(text.replace('runcmd:', 'runcmd: 42\nx_runcmd:')), /cloud-init schema/);
    await assert.rejects(cloudInitSchema(text.replace('permissions: "0600"', 'permissions: [0600]')), /cloud-init schema/);
  });

  it('hostile values parse back unchanged', () => {
    for (const value of HOSTILE_VALUES) {
      const text = renderer.cloudConfig(view('singlenic', { Hostname: value, Serial: value }, { ssh_authorized_keys: [value, 'k2'] }));
      const doc = yaml.load(text) as { hostname: string; ssh_authorized_keys: string[]; write_files: { content: string }[] };
      assert.equal(doc.hostname, value);
      assert.deepEqual(doc.ssh_authorized_keys, [value, 'k2']);
      // The last line names the etcd discovery URL of the host's token (0.11's templates named it too).
      const env = doc.write_files[0]!.content;
      assert.match(env, /\nETCD_DISCOVERY=http:\/\/[^\n]+\/etcd\/[^\n]*\n$/);
      assert.equal(env.replace(/ETCD_DISCOVERY=[^\n]*\n$/, ''), `SERIAL=${value}\nMAYU_VERSION=0.12.0\nMAYU_URL=${VIEW_OPTS.mayuUrl}\nREPORT_TOKEN=${SAMPLE_REPORT_TOKEN}\n`);
    }
  });
});

describe('Ignition', () => {
  for (const model of MODELS) {
    it(`passes ignition-check and ignition-validate for network_model ${model}`, async () => {
      const json = renderer.ignition(view(model));
      const doc = JSON.parse(json) as IgnitionDoc;
      assert.equal(json, JSON.stringify(doc, null, 2));
      assert.equal(fileContent(doc, '/etc/hostname'), '00006811af601fe8\n');
      assert.equal(fileContent(doc, '/etc/mayu-env'), `SERIAL=004b27ed-692e-b32e\nMAYU_VERSION=0.12.0\nMAYU_URL=${VIEW_OPTS.mayuUrl}\nREPORT_TOKEN=${SAMPLE_REPORT_TOKEN}\n`);
      assert.equal(doc.storage.files.find((f) => f.path === '/etc/mayu-env')!.mode, 0o600, 'the report token is for root only');
      if (model === 'singlenic') {
        assert.equal(fileContent(doc, '/etc/systemd/network/10-static.network'), '[Match]\nName=ens3\n\n[Network]\nAddress=10.0.3.31/22\nGateway=10.0.3.1\nDNS=8.8.8.8\nDNS=1.1.1.1\n');
      } else {
        assert.match(fileContent(doc, '/etc/systemd/network/10-bond0.netdev'), /Kind=bond/);
        assert.match(fileContent(doc, '/etc/systemd/network/20-bond0-members.network'), /MACAddress=00:16:3e:a0:b7:df\nMACAddress=00:16:3e:a0:b7:e0\n/);
        assert.match(fileContent(doc, '/etc/systemd/network/30-bond0.network'), /Address=10\.0\.3\.31\/22/);
      }
      await ignitionValidate(json);
    });
  }

  it('hostile values come back unchanged and the config stays valid', async () => {
    for (const value of HOSTILE_VALUES) {
      const json = renderer.ignition(view('bond', { Hostname: value }, { ssh_authorized_keys: ['k1', value] }));
      const doc = JSON.parse(json) as IgnitionDoc;
      assert.deepEqual(doc.passwd.users[0]!.sshAuthorizedKeys, ['k1', value]);
      assert.equal(fileContent(doc, '/etc/hostname'), `${value}\n`);
      await ignitionValidate(json);
    }
  });
});

describe('dnsmasq.conf', () => {
  const extra = { ignore_installed_macs: false, tftp_root: '/var/lib/mayu/tftproot', http_port: 4081 };

  it('has the 0.11 options, the speed options, BIOS + UEFI boot files and UEFI HTTP boot, and ignores no installed MAC', () => {
    const lines = renderer.dnsmasqConf({ ...buildView(undefined, sampleConfig(), VIEW_OPTS), ...extra }).split('\n');
    for (const line of [
      'port=0', 'interface=br0', 'listen-address=10.0.3.251', 'bind-interfaces', 'except-interface=lo', 'dhcp-authoritative', 'no-ping',
      'dhcp-option=option:router,10.0.3.1', 'dhcp-option=option:dns-server,8.8.8.8,1.1.1.1',
      'dhcp-range=10.0.3.10,10.0.3.30,2m', 'enable-tftp', 'tftp-root=/var/lib/mayu/tftproot',
      'dhcp-match=set:ipxe,175', 'dhcp-match=set:efi64,option:client-arch,7', 'dhcp-match=set:efi64,option:client-arch,9',
      'dhcp-boot=tag:!ipxe,tag:!efi64,tag:!httpboot,undionly.kpxe,,10.0.3.251', 'dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi,,10.0.3.251',
      'dhcp-vendorclass=set:httpboot,HTTPClient', 'dhcp-option-force=tag:httpboot,60,HTTPClient',
      'dhcp-boot=tag:!ipxe,tag:httpboot,http://10.0.3.251:4081/uefi/snponly.efi',
      'dhcp-boot=tag:ipxe,http://10.0.3.251:4081/ipxebootscript',
      'enable-ra', 'dhcp-range=::,constructor:br0,ra-only', 'dhcp-option=tag:ipxe,encap:175,176,1b',
    ]) {
      assert.ok(lines.includes(line), `missing line ${line}`);
    }
    assert.ok(!lines.some((l) => l.startsWith('dhcp-mac=') || l.startsWith('dhcp-host=')), 'per-host lines belong in the hostsfile');
  });

  it('ignores hosts tagged installed only with network.ignore_installed_macs', () => {
    const view = buildView(undefined, sampleConfig(), VIEW_OPTS);
    assert.doesNotMatch(renderer.dnsmasqConf({ ...view, ...extra }), /dhcp-ignore/);
    assert.match(renderer.dnsmasqConf({ ...view, ...extra, ignore_installed_macs: true }), /^dhcp-ignore=tag:installed$/m);
  });

  it('refuses a value that would add a line, naming the tag', () => {
    const err = (() => {
      try {
        renderer.dnsmasqConf({ ...buildView(undefined, sampleConfig(), VIEW_OPTS), ...extra, tftp_root: '/srv/tftp\ndhcp-range=1.2.3.4' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof RenderError);
    assert.equal(err.template, 'dnsmasq_template.conf');
    assert.equal(err.tag, '{{tftp_root}}');
  });
});

describe('broken templates', () => {
  /** A copy of the shipped templates with one file changed. */
  async function templatesWith(file: string, change: (text: string) => string | undefined): Promise<{ templatesDir: string; snippetsDir: string }> {
    const dir = await mkdtemp(path.join(tmp, 'tpl-'));
    await cp(TEMPLATE_DIRS.templatesDir, path.join(dir, 'templates'), { recursive: true });
    await cp(TEMPLATE_DIRS.snippetsDir, path.join(dir, 'template_snippets'), { recursive: true });
    const target = path.join(dir, file);
    const changed = change(await readFile(target, 'utf8'));
    if (changed === undefined) await rm(target);
    else await writeFile(target, changed);
    return { templatesDir: path.join(dir, 'templates'), snippetsDir: path.join(dir, 'template_snippets') };
  }

  it('a missing template file fails at load, naming the file', async () => {
    await assert.rejects(loadTemplates(await templatesWith('templates/first_stage_script.sh', () => undefined)), /first_stage_script\.sh is missing/);
  });
  it('a missing network snippet fails at load, naming the file', async () => {
    await assert.rejects(loadTemplates(await templatesWith('template_snippets/ignition/net_bond.json', () => undefined)), /net_bond\.json is missing/);
  });
  it('a mustache syntax error fails at load, naming the file', async () => {
    await assert.rejects(loadTemplates(await templatesWith('templates/last_stage_cloudconfig.yaml', (t) => `${t}{{#open}}\n`)), (err: RenderError) => {
      assert.ok(err instanceof RenderError);
      assert.match(err.message, /last_stage_cloudconfig\.yaml.*syntax error/);
      return true;
    });
  });

  const broken: { title: string; file: string; change: (t: string) => string; message: RegExp; tag?: string }[] = [
    { title: 'invalid JSON', file: 'templates/last_stage_ignition.json', change: (t) => t.replace('"enabled": true }', '"enabled": true },'), message: /not valid JSON/ },
    { title: 'an unknown Ignition key', file: 'templates/last_stage_ignition.json', change: (t) => t.replace('"files": [', '"filez": [], "files": ['), message: /not a valid Ignition 3\.3\.0 config: \$\.storage: Unrecognized key: "filez"/ },
    { title: 'a typo in a tag', file: 'templates/last_stage_ignition.json', change: (t) => t.replace('{{host.serial}}', '{{host.serail}}'), message: /last_stage_ignition\.json.*\{\{host\.serail\}\} is not defined/, tag: '{{host.serail}}' },
    { title: 'a typo in the network partial', file: 'template_snippets/ignition/net_singlenic.json', change: (t) => t.replace('{{host.internal_addr}}', '{{host.internal_adr}}'), message: /partial "network".*\{\{host\.internal_adr\}\}/, tag: '{{host.internal_adr}}' },
  ];
  for (const c of broken) {
    it(`Ignition with ${c.title} gives a RenderError`, async () => {
      const r = await loadTemplates(await templatesWith(c.file, c.change));
      assert.throws(() => r.ignition(view('singlenic')), (err: RenderError) => {
        assert.ok(err instanceof RenderError, String(err));
        assert.equal(err.template, 'last_stage_ignition.json');
        assert.match(err.message, c.message);
        if (c.tag) assert.equal(err.tag, c.tag);
        return true;
      });
    });
  }

  it('cloud-config that is not YAML gives a RenderError', async () => {
    const r = await loadTemplates(await templatesWith('templates/last_stage_cloudconfig.yaml', (t) => t.replace('write_files:', 'write_files: [')));
    assert.throws(() => r.cloudConfig(view('singlenic')), /last_stage_cloudconfig\.yaml": output is not valid YAML/);
  });
  it('cloud-config without the #cloud-config line gives a RenderError', async () => {
    const r = await loadTemplates(await templatesWith('templates/last_stage_cloudconfig.yaml', (t) => t.replace('#cloud-config\n', '')));
    assert.throws(() => r.cloudConfig(view('singlenic')), /#cloud-config/);
  });
});
