/**
 * openLazyImage over a real converted image (an OCI layout written by
 * `nyd convert`): what it reads (manifest and bootstrap only), what it
 * returns, and what it refuses.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { OciLayoutSource } from '../../../oci/layout-source';
import type { Descriptor, Fetched, ImageSource } from '../../../oci/types';
import { checkBlobTable, openLazyImage } from '../../../engine/mount/lazy-image';
import { nydOk } from '../../helpers/cli';
import { fixturePath } from '../../helpers/umoci';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

const work = mkdtempSync(path.join(os.tmpdir(), 'nyd-lazyimage-'));
const layout = path.join(work, 'nyd');

beforeAll(async () => {
  await nydOk(['convert', `oci:${fixturePath('torture')}:latest`, `oci:${layout}:x`]);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Records what is asked of the source. */
function recording(source: ImageSource): { source: ImageSource; fetched: Descriptor[] } {
  const fetched: Descriptor[] = [];
  return {
    fetched,
    source: {
      name: source.name,
      resolve: (): Promise<Fetched> => source.resolve(),
      fetch: (desc, limit) => {
        fetched.push(desc);
        return source.fetch(desc, limit);
      },
      openBlob: () => Promise.reject(new Error('no blob stream expected')),
      readRange: () => Promise.reject(new Error('no blob range expected')),
      close: () => source.close(),
    },
  };
}

describe('openLazyImage', () => {
  it('reads the manifest and the bootstrap only, and aligns the blob layers with the blob table', async () => {
    const inner = await OciLayoutSource.open(layout, 'x');
    const { source, fetched } = recording(inner);
    const image = await openLazyImage(source);
    await source.close();
    expect(fetched.map((d) => d.digest)).toEqual([image.bootstrapDesc.digest]);
    expect(image.name).toBe(`oci:${layout}:x`);
    expect(image.blobs.map((b) => b.digest)).toEqual(image.bootstrap.blobs.map((b) => b.digest));
    expect(image.blobs).toHaveLength(image.manifest.layers.length - 1);
    expect(image.blobBytes).toBe(image.bootstrap.blobs.reduce((n, b) => n + b.size, 0));
    expect(image.manifestDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(image.bootstrap.inodes.length).toBeGreaterThan(1000);
  });

  it('refuses an image that is not a nyd image', async () => {
    const source = await OciLayoutSource.open(fixturePath('torture'), 'latest');
    await expect(openLazyImage(source)).rejects.toMatchObject({ code: ErrorCode.InvalidArgument, message: expect.stringContaining('not a nyd image') });
    await source.close();
  });

  it('refuses a manifest whose blob layers do not match the bootstrap', async () => {
    const source = await OciLayoutSource.open(layout, 'x');
    const image = await openLazyImage(source);
    await source.close();
    const layers = [...image.manifest.layers];
    const swapped = { ...image.manifest, layers: [layers[1], layers[0], ...layers.slice(2)] };
    expect(() => checkBlobTable(swapped, image.bootstrap)).toThrow(expect.objectContaining({ code: ErrorCode.DataCorrupt }));
    const shorter = { ...image.manifest, layers: layers.slice(1) };
    expect(() => checkBlobTable(shorter, image.bootstrap)).toThrow(/bootstrap lists \d+ blobs/);
    const resized = { ...image.manifest, layers: [{ ...layers[0], size: layers[0].size + 1 }, ...layers.slice(1)] };
    expect(() => checkBlobTable(resized, image.bootstrap)).toThrow(/does not match/);
  });
});
