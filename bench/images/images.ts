/**
 * The realistic benchmark images (built by build-images.sh from Debian
 * packages, cached under bench/.cache/images/NAME/): where each one's OCI
 * layout is, and how long it took to build. ensureBenchImages() runs the
 * script, which builds only what is missing, and reads back build.json.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';

/** Every realistic image, in report order. Each runs /bench/run.sh, which ends by itself. */
export const BENCH_IMAGE_NAMES = ['python3', 'node', 'scipy', 'gcc'] as const;
export type BenchImageName = (typeof BENCH_IMAGE_NAMES)[number];

export interface BenchImage {
  name: string;
  /** OCI layout directory; the image is tagged `name`. */
  layoutDir: string;
  tag: string;
  /** `oci:DIR:TAG`, as nyd's CLI takes it. */
  ref: string;
  /** Seconds the build took (when it was built, possibly in an earlier run). */
  buildSeconds: number;
  layers: number;
  packages: string;
  /** True if this call found it in the cache. */
  cached: boolean;
}

export interface EnsureImagesOptions {
  /** bench/.cache: images go to CACHE/images. */
  cacheDir: string;
  names?: readonly string[];
  /** Receives the script's progress lines. */
  onLine?: (line: string) => void;
}

const SCRIPT = path.resolve(__dirname, '..', '..', '..', 'bench', 'images', 'build-images.sh');

interface BuildJson {
  name: string;
  seconds: number;
  layers: number;
  packages: string;
}

export async function ensureBenchImages(opts: EnsureImagesOptions): Promise<BenchImage[]> {
  const names = opts.names ?? BENCH_IMAGE_NAMES;
  const imagesDir = path.join(opts.cacheDir, 'images');
  const lines = await runScript([...names], imagesDir, opts.onLine ?? (() => undefined));
  const images: BenchImage[] = [];
  for (const name of names) {
    const dir = path.join(imagesDir, name);
    const build = JSON.parse(await fs.readFile(path.join(dir, 'build.json'), 'utf8')) as BuildJson;
    const layoutDir = path.join(dir, 'oci');
    images.push({
      name,
      layoutDir,
      tag: name,
      ref: `oci:${layoutDir}:${name}`,
      buildSeconds: build.seconds,
      layers: build.layers,
      packages: build.packages,
      cached: lines.some((l) => l.startsWith(`build-images: ${name} cached`)),
    });
  }
  return images;
}

function runScript(names: string[], imagesDir: string, onLine: (line: string) => void): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, ...names], {
      env: { ...process.env, NYD_BENCH_IMAGE_CACHE: imagesDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    let pending = '';
    child.stdout.on('data', (d: Buffer) => {
      pending += d.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        onLine(line);
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-16 * 1024);
      for (const line of d.toString().split('\n').filter(Boolean)) onLine(line);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (pending) lines.push(pending);
      if (code === 0) resolve(lines);
      else reject(new Error(`build-images.sh ${names.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}
