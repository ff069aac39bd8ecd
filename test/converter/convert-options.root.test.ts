/**
 * Options and outputs of `nyd convert` beyond the tree itself: platform
 * selection, the carried-over config, the OCI representation, progress on a
 * TTY and quiet on a pipe.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { nydOk, REPO } from '../helpers/cli';
import { fixturePath, readLayoutManifest } from '../helpers/umoci';
import { describeRoot } from '../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'nyd-opts-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function json(file: string): any {
  return JSON.parse(readFileSync(file, 'utf8'));
}

describeRoot('nyd convert', () => {
  it('picks the requested platform from an index', async () => {
    for (const [platform, arch] of [['linux/amd64', 'amd64'], ['linux/arm64', 'arm64']]) {
      const out = path.join(work, `multi-${arch}`);
      await nydOk(['convert', '--platform', platform as string, `oci:${fixturePath('multi')}:latest`, `oci:${out}:x`]);
      const image = await readLayoutManifest(out, 'x');
      expect(image.config.architecture).toBe(arch);
      const listing = (await nydOk(['inspect', '--json', `oci:${out}:x`])).stdout;
      expect(listing).toBeTruthy();
    }
  });

  it('keeps the image config and writes the documented OCI representation', async () => {
    const out = path.join(work, 'repr');
    await nydOk(['convert', `oci:${fixturePath('torture')}:latest`, `oci:${out}:x`]);
    const src = await readLayoutManifest(fixturePath('torture'), 'latest');
    const dst = await readLayoutManifest(out, 'x');
    expect(dst.config.config).toEqual(src.config.config);
    expect(dst.config.architecture).toBe(src.config.architecture);
    const layers = dst.manifest.layers;
    expect(layers).toHaveLength(src.manifest.layers.length + 1);
    for (const blob of layers.slice(0, -1)) {
      expect(blob.mediaType).toBe('application/vnd.oci.image.layer.nyd.blob.v1');
      expect(blob.annotations?.['containerd.io/snapshot/nyd-blob']).toBe('true');
    }
    const boot = layers[layers.length - 1];
    expect(boot?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(boot?.annotations?.['containerd.io/snapshot/nyd-bootstrap']).toBe('true');
    expect(dst.config.rootfs.diff_ids.slice(0, -1)).toEqual(layers.slice(0, -1).map((l: { digest: string }) => l.digest));
    // The bootstrap layer is an ordinary tar+gzip layer: GNU tar lists its one file.
    const file = path.join(out, 'blobs', 'sha256', (boot?.digest as string).slice(7));
    const list = spawnSync('tar', ['-tzvf', file], { encoding: 'utf8' });
    expect(list.status).toBe(0);
    expect(list.stdout.trim().split('\n')).toHaveLength(1);
    expect(list.stdout).toMatch(/nyd\/bootstrap$/m);
    expect(json(path.join(out, 'index.json')).manifests[0].annotations['org.opencontainers.image.ref.name']).toBe('x');
  });

  it('is quiet on a pipe and shows progress on a TTY', async () => {
    const piped = await nydOk(['convert', `oci:${fixturePath('torture')}:latest`, `oci:${path.join(work, 'pipe')}:x`]);
    expect(piped.stderr).toBe('');
    // script(1) gives the command a pseudo-terminal.
    const out = path.join(work, 'tty');
    const tty = spawnSync('script', ['-qfec', `node ${REPO}/bin/nyd convert oci:${fixturePath('torture')}:latest oci:${out}:x`, '/dev/null'], {
      encoding: 'utf8',
      cwd: REPO,
    });
    expect(tty.status).toBe(0);
    expect(tty.stdout).toMatch(/layer 3 .*100%/);
  });
});
