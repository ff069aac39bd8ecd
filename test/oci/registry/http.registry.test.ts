/**
 * Redirects to blob storage. A tiny front server plays a registry that wants
 * Basic auth and answers blob GETs with 307 to a separate "storage" server
 * (another origin, signed URL in the query), the way registries backed by
 * object stores do; everything else it forwards to a real registry. The
 * storage server refuses any request that carries Authorization, as S3 does.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { RegistryClient, registryTransport } from '../../../oci/registry/index';
import { forward } from '../../helpers/fault-proxy';
import { freePort, LOOPBACK } from '../../helpers/ports';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { collect, errorText, makeTestImage, pushImage, recordingLogger, type TestImage } from './image-fixture';

const REPO = 'nyd/redirected';
const USER = 'frontuser';
const PASSWORD = 'front-Secret-pw';
const SIGNATURE = 'X-Signature=sig-abcdef0123456789';

interface Seen {
  path: string;
  authorization: boolean;
  range: string | undefined;
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; port: number }> {
  const port = await freePort();
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(port, LOOPBACK, () => resolve()));
  return { server, port };
}

const close = (s: Server | undefined) =>
  new Promise<void>((resolve) => {
    if (!s) return resolve();
    s.closeAllConnections();
    s.close(() => resolve());
  });

let reg: TestRegistry;
let dir: string;
let image: TestImage;
let front: { server: Server; port: number };
let storage: { server: Server; port: number };
const frontSeen: Seen[] = [];
const storageSeen: Seen[] = [];
/** Digests the storage answers with 500 (to see what an error message says). */
const broken = new Set<string>();
let loopRedirects = false;

beforeAll(async () => {
  reg = await startRegistry({ mode: 'plain' });
  dir = mkdtempSync(join(tmpdir(), 'nyd-redirect-test-'));
  image = await makeTestImage(dir, 150_000);
  const target = await registryTransport.openTarget({ transport: 'registry', domain: reg.host, repository: REPO, tag: 'v1' }, reg.opts);
  await pushImage(target, image, 'v1');
  await target.close();
  const upstream = { host: LOOPBACK, port: reg.port };

  storage = await listen((req, res) => {
    const url = new URL(req.url ?? '/', 'http://storage');
    storageSeen.push({ path: url.pathname, authorization: req.headers.authorization !== undefined, range: req.headers.range });
    const digest = url.pathname.replace('/bucket/', '');
    if (req.headers.authorization !== undefined) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('Only one auth mechanism allowed');
      return;
    }
    if (!url.search.includes(SIGNATURE)) return void res.writeHead(403).end();
    if (broken.has(digest)) return void res.writeHead(500).end();
    void forward(req, res, upstream, { path: `/v2/${REPO}/blobs/${digest}` });
  });

  const expected = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  front = await listen((req, res) => {
    const path = req.url ?? '/';
    frontSeen.push({ path, authorization: req.headers.authorization !== undefined, range: req.headers.range });
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="front"', 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    const blob = /^\/v2\/.+\/blobs\/(sha256:[a-f0-9]{64})$/.exec(path);
    const local = /^\/local-storage\/(sha256:[a-f0-9]{64})$/.exec(path);
    if (req.method === 'GET' && blob && loopRedirects) {
      res.writeHead(302, { location: path }).end();
    } else if (req.method === 'GET' && blob && blob[1] === image.config.desc.digest) {
      // Same-origin, relative redirect.
      res.writeHead(307, { location: `/local-storage/${blob[1]}` }).end();
    } else if (req.method === 'GET' && blob) {
      res.writeHead(307, { location: `http://${LOOPBACK}:${storage.port}/bucket/${blob[1]}?${SIGNATURE}` }).end();
    } else if (local) {
      void forward(req, res, upstream, { path: `/v2/${REPO}/blobs/${local[1]}`, dropHeaders: ['authorization'] });
    } else {
      void forward(req, res, upstream, { dropHeaders: ['authorization'] });
    }
  });
});

afterAll(async () => {
  await close(front?.server);
  await close(storage?.server);
  await reg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('redirects to storage', () => {
  const creds = { username: USER, password: PASSWORD };
  const domain = () => `${LOOPBACK}:${front.port}`;

  it('follows 307 to another origin without the registry Authorization, keeping Range', async () => {
    frontSeen.length = 0;
    storageSeen.length = 0;
    const source = await registryTransport.openSource({ transport: 'registry', domain: domain(), repository: REPO, tag: 'v1' }, { plainHttp: true, creds });
    try {
      const top = await source.resolve();
      expect(top.bytes.equals(image.manifest.bytes)).toBe(true);
      expect((await source.fetch(image.config.desc)).equals(image.config.bytes)).toBe(true);
      expect((await collect(await source.openBlob(image.layer.desc))).equals(image.layer.bytes)).toBe(true);
      const part = await source.readRange(image.layer.desc, 70_000, 5000);
      expect(part.equals(image.layer.bytes.subarray(70_000, 75_000))).toBe(true);
    } finally {
      await source.close();
    }
    expect(storageSeen.length).toBe(2);
    expect(storageSeen.every((s) => !s.authorization)).toBe(true);
    expect(storageSeen.map((s) => s.range)).toEqual([undefined, 'bytes=70000-74999']);
    // The same-origin relative redirect for the config kept the credentials.
    const localHit = frontSeen.find((s) => s.path.startsWith('/local-storage/'));
    expect(localHit?.authorization).toBe(true);
  });

  it('keeps signed storage URLs out of errors and logs', async () => {
    broken.add(image.layer.desc.digest);
    const log = recordingLogger();
    const client = new RegistryClient({ domain: domain(), opts: { plainHttp: true, creds }, logger: log, limits: { maxAttempts: 2, backoffBaseMs: 10 } });
    try {
      const err = await collect(client.blobStream(REPO, image.layer.desc)).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: ErrorCode.Unavailable });
      const text = `${errorText(err)}\n${log.lines.join('\n')}`;
      expect(text).toContain('/bucket/');
      expect(text).not.toContain('sig-abcdef');
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(Buffer.from(`${USER}:${PASSWORD}`).toString('base64'));
    } finally {
      broken.clear();
      await client.close();
    }
  });

  it('stops after a bounded number of redirects', async () => {
    loopRedirects = true;
    const client = new RegistryClient({ domain: domain(), opts: { plainHttp: true, creds }, limits: { maxRedirects: 3 } });
    try {
      await expect(client.blobRange(REPO, image.layer.desc, 0, 10)).rejects.toMatchObject({
        code: ErrorCode.Unavailable,
        message: expect.stringContaining('more than 3 redirects'),
      });
    } finally {
      loopRedirects = false;
      await client.close();
    }
  });
});
