/**
 * convertAllPlatforms() on OCI layouts: which index entries are converted
 * (attestations and nested indexes skipped, with a warning), what the written
 * index lists, per-platform progress, and a single-manifest source.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertAllPlatforms, skipReason } from '../../converter/convert-index';
import type { ProgressSink } from '../../converter/types';
import { createZstdPool } from '../../native/zstd-pool';
import type { ZstdPool } from '../../native/types';
import { OciLayoutSource } from '../../oci/layout-source';
import { OciLayoutTarget } from '../../oci/layout-target';
import { recordingLogger } from '../oci/registry/image-fixture';
import { fixturePath } from '../helpers/umoci';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

const work = mkdtempSync(path.join(os.tmpdir(), 'nyd-convert-index-'));
let pool: ZstdPool;

beforeAll(() => {
  pool = createZstdPool({ threads: 1 });
});
afterAll(async () => {
  await pool?.destroy();
  rmSync(work, { recursive: true, force: true });
});

const json = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
const blob = (dir: string, digest: string) => path.join(dir, 'blobs', 'sha256', digest.slice(7));

/** A copy of the `multi` layout whose index also lists an attestation and a nested index. */
function layoutWithExtras(): { dir: string; children: string[] } {
  const dir = path.join(work, 'src');
  cpSync(fixturePath('multi'), dir, { recursive: true });
  const top = json(path.join(dir, 'index.json'));
  const nested = top.manifests[0];
  const index = json(blob(dir, nested.digest));
  const children = index.manifests.map((m: { digest: string }) => m.digest);
  index.manifests.push(
    {
      ...index.manifests[0],
      platform: { os: 'unknown', architecture: 'unknown' },
      annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
    },
    { mediaType: nested.mediaType, digest: nested.digest, size: nested.size },
  );
  const bytes = Buffer.from(JSON.stringify(index));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  writeFileSync(blob(dir, digest), bytes);
  top.manifests[0] = { ...nested, digest, size: bytes.length };
  writeFileSync(path.join(dir, 'index.json'), JSON.stringify(top));
  return { dir, children };
}

async function run(srcDir: string, srcTag: string, out: string, labels: string[], logger = recordingLogger()) {
  const source = await OciLayoutSource.open(srcDir, srcTag);
  const target = await OciLayoutTarget.open(out, 'x');
  const counting = (label: string): ProgressSink => {
    labels.push(label);
    return { layerStart: () => undefined, layerProgress: () => undefined, layerDone: () => undefined };
  };
  try {
    return await convertAllPlatforms(
      { source, target, pool, logger, progressFor: counting },
      { chunkSize: 1 << 20, compressionLevel: 3, prefetchPatterns: [], workDir: path.join(work, `tmp-${path.basename(out)}`) },
    );
  } finally {
    await source.close();
    await target.close();
  }
}

describe('convertAllPlatforms', () => {
  it('converts the image manifests of an index and skips attestations and nested indexes', async () => {
    const { dir, children } = layoutWithExtras();
    const out = path.join(work, 'out');
    const labels: string[] = [];
    const logger = recordingLogger();
    const result = await run(dir, 'latest', out, labels, logger);

    expect(labels).toEqual(['linux/amd64', 'linux/arm64/v8']);
    expect(result.images.map((i) => i.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    expect(logger.lines.filter((l) => l.includes('index entry not converted'))).toHaveLength(2);
    const top = json(path.join(out, 'index.json'));
    expect(top.manifests).toEqual([
      expect.objectContaining({ digest: result.manifest, mediaType: 'application/vnd.oci.image.index.v1+json' }),
    ]);
    const index = json(blob(out, result.manifest));
    expect(index.manifests.map((m: { digest: string }) => m.digest)).toEqual(result.images.map((i) => i.manifest));
    for (const [i, child] of index.manifests.entries()) {
      const manifest = json(blob(out, child.digest));
      expect(manifest.annotations['io.nyd.source.manifest']).toBe(children[i]);
      const config = json(blob(out, manifest.config.digest));
      expect(config.architecture).toBe(child.platform.architecture);
    }
    expect(result.targetBytes).toBe(result.images.reduce((n, i) => n + i.targetBytes, 0));
  });

  it('gives a single tagged manifest for a single-manifest source', async () => {
    const out = path.join(work, 'single');
    const labels: string[] = [];
    const result = await run(fixturePath('torture'), 'latest', out, labels);
    expect(result.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(result.images).toHaveLength(1);
    expect(result.images[0]?.platform).toBe('linux/amd64');
    expect(json(path.join(out, 'index.json')).manifests[0].digest).toBe(result.manifest);
  });

  it('refuses a chosen platform', async () => {
    const source = await OciLayoutSource.open(fixturePath('multi'), 'latest');
    const target = await OciLayoutTarget.open(path.join(work, 'refused-2'), 'x');
    await expect(
      convertAllPlatforms(
        { source, target, pool, logger: recordingLogger() },
        { chunkSize: 1 << 20, compressionLevel: 3, prefetchPatterns: [], workDir: path.join(work, 'tmp-r'), platform: { os: 'linux', architecture: 'amd64' } },
      ),
    ).rejects.toMatchObject({ code: 'NYD_INVALID_ARGUMENT' });
    await source.close();
    // The target was aborted: the layout directory it created is gone.
    expect(existsSync(path.join(work, 'refused-2'))).toBe(false);
  });
});

describe('skipReason', () => {
  const m = 'application/vnd.oci.image.manifest.v1+json';
  it.each([
    [{ mediaType: m, digest: 'sha256:x', size: 1, platform: { os: 'linux', architecture: 'amd64' } }, undefined],
    [{ mediaType: m, digest: 'sha256:x', size: 1 }, undefined],
    [{ mediaType: m, digest: 'sha256:x', size: 1, platform: { os: 'unknown', architecture: 'unknown' } }, 'platform unknown/unknown'],
    [{ mediaType: m, digest: 'sha256:x', size: 1, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } }, 'attestation-manifest entry'],
    [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: 'sha256:x', size: 1 }, 'nested index'],
    [{ mediaType: 'application/vnd.example+json', digest: 'sha256:x', size: 1 }, 'media type application/vnd.example+json'],
  ])('%j -> %s', (entry, reason) => {
    expect(skipReason(entry)).toBe(reason);
  });
});
