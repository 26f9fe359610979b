// The images the VM tests boot: built (or found up to date) by the same code as
// `npm run build:images`, into the project's images/ with downloads cached in .cache/images/.
import path from 'node:path';
import { buildImages, type BuildInfo } from '../../scripts/images/build.ts';
import { buildDebianOs, type DebianOsInfo } from '../../scripts/images/debian-os.ts';
import { ROOT } from './mayu-process.ts';

export const IMAGES_DIR = path.join(ROOT, 'images');
export const IMAGES_CACHE_DIR = path.join(ROOT, '.cache/images');

export async function ensureNetbootImages(version: string, log?: (line: string) => void): Promise<BuildInfo> {
  const { info } = await buildImages({ version, imagesDir: IMAGES_DIR, cacheDir: IMAGES_CACHE_DIR, log });
  return info;
}

/** The Debian 12 OS image (`npm run build:images -- --os debian`; root: mmdebstrap), built or found up to date. */
export async function ensureDebianOsImage(version: string, log?: (line: string) => void): Promise<DebianOsInfo> {
  const { info } = await buildDebianOs({ version, imagesDir: IMAGES_DIR, cacheDir: IMAGES_CACHE_DIR, log });
  return info;
}
