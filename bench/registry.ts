/**
 * A plain-HTTP registry for benchmarks: Debian's docker-registry on a free
 * loopback port, its config and storage (DIR/config.yml, DIR/storage) under
 * a directory the caller chooses. stop() ends the process it started
 * (SIGTERM, SIGKILL after a grace period) and leaves DIR to the caller. pushBlob() uploads one blob
 * in a single PUT (monolithic upload).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { spawnBenchProcess } from './child-process';

export const BENCH_HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;

export interface BenchRegistry {
  readonly port: number;
  /** "127.0.0.1:PORT". */
  readonly host: string;
  /**
   * What the registry has served so far, summed from its access log (one
   * line per finished request: method, path, status, body bytes). A request
   * counts once it has finished.
   */
  served(): ServedCounters;
  logs(): string;
  stop(): Promise<void>;
}

export interface ServedCounters {
  /** Response body bytes of every request. */
  bytes: number;
  requests: number;
  /** Body bytes and requests of GETs under /blobs/ (layer and config data). */
  blobBytes: number;
  blobRequests: number;
}

/** `"GET /v2/repo/blobs/sha256:... HTTP/1.1" 206 4096`: the combined-log request, status and size. */
const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/;

/** Adds one access-log line to `c` (other lines are ignored). */
export function countAccessLine(c: ServedCounters, line: string): void {
  const m = ACCESS_LINE.exec(line);
  if (!m) return;
  const bytes = m[4] === '-' ? 0 : Number(m[4]);
  c.bytes += bytes;
  c.requests += 1;
  if (m[1] === 'GET' && (m[2] as string).includes('/blobs/')) {
    c.blobBytes += bytes;
    c.blobRequests += 1;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, BENCH_HOST, () => {
      const addr = server.address();
      const port = addr !== null && typeof addr === 'object' ? addr.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port bound'))));
    });
  });
}

/** One HTTP request; resolves with the status, headers and body. */
export function httpCall(
  url: string,
  method: string,
  body?: Buffer,
  agent?: http.Agent,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: body ? { 'content-length': body.length, 'content-type': 'application/octet-stream' } : {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function startBenchRegistry(dir: string): Promise<BenchRegistry> {
  const storageDir = path.join(dir, 'storage');
  await fs.mkdir(storageDir, { recursive: true });
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  await fs.writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${storageDir}`,
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: ${BENCH_HOST}:${port}`,
      '',
    ].join('\n'),
  );
  const served: ServedCounters = { bytes: 0, requests: 0, blobBytes: 0, blobRequests: 0 };
  const proc = spawnBenchProcess('docker-registry', ['serve', config], { graceMs: STOP_GRACE_MS, onLine: (line) => countAccessLine(served, line) });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (!proc.running()) throw new Error(`docker-registry did not start: ${proc.spawnError()?.message ?? proc.logs()}`);
    const status = await httpCall(`http://${BENCH_HOST}:${port}/v2/`, 'GET').then((r) => r.status, () => 0);
    if (status === 200) break;
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`docker-registry not ready within ${READY_TIMEOUT_MS} ms:\n${proc.logs()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, host: `${BENCH_HOST}:${port}`, served: () => ({ ...served }), logs: () => proc.logs(), stop: () => proc.stop() };
}

/** Uploads `data` to repository `repo` (POST, then one PUT); returns its digest. */
export async function pushBlob(registry: BenchRegistry, repo: string, data: Buffer): Promise<string> {
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const base = `http://${registry.host}`;
  const start = await httpCall(`${base}/v2/${repo}/blobs/uploads/`, 'POST');
  const location = start.headers.location;
  if (start.status !== 202 || !location) throw new Error(`blob upload start: HTTP ${start.status}`);
  const url = new URL(location, base);
  url.searchParams.set('digest', digest);
  const done = await httpCall(url.toString(), 'PUT', data);
  if (done.status !== 201) throw new Error(`blob upload: HTTP ${done.status} ${done.body.toString().slice(0, 200)}`);
  return digest;
}
