/**
 * Push and pull against a real registry (distribution 2.8) in each set-up:
 * plain HTTP, htpasswd Basic over TLS, and Bearer tokens.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { RegistryClient, registryTransport } from '../../../oci/registry/index';
import type { ImageRef, TransportOptions } from '../../../oci/types';
import { type RegistryMode, startRegistry, type TestRegistry } from '../../helpers/registry';
import { collect, makeTestImage, pullImage, pushImage, recordingLogger, type TestImage } from './image-fixture';

const MODES: RegistryMode[] = ['plain', 'basic-tls', 'token'];

describe.each(MODES)('registry set-up %s', (mode) => {
  let reg: TestRegistry;
  let dir: string;
  let image: TestImage;

  beforeAll(async () => {
    reg = await startRegistry({ mode });
    dir = mkdtempSync(join(tmpdir(), 'nyd-registry-test-'));
    image = await makeTestImage(dir);
  });
  afterAll(async () => {
    await reg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ref = (repository: string, tag?: string, digest?: string): ImageRef => ({ transport: 'registry', domain: reg.host, repository, tag, digest });
  const opts = (): TransportOptions => ({ ...reg.opts, creds: reg.creds });

  it('pushes an image and pulls it back byte-identically', async () => {
    const log = recordingLogger();
    const target = await registryTransport.openTarget(ref('nyd/roundtrip', 'v1'), { ...opts(), logger: log });
    await pushImage(target, image, target.tag);
    await target.close();

    const source = await registryTransport.openSource(ref('nyd/roundtrip', 'v1'), { ...opts(), logger: log });
    try {
      const pulled = await pullImage(source);
      expect(pulled.top.desc).toEqual(image.manifest.desc);
      expect(pulled.top.bytes.equals(image.manifest.bytes)).toBe(true);
      expect(pulled.config.equals(image.config.bytes)).toBe(true);
      expect(pulled.layer.equals(image.layer.bytes)).toBe(true);
    } finally {
      await source.close();
    }
    // By digest too.
    const byDigest = await registryTransport.openSource(ref('nyd/roundtrip', undefined, image.manifest.desc.digest), opts());
    expect((await byDigest.resolve()).bytes.equals(image.manifest.bytes)).toBe(true);
    await byDigest.close();
    if (reg.creds) {
      const secrets = [reg.creds.password, Buffer.from(`${reg.creds.username}:${reg.creds.password}`).toString('base64')];
      for (const line of log.lines) for (const s of secrets) expect(line).not.toContain(s);
    }
  });

  it('reads ranges of a blob with 206 answers', async () => {
    const source = await registryTransport.openSource(ref('nyd/roundtrip', 'v1'), opts());
    try {
      const { desc, bytes } = image.layer;
      for (const [offset, length] of [
        [0, 1],
        [1000, 5000],
        [desc.size - 777, 777],
        [12345, 65536 * 2 + 3],
      ] as const) {
        const got = await source.readRange(desc, offset, length);
        expect(got.equals(bytes.subarray(offset, offset + length))).toBe(true);
      }
      await expect(source.readRange(desc, desc.size - 10, 11)).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    } finally {
      await source.close();
    }
  });

  it('pushes an index whose manifest arrives as a blob, and resolves it', async () => {
    const target = await registryTransport.openTarget(ref('nyd/indexed', 'multi'), opts());
    await target.putBlobFile(image.layer.desc, image.layer.path);
    await target.putBlobBytes(image.config.desc, image.config.bytes);
    await target.putBlobBytes(image.manifest.desc, image.manifest.bytes);
    await target.putManifest(image.index.desc, image.index.bytes, 'multi');
    await target.close();
    const source = await registryTransport.openSource(ref('nyd/indexed', 'multi'), opts());
    const pulled = await pullImage(source);
    await source.close();
    expect(pulled.top.desc).toEqual(image.index.desc);
    expect(pulled.manifest.equals(image.manifest.bytes)).toBe(true);
    expect(pulled.layer.equals(image.layer.bytes)).toBe(true);
  });

  it('uses chunked uploads above the threshold', async () => {
    const log = recordingLogger();
    const big = await makeTestImage(dir, 300_000);
    const limits = { chunkedUploadThreshold: 100_000, uploadChunkBytes: 64 * 1024 };
    const target = await registryTransport.openTarget(ref('nyd/chunked', 'v1'), { ...opts(), logger: log, limits });
    await pushImage(target, big, 'v1');
    await target.close();
    const patches = log.lines.filter((l) => l.includes('"method":"PATCH"'));
    expect(patches.length).toBe(Math.ceil(big.layer.desc.size / (64 * 1024)));
    const source = await registryTransport.openSource(ref('nyd/chunked', 'v1'), opts());
    expect((await collect(await source.openBlob(big.layer.desc))).equals(big.layer.bytes)).toBe(true);
    await source.close();
  });

  it('mounts blobs from another repository of the same registry', async () => {
    const client = new RegistryClient({ domain: reg.host, opts: opts(), push: true });
    try {
      expect(await client.pushBlob('nyd/mounted', image.layer.desc, { path: image.layer.path }, { mountFrom: 'nyd/roundtrip' })).toBe('mounted');
      expect(await client.pushBlob('nyd/mounted', image.layer.desc, { path: image.layer.path })).toBe('exists');
      expect(await client.headBlob('nyd/mounted', image.layer.desc.digest)).toBe(image.layer.desc.size);
      // A blob the source repository lacks: the mount falls back to an upload.
      const other = await makeTestImage(dir, 1000);
      expect(await client.pushBlob('nyd/mounted', other.config.desc, { bytes: other.config.bytes }, { mountFrom: 'nyd/roundtrip' })).toBe('uploaded');
    } finally {
      await client.close();
    }
  });

  it.runIf(mode !== 'plain')('refuses without credentials, and with wrong ones, without leaking them', async () => {
    const anonymous = await registryTransport.openSource(ref('nyd/roundtrip', 'v1'), reg.opts);
    await expect(anonymous.resolve()).rejects.toMatchObject({ code: ErrorCode.Unauthorized });
    await anonymous.close();
    const wrongPassword = 'definitely-wrong-Pa55word';
    const log = recordingLogger();
    const wrong = await registryTransport.openSource(ref('nyd/roundtrip', 'v1'), { ...reg.opts, creds: { username: 'nyduser', password: wrongPassword }, logger: log });
    const err = await wrong.resolve().then(
      () => undefined,
      (e: unknown) => e,
    );
    await wrong.close();
    expect(err).toMatchObject({ code: ErrorCode.Unauthorized });
    const text = `${(err as Error).message}\n${JSON.stringify(err)}\n${(err as Error).stack}\n${log.lines.join('\n')}`;
    expect(text).not.toContain(wrongPassword);
    expect(text).not.toContain(Buffer.from(`nyduser:${wrongPassword}`).toString('base64'));
  });

  it('reports a missing tag as NotFound', async () => {
    const source = await registryTransport.openSource(ref('nyd/roundtrip', 'no-such-tag'), opts());
    await expect(source.resolve()).rejects.toMatchObject({ code: ErrorCode.NotFound });
    await source.close();
  });
});
