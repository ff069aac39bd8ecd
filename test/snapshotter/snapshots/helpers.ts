/**
 * Shared parts of the snapshotter tests: mounting what the store returns
 * with mount(8), a promise-based grpc-js client for the snapshot service,
 * and a fake remote-layer handler.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { loadSnapshotsProto } from '../../../snapshotter/snapshots/proto';
import type { WireInfo } from '../../../snapshotter/snapshots/grpc-service';
import type { Mount, RemoteLayerHandler, RemotePrepare, RemoteSnapshot } from '../../../snapshotter/snapshots/types';

export const execFileP = promisify(execFile);

export const isRoot = process.getuid?.() === 0;

/** Mount points this process created and has not unmounted yet (for afterAll). */
const mounted = new Set<string>();

/** Mount `mounts` (as returned by the store) at `target` with mount(8). */
export async function mountAll(mounts: readonly Mount[], target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  for (const m of mounts) {
    await execFileP('mount', ['-t', m.type, '-o', m.options.join(','), m.source, target]);
    mounted.add(target);
  }
}

export async function unmount(target: string): Promise<void> {
  await execFileP('umount', [target]);
  mounted.delete(target);
}

/** Lazily unmount whatever mountAll() mounted and is still there. */
export async function unmountLeftovers(): Promise<void> {
  for (const t of [...mounted].reverse()) {
    await execFileP('umount', ['-l', t]).catch(() => undefined);
    mounted.delete(t);
  }
}

/** Mount points at or below `dir` in /proc/self/mountinfo. */
export async function mountPointsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined && (p === dir || p.startsWith(dir + path.sep)));
}

export interface SnapshotsClient {
  call<T = Record<string, unknown>>(method: string, req: Record<string, unknown>): Promise<T>;
  /** List and return the infos per response message. */
  list(filters: string[]): Promise<WireInfo[][]>;
  close(): void;
}

export function snapshotsClient(address: string): SnapshotsClient {
  const { Client } = loadSnapshotsProto();
  const client = new Client(`unix:${address}`, grpc.credentials.createInsecure());
  const methods = client as unknown as Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void>;
  return {
    call<T>(method: string, req: Record<string, unknown>): Promise<T> {
      return new Promise((resolve, reject) => {
        const fn = methods[method];
        if (fn === undefined) throw new Error(`no method ${method}`);
        fn.call(client, { snapshotter: 'nyd', ...req }, (err, res) => (err ? reject(err) : resolve(res as T)));
      });
    },
    list(filters: string[]): Promise<WireInfo[][]> {
      return new Promise((resolve, reject) => {
        const batches: WireInfo[][] = [];
        const stream = (client as unknown as { List(req: unknown): grpc.ClientReadableStream<{ info: WireInfo[] }> }).List({ snapshotter: 'nyd', filters });
        stream.on('data', (msg) => batches.push(msg.info));
        stream.on('error', reject);
        stream.on('end', () => resolve(batches));
      });
    },
    close: () => client.close(),
  };
}

/** The label the fake handler claims layers by (a containerd.io/snapshot/ label, so containerd passes it on). */
export const FAKE_REMOTE_LABEL = 'containerd.io/snapshot/nyd-test.remote';

export interface FakeRemote extends RemoteLayerHandler {
  readonly claimed: RemotePrepare[];
  readonly released: RemoteSnapshot[];
  /** Every Prepare's labels, for the report on what containerd passes. */
  readonly seenLabels: Record<string, string>[];
}

/**
 * A remote handler that claims layers labelled FAKE_REMOTE_LABEL=true (and
 * commits them with an empty directory) or =decline (claims, then declines:
 * the store falls back to an ordinary Prepare). With `lowerBase`, lowerDir()
 * stands in for a FUSE mountpoint: <lowerBase>/<id>, holding a file
 * "remote-<id>", is stacked instead of the snapshot's own directory.
 */
export function fakeRemote(lowerBase?: string): FakeRemote {
  const claimed: RemotePrepare[] = [];
  const released: RemoteSnapshot[] = [];
  const seenLabels: Record<string, string>[] = [];
  return {
    claimed,
    released,
    seenLabels,
    claims(req) {
      seenLabels.push({ ...req.labels });
      const v = req.labels[FAKE_REMOTE_LABEL];
      return v === 'true' || v === 'decline';
    },
    async prepareRemote(req) {
      claimed.push(req);
      return { committed: req.labels[FAKE_REMOTE_LABEL] === 'true' };
    },
    lowerDir(snap) {
      if (lowerBase === undefined) return undefined;
      const dir = path.join(lowerBase, snap.id);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `remote-${snap.id}`), snap.name);
      return dir;
    },
    async release(snap) {
      released.push(snap);
    },
  };
}
