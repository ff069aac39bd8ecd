/**
 * The status socket: its location, the one-line JSON protocol, its bounds,
 * claiming the socket path, and the client's errors.
 */
import { promises as fsp } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import {
  MAX_REQUEST_BYTES,
  mountKeyPath,
  requestStatus,
  statusSocketPath,
  StatusServer,
  type StatusHandlers,
} from '../../../engine/mount/status-server';

let dir: string;
let sock: string;
const servers: StatusServer[] = [];

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'nyd-status-'));
  sock = statusSocketPath(path.join(dir, 'run'), path.join(dir, 'mnt'));
});

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

async function listen(handlers: Partial<StatusHandlers> = {}): Promise<{ server: StatusServer; shutdowns: number[] }> {
  const shutdowns: number[] = [];
  const server = await StatusServer.listen(sock, {
    status: () => ({ pid: 42, stats: { fetchBytes: 7 } }),
    shutdown: async () => {
      await new Promise((r) => setTimeout(r, 50));
      shutdowns.push(Date.now());
      return { unmounted: true };
    },
    ...handlers,
  });
  servers.push(server);
  return { server, shutdowns };
}

/** Sends raw bytes, returns what comes back before the server closes. */
function raw(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(sock);
    let got = '';
    c.on('data', (d) => (got += d.toString()));
    c.on('end', () => resolve(got));
    c.on('close', () => resolve(got));
    c.on('error', reject);
    c.write(bytes);
  });
}

describe('status socket location', () => {
  it('is keyed by the mountpoint, the same for equivalent spellings, different for others', async () => {
    const a = mountKeyPath('/run/nyd/mounts', path.join(dir, 'mnt'));
    expect(a).toMatch(/^\/run\/nyd\/mounts\/[0-9a-f]{16}$/);
    expect(mountKeyPath('/run/nyd/mounts', path.join(dir, 'x', '..', 'mnt'))).toBe(a);
    await fsp.symlink(dir, path.join(os.tmpdir(), path.basename(dir) + '-link'));
    try {
      expect(mountKeyPath('/run/nyd/mounts', path.join(`${dir}-link`, 'mnt'))).toBe(a);
    } finally {
      await fsp.rm(`${dir}-link`);
    }
    expect(mountKeyPath('/run/nyd/mounts', path.join(dir, 'other'))).not.toBe(a);
  });
});

describe('StatusServer', () => {
  it('answers status and shutdown, the latter once the handler is done', async () => {
    const { shutdowns } = await listen();
    expect((await fsp.stat(sock)).mode & 0o777).toBe(0o600);
    expect(await requestStatus(sock, 'status')).toEqual({ ok: true, pid: 42, stats: { fetchBytes: 7 } });
    const before = Date.now();
    expect(await requestStatus(sock, 'shutdown')).toEqual({ ok: true, unmounted: true });
    expect(shutdowns).toHaveLength(1);
    expect(shutdowns[0]).toBeGreaterThanOrEqual(before);
  });

  it('answers bad requests with an error and stays up', async () => {
    await listen();
    expect(JSON.parse(await raw('{"op":"explode"}\n'))).toMatchObject({ ok: false, code: ErrorCode.InvalidArgument });
    expect(JSON.parse(await raw('not json\n'))).toMatchObject({ ok: false });
    expect(JSON.parse(await raw('x'.repeat(MAX_REQUEST_BYTES + 10)))).toMatchObject({ ok: false, code: ErrorCode.InvalidArgument });
    expect((await requestStatus(sock, 'status')).ok).toBe(true);
  });

  it('a failing handler becomes an error answer', async () => {
    await listen({ status: () => {
      throw new Error('broken counters');
    } });
    expect(await requestStatus(sock, 'status')).toMatchObject({ ok: false, error: 'broken counters' });
  });

  it('claims the path: a live server is AlreadyExists, a dead one\'s socket file is replaced', async () => {
    await listen();
    await expect(StatusServer.listen(sock, { status: () => ({}), shutdown: async () => ({}) })).rejects.toMatchObject({
      code: ErrorCode.AlreadyExists,
    });
    await servers.pop()!.close();
    await expect(fsp.stat(sock)).rejects.toMatchObject({ code: 'ENOENT' });

    // A socket file left by a dead server: keep a hard link while the server closes (close unlinks).
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(sock, () => r()));
    await fsp.link(sock, `${sock}.keep`);
    await new Promise<void>((r) => dead.close(() => r()));
    await fsp.rename(`${sock}.keep`, sock);
    await expect(requestStatus(sock, 'status')).rejects.toMatchObject({ code: ErrorCode.NotFound });
    await listen();
    expect((await requestStatus(sock, 'status')).ok).toBe(true);
  });

  it('the client reports NotFound when nothing is there and Timeout when nothing answers', async () => {
    await expect(requestStatus(sock, 'status')).rejects.toMatchObject({ code: ErrorCode.NotFound });
    await fsp.mkdir(path.dirname(sock), { recursive: true });
    const mute = createServer((c) => c.resume());
    await new Promise<void>((r) => mute.listen(sock, () => r()));
    try {
      await expect(requestStatus(sock, 'status', 200)).rejects.toMatchObject({ code: ErrorCode.Timeout });
    } finally {
      await new Promise<void>((r) => mute.close(() => r()));
    }
  });
});
