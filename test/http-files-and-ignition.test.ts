import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hostData, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

describe('image files', () => {
  let mayu: MayuProcess;
  const kernel = Buffer.from(Array.from({ length: 1000 }, (_, i) => i & 255));
  before(async () => {
    const workDir = await tempDir();
    const images = path.join(workDir, 'images');
    await mkdir(path.join(images, '835.13.0'), { recursive: true });
    await writeFile(path.join(images, 'vmlinuz'), kernel);
    await writeFile(path.join(images, '835.13.0', 'install_image.bin.bz2'), 'core image');
    await mkdir(path.join(images, 'debian-12'), { recursive: true });
    await writeFile(path.join(images, 'debian-12', 'install_image.bin.bz2'), 'debian bz2');
    await writeFile(path.join(images, 'debian-12', 'install_image.bin.zst'), 'debian zst');
    mayu = await startMayu({ workDir });
  });
  after(() => mayu.stop());

  it('serves the kernel with its length, and HEAD without a body', async () => {
    const get = await fetch(`${mayu.url}/images/vmlinuz`);
    assert.equal(get.headers.get('content-length'), '1000');
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), kernel);
    const head = await fetch(`${mayu.url}/images/vmlinuz`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '1000');
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  });

  const ranges: [string, number, string | null, [number, number] | null][] = [
    ['bytes=10-19', 206, 'bytes 10-19/1000', [10, 20]],
    ['bytes=990-', 206, 'bytes 990-999/1000', [990, 1000]],
    ['bytes=-5', 206, 'bytes 995-999/1000', [995, 1000]],
    ['bytes=2000-', 416, 'bytes */1000', null],
  ];
  for (const [range, status, contentRange, slice] of ranges) {
    it(`answers Range ${range} with ${status}`, async () => {
      const res = await fetch(`${mayu.url}/images/vmlinuz`, { headers: { range } });
      assert.equal(res.status, status);
      assert.equal(res.headers.get('content-range'), contentRange);
      const body = Buffer.from(await res.arrayBuffer());
      if (slice) assert.deepEqual(body, kernel.subarray(...slice));
    });
  }

  it("streams the install image of the host's own version, and names a missing one", async () => {
    await fetch(`${mayu.url}/first-stage-script/img-1`); // core profile: 835.13.0
    const res = await fetch(`${mayu.url}/images/img-1/install_image.bin.bz2`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'core image');
    for (let i = 2; i <= 4; i++) await fetch(`${mayu.url}/first-stage-script/img-${i}`); // img-4: default profile
    const missing = await fetch(`${mayu.url}/images/img-4/install_image.bin.bz2`);
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), 'file not found: images/1010.5.0/install_image.bin.bz2');
  });

  it("serves the installer's install_image.bin: the first of .zst, .gz, .bz2 the version has", async () => {
    await fetch(`${mayu.url}/first-stage-script/img-1`);
    assert.equal(await (await fetch(`${mayu.url}/images/img-1/install_image.bin`)).text(), 'core image');
    // A host whose image version has zstd and bzip2 images gets zstd on the new route, bzip2 on 0.11's.
    const script = await (await fetch(`${mayu.url}/first-stage-script/img-5`)).text();
    const token = /^REPORT_TOKEN='([0-9a-f]+)'$/m.exec(script)![1];
    await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('img-5', '52:54:00:00:10:05')) });
    const installed = await fetch(`${mayu.url}/admin/host/img-5/set_installed`, { method: 'PUT', headers: { authorization: `Bearer ${token}` } });
    assert.equal(installed.status, 202);
    const put = await fetch(`${mayu.url}/admin/host/img-5/boot_complete`, { method: 'PUT', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ ConnectedNIC: '', LastBoot: '0001-01-01T00:00:00Z', State: 'unknown', CoreOSVersion: 'debian-12' }) });
    assert.equal(put.status, 202, await put.clone().text());
    assert.equal(await (await fetch(`${mayu.url}/images/img-5/install_image.bin`)).text(), 'debian zst');
    assert.equal(await (await fetch(`${mayu.url}/images/img-5/install_image.bin.bz2`)).text(), 'debian bz2');
    const head = await fetch(`${mayu.url}/images/img-5/install_image.bin`, { method: 'HEAD' });
    assert.equal(head.headers.get('content-length'), '10');
    const missing = await fetch(`${mayu.url}/images/img-4/install_image.bin`);
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), 'file not found: images/1010.5.0/install_image.bin.bz2');
  });
});

describe('Ignition mode', () => {
  it('answers the final Ignition config that Debian ignition-validate accepts', async () => {
    const mayu = await startMayu({ args: ['--use-ignition'] });
    try {
      const script = await (await fetch(`${mayu.url}/first-stage-script/ign-1`)).text();
      assert.ok(script.includes('/final-ignition-config.json'), 'first stage posts to the Ignition route');
      const res = await fetch(`${mayu.url}/final-ignition-config.json`, { method: 'POST', body: JSON.stringify(hostData('ign-1', '52:54:00:00:10:01')) });
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.equal((JSON.parse(text) as { ignition: { version: string } }).ignition.version, '3.3.0');
      const file = path.join(mayu.workDir, 'ign.json');
      await writeFile(file, text);
      execFileSync('ignition-validate', [file]); // throws on a non-zero exit
    } finally {
      await mayu.stop();
    }
  });
});
