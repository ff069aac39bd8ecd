/**
 * The gRPC edge itself: status codes as containerd's errdefs expects them,
 * List streaming in batches, wire shapes (timestamps, kinds, mounts), the
 * per-op log and metrics hook, and the server's socket handling.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf, ErrorCode } from '../../../common/errors';
import type { Logger } from '../../../common/logger';
import { LIST_BATCH } from '../../../snapshotter/snapshots/grpc-service';
import { startSnapshotterServer, type SnapshotterServer } from '../../../snapshotter/snapshots/server';
import { snapshotsClient, type SnapshotsClient } from './helpers';

function captureLogger(entries: Record<string, unknown>[]): Logger {
  const log = (obj: object | string, msg?: string) => void entries.push(typeof obj === 'string' ? { msg: obj } : { ...obj, msg });
  const logger: Logger = { trace: log, debug: log, info: log, warn: log, error: log, child: () => logger };
  return logger;
}

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
  throw new Error('expected a gRPC error');
}

describe('snapshots gRPC service', () => {
  let dir: string;
  let server: SnapshotterServer;
  let client: SnapshotsClient;
  const ops: [string, boolean, string][] = [];
  const logs: Record<string, unknown>[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nyd-grpc-'));
    server = await startSnapshotterServer({
      root: path.join(dir, 'root'),
      address: path.join(dir, 'run', 'snap.sock'),
      logger: captureLogger(logs),
      onOp: (name, seconds, ok, code) => {
        expect(seconds).toBeGreaterThanOrEqual(0);
        ops.push([name, ok, code]);
      },
    });
    client = snapshotsClient(server.address);
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('maps error kinds to the status codes containerd maps back', async () => {
    expect(await statusOf(client.call('Stat', { key: 'missing' }))).toBe(grpc.status.NOT_FOUND);
    await client.call('Prepare', { key: 'k1', parent: '', labels: {} });
    expect(await statusOf(client.call('Prepare', { key: 'k1', parent: '', labels: {} }))).toBe(grpc.status.ALREADY_EXISTS);
    expect(await statusOf(client.call('Prepare', { key: 'k2', parent: 'k1', labels: {} }))).toBe(grpc.status.INVALID_ARGUMENT);
    await client.call('Commit', { key: 'k1', name: 'k1-done', labels: {} });
    await client.call('Prepare', { key: 'k2', parent: 'k1-done', labels: {} });
    expect(await statusOf(client.call('Remove', { key: 'k1-done' }))).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await statusOf(client.list(['kind=='])).catch(() => -1)).toBe(grpc.status.INVALID_ARGUMENT);
    expect(ops).toContainEqual(['Stat', false, 'NOT_FOUND']);
    expect(ops).toContainEqual(['Commit', true, 'OK']);
    expect(ops).toContainEqual(['List', false, 'INVALID_ARGUMENT']);
    const stat = logs.find((e) => e.op === 'Stat');
    expect(stat).toMatchObject({ key: 'missing', code: 'NOT_FOUND' });
    expect(typeof stat?.ms).toBe('number');
  });

  it('sends wire shapes containerd decodes: kinds, timestamps, mounts, usage', async () => {
    const before = Math.floor(Date.now() / 1000);
    const prep = await client.call<{ mounts: { type: string; source: string; target: string; options: string[] }[] }>('View', {
      key: 'w1',
      parent: 'k1-done',
      labels: { 'containerd.io/snapshot/x': 'y' },
    });
    expect(prep.mounts).toEqual([{ type: 'bind', source: expect.stringMatching(/\/snapshots\/\d+\/fs$/), target: '', options: ['ro', 'rbind'] }]);
    const { info } = await client.call<{ info: Record<string, unknown> }>('Stat', { key: 'w1' });
    expect(info).toMatchObject({ name: 'w1', parent: 'k1-done', kind: 'VIEW', labels: { 'containerd.io/snapshot/x': 'y' } });
    const created = info.created_at as { seconds: number; nanos: number };
    expect(created.seconds).toBeGreaterThanOrEqual(before);
    expect(created.seconds).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    expect(created.nanos).toBeGreaterThanOrEqual(0);
    expect(created.nanos).toBeLessThan(1e9);
    const updated = await client.call<{ info: { labels: Record<string, string> } }>('Update', {
      info: { name: 'w1', labels: { extra: '1' } },
      update_mask: { paths: ['labels.extra'] },
    });
    expect(updated.info.labels).toEqual({ 'containerd.io/snapshot/x': 'y', extra: '1' });
    const usage = await client.call<{ size: number; inodes: number }>('Usage', { key: 'k2' });
    expect(usage.inodes).toBe(1);
    expect(usage.size).toBeGreaterThan(0);
    await client.call('Cleanup', {});
  });

  it(`streams List in batches of ${LIST_BATCH}, honouring filters`, async () => {
    const n = 2 * LIST_BATCH + 17;
    for (let i = 0; i < n; i++) await client.call('View', { key: `many-${i}`, parent: '', labels: i % 2 ? { odd: 'yes' } : {} });
    const all = await client.list(['name~=^many-']);
    expect(all.map((b) => b.length)).toEqual([LIST_BATCH, LIST_BATCH, 17]);
    expect(new Set(all.flat().map((i) => i.name)).size).toBe(n);
    const odd = await client.list(['name~=^many-,labels.odd==yes']);
    expect(odd.flat()).toHaveLength(Math.floor(n / 2));
    expect(await client.list(['name==nothing-like-this'])).toEqual([]);
  });

  it('refuses to take over a live socket or a non-socket, and replaces a stale one', async () => {
    const other = path.join(dir, 'root2');
    expect(codeOf(await startSnapshotterServer({ root: other, address: server.address }).catch((e: unknown) => e))).toBe(ErrorCode.FailedPrecondition);
    const file = path.join(dir, 'not-a-socket');
    await writeFile(file, '');
    expect(codeOf(await startSnapshotterServer({ root: other, address: file }).catch((e: unknown) => e))).toBe(ErrorCode.FailedPrecondition);
    // A socket file nobody listens on, as a killed server leaves it.
    const stale = path.join(dir, 'stale.sock');
    execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', stale]);
    expect(existsSync(stale)).toBe(true);
    const second = await startSnapshotterServer({ root: other, address: stale });
    const c = snapshotsClient(stale);
    expect(await statusOf(c.call('Stat', { key: 'x' }))).toBe(grpc.status.NOT_FOUND);
    c.close();
    await second.close();
    await second.close();
    expect(existsSync(stale)).toBe(false);
  });
});
