/**
 * A SnapshotStore that goes through the gRPC service: lets the lifecycle
 * suite run the same checks directly and over the wire. gRPC status codes are
 * turned back into nyd error kinds the way containerd's errdefs does.
 */
import * as grpc from '@grpc/grpc-js';
import { ErrorCode, NydError } from '../../../common/errors';
import type { WireInfo } from '../../../snapshotter/snapshots/grpc-service';
import type { Info, Kind, Labels, Mount, SnapshotStore, Usage, WalkFn } from '../../../snapshotter/snapshots/types';
import type { SnapshotsClient } from './helpers';

const CODE_OF_STATUS: Partial<Record<number, ErrorCode>> = {
  [grpc.status.NOT_FOUND]: ErrorCode.NotFound,
  [grpc.status.ALREADY_EXISTS]: ErrorCode.AlreadyExists,
  [grpc.status.FAILED_PRECONDITION]: ErrorCode.FailedPrecondition,
  [grpc.status.INVALID_ARGUMENT]: ErrorCode.InvalidArgument,
};

const KIND_OF_WIRE: Record<string, Kind> = { VIEW: 'view', ACTIVE: 'active', COMMITTED: 'committed' };

export function infoFromWire(w: WireInfo): Info {
  const date = (t: { seconds: number; nanos: number } | null) => new Date((t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6));
  const kind = KIND_OF_WIRE[w.kind];
  if (kind === undefined) throw new Error(`bad wire kind ${w.kind}`);
  return { name: w.name, parent: w.parent === '' ? undefined : w.parent, kind, labels: w.labels, created: date(w.created_at), updated: date(w.updated_at) };
}

export function grpcStore(client: SnapshotsClient): SnapshotStore {
  const call = async <T>(method: string, req: Record<string, unknown>): Promise<T> => {
    try {
      return await client.call<T>(method, req);
    } catch (err) {
      const status = (err as grpc.ServiceError).code;
      const code = CODE_OF_STATUS[status] ?? ErrorCode.Internal;
      throw new NydError(code, (err as grpc.ServiceError).details ?? String(err), { details: { status } });
    }
  };
  const mounts = (r: { mounts: { type: string; source: string; options: string[] }[] }): Mount[] =>
    r.mounts.map((m) => ({ type: m.type, source: m.source, options: m.options }));
  return {
    prepare: async (key, parent, labels?: Labels) => mounts(await call('Prepare', { key, parent: parent ?? '', labels: labels ?? {} })),
    view: async (key, parent, labels?: Labels) => mounts(await call('View', { key, parent: parent ?? '', labels: labels ?? {} })),
    mounts: async (key) => mounts(await call('Mounts', { key })),
    commit: async (name, key, labels?: Labels) => {
      await call('Commit', { name, key, labels: labels ?? {} });
    },
    remove: async (key) => {
      await call('Remove', { key });
    },
    stat: async (key) => infoFromWire((await call<{ info: WireInfo }>('Stat', { key })).info),
    update: async (info, fieldpaths = []) =>
      infoFromWire((await call<{ info: WireInfo }>('Update', { info: { name: info.name, labels: info.labels }, update_mask: { paths: fieldpaths } })).info),
    usage: async (key): Promise<Usage> => call<Usage>('Usage', { key }),
    walk: async (filters, fn: WalkFn) => {
      let batches: WireInfo[][];
      try {
        batches = await client.list([...filters]);
      } catch (err) {
        const status = (err as grpc.ServiceError).code;
        throw new NydError(CODE_OF_STATUS[status] ?? ErrorCode.Internal, (err as Error).message);
      }
      for (const b of batches) for (const w of b) await fn(infoFromWire(w));
    },
    cleanup: async () => {
      await call('Cleanup', {});
    },
    close: async () => client.close(),
  };
}
