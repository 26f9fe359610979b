// `npm run build:images [-- --version V] [--images-dir D] [--cache-dir C] [--firmware PKG[,PKG...]] [--force]`:
// the installer (vmlinuz, initrd.cpio.gz) and the test OS image for version V (default: the
// default_coreos_version of ./config.yaml). See build.ts.
// `--os debian [--debian-version debian-12] [--sources FILE]`: also the Debian 12 OS image
// (root, mmdebstrap), images/<debian-version>/install_image.bin.zst. See debian-os.ts.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as yaml from 'js-yaml';
import { buildImages } from './build.ts';
import { buildDebianOs } from './debian-os.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

const { values } = parseArgs({
  options: {
    version: { type: 'string' },
    'images-dir': { type: 'string', default: path.join(ROOT, 'images') },
    'cache-dir': { type: 'string', default: path.join(ROOT, '.cache/images') },
    force: { type: 'boolean', default: false },
    os: { type: 'string', default: 'test' },
    'debian-version': { type: 'string', default: 'debian-12' },
    sources: { type: 'string' },
    // Debian firmware packages (non-free-firmware, enabled in apt's sources by the operator).
    firmware: { type: 'string', default: process.env['MAYU_FIRMWARE_PACKAGES'] ?? '' },
  },
});

function defaultVersion(): string {
  const config = yaml.load(readFileSync(path.join(ROOT, 'config.yaml'), 'utf8')) as { default_coreos_version?: unknown };
  if (typeof config?.default_coreos_version !== 'string') throw new Error('config.yaml has no default_coreos_version: pass --version');
  return config.default_coreos_version;
}

const started = performance.now();
try {
  const imagesDir = path.resolve(values['images-dir']);
  const { info, skipped } = await buildImages({
    version: values.version ?? defaultVersion(),
    imagesDir,
    cacheDir: path.resolve(values['cache-dir']),
    force: values.force,
    firmwarePackages: values.firmware.split(',').map((p) => p.trim()).filter(Boolean),
    log: (line) => console.log(line),
  });
  console.log(skipped ? `images in ${imagesDir} are up to date (${info.fingerprint.slice(0, 12)})` : `built images in ${imagesDir} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  for (const [file, bytes] of Object.entries(info.sizes)) console.log(`  ${file.padEnd(36)} ${(bytes / 1e6).toFixed(2).padStart(7)} MB`);
  if (values.os === 'debian') {
    const debianStarted = performance.now();
    const debian = await buildDebianOs({
      version: values['debian-version'],
      imagesDir,
      cacheDir: path.resolve(values['cache-dir']),
      sources: values.sources,
      force: values.force,
      log: (line) => console.log(line),
    });
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    console.log(`${debian.skipped ? 'Debian OS image is up to date' : 'built the Debian OS image'} in ${((performance.now() - debianStarted) / 1000).toFixed(1)} s: ${debian.info.version}/install_image.bin.zst`);
    console.log(`  raw ${mb(debian.info.sizes.raw)}, zstd ${mb(debian.info.sizes.compressed)}, root content ${mb(debian.info.sizes.rootContent)}, kernel ${mb(debian.info.sizes.kernel)}, initramfs ${mb(debian.info.sizes.initrd)}`);
  } else if (values.os !== 'test') {
    throw new Error(`--os ${values.os}: test (default) or debian`);
  }
} catch (err) {
  console.error(`build-images: ${(err as Error).message}`);
  process.exit(1);
}
