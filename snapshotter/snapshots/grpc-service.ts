/**
 * containerd's snapshot service (containerd.services.snapshots.v1.Snapshots)
 * over a SnapshotStore: wire messages in, store calls, wire messages out.
 *
 * This is the one edge where error kinds become gRPC status codes, mirroring
 * containerd's errdefs so that containerd turns them back into the same kinds:
 *   NotFound -> NOT_FOUND, AlreadyExists -> ALREADY_EXISTS,
 *   FailedPrecondition -> FAILED_PRECONDITION, InvalidArgument -> INVALID_ARGUMENT,
 *   Unsupported -> UNIMPLEMENTED, Unavailable -> UNAVAILABLE,
 *   Timeout -> DEADLINE_EXCEEDED, Canceled -> CANCELLED, anything else -> UNKNOWN.
 * AlreadyExists from Prepare is how a remote layer is reported (types.ts).
 *
 * Every call is logged with its latency (debug on success or an expected
 * error, error for UNKNOWN) and reported to the optional onOp observer.
 */
import * as grpc from '@grpc/grpc-js';
import { canceled, codeOf, ErrorCode } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import type { Info, Kind, Labels, Mount, SnapshotStore } from './types';

/** Infos per List response message (containerd's own service batches 100). */
export const LIST_BATCH = 100;

/** Metrics hook: called once per RPC with its duration and outcome (gRPC status name, "OK" on success). */
export type OpObserver = (name: string, seconds: number, ok: boolean, code: string) => void;

export interface SnapshotsServiceOptions {
  readonly logger?: Logger;
  readonly onOp?: OpObserver;
}

type WireKind = 'UNKNOWN' | 'VIEW' | 'ACTIVE' | 'COMMITTED';

interface WireTimestamp {
  seconds: number;
  nanos: number;
}

export interface WireInfo {
  name: string;
  parent: string;
  kind: WireKind;
  created_at: WireTimestamp | null;
  updated_at: WireTimestamp | null;
  labels: Record<string, string>;
}

interface WireMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

interface KeyRequest {
  key: string;
}

interface CreateRequest extends KeyRequest {
  parent: string;
  labels: Record<string, string>;
}

const KIND_TO_WIRE: Record<Kind, WireKind> = { view: 'VIEW', active: 'ACTIVE', committed: 'COMMITTED' };

const STATUS_OF: Partial<Record<ErrorCode, grpc.status>> = {
  [ErrorCode.NotFound]: grpc.status.NOT_FOUND,
  [ErrorCode.AlreadyExists]: grpc.status.ALREADY_EXISTS,
  [ErrorCode.FailedPrecondition]: grpc.status.FAILED_PRECONDITION,
  [ErrorCode.InvalidArgument]: grpc.status.INVALID_ARGUMENT,
  [ErrorCode.Unsupported]: grpc.status.UNIMPLEMENTED,
  [ErrorCode.Unavailable]: grpc.status.UNAVAILABLE,
  [ErrorCode.Timeout]: grpc.status.DEADLINE_EXCEEDED,
  [ErrorCode.Canceled]: grpc.status.CANCELLED,
};

/** The gRPC status for an error of any kind. */
export function grpcStatusOf(err: unknown): grpc.status {
  return STATUS_OF[codeOf(err)] ?? grpc.status.UNKNOWN;
}

function toServiceError(err: unknown): Partial<grpc.ServiceError> {
  const message = err instanceof Error ? err.message : String(err);
  return { code: grpcStatusOf(err), details: message, message };
}

function timestamp(d: Date): WireTimestamp {
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

export function infoToWire(info: Info): WireInfo {
  return {
    name: info.name,
    parent: info.parent ?? '',
    kind: KIND_TO_WIRE[info.kind],
    created_at: timestamp(info.created),
    updated_at: timestamp(info.updated),
    labels: { ...info.labels },
  };
}

function mountsToWire(mounts: readonly Mount[]): { mounts: WireMount[] } {
  return { mounts: mounts.map((m) => ({ type: m.type, source: m.source, target: '', options: [...m.options] })) };
}

function labelsOf(m: Record<string, string> | undefined | null): Labels {
  return m ?? {};
}

function parentOf(p: string | undefined | null): string | undefined {
  return p === undefined || p === null || p === '' ? undefined : p;
}

/** The service implementation for grpc.Server.addService(loadSnapshotsProto().service, ...). */
export function createSnapshotsService(store: SnapshotStore, opts: SnapshotsServiceOptions = {}): grpc.UntypedServiceImplementation {
  const logger = opts.logger ?? nullLogger;

  const finish = (name: string, started: bigint, fields: Record<string, unknown>, err?: unknown): void => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const status = err === undefined ? grpc.status.OK : grpcStatusOf(err);
    const code = grpc.status[status] ?? String(status);
    const entry = { op: name, ...fields, ms: Math.round(seconds * 1e6) / 1e3, code };
    if (err === undefined) logger.debug(entry, 'snapshot op');
    else if (status === grpc.status.UNKNOWN) logger.error({ ...entry, err: (err as Error)?.message }, 'snapshot op failed');
    else logger.debug({ ...entry, err: (err as Error)?.message }, 'snapshot op refused');
    opts.onOp?.(name, seconds, err === undefined, code);
  };

  function unary<Req, Res>(name: string, fields: (req: Req) => Record<string, unknown>, fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const started = process.hrtime.bigint();
      const req = call.request;
      let p: Promise<Res>;
      try {
        p = fn(req);
      } catch (err) {
        p = Promise.reject(err);
      }
      p.then(
        (res) => {
          finish(name, started, fields(req));
          callback(null, res);
        },
        (err: unknown) => {
          finish(name, started, fields(req), err);
          callback(toServiceError(err));
        },
      );
    };
  }

  const keyFields = (r: KeyRequest) => ({ key: r.key });
  const createFields = (r: CreateRequest) => ({ key: r.key, parent: r.parent, labels: Object.keys(r.labels ?? {}) });

  const list: grpc.handleServerStreamingCall<{ filters: string[] }, { info: WireInfo[] }> = (call) => {
    const started = process.hrtime.bigint();
    const filters = call.request.filters ?? [];
    let cancelled = false;
    call.on('cancelled', () => {
      cancelled = true;
    });
    let batch: WireInfo[] = [];
    let sent = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const msg = { info: batch };
      sent += batch.length;
      batch = [];
      // Backpressure: wait for the stream to drain before producing more.
      if (!call.write(msg) && !cancelled) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            call.off('drain', done);
            call.off('cancelled', done);
            call.off('close', done);
            resolve();
          };
          call.on('drain', done);
          call.on('cancelled', done);
          call.on('close', done);
        });
      }
    };
    store
      .walk(filters, async (info) => {
        if (cancelled) throw canceled('List cancelled by the client');
        batch.push(infoToWire(info));
        if (batch.length >= LIST_BATCH) await flush();
      })
      .then(flush)
      .then(
        () => {
          finish('List', started, { filters, count: sent });
          call.end();
        },
        (err: unknown) => {
          finish('List', started, { filters, count: sent }, err);
          // A server stream ends with an error status when 'error' is emitted on it.
          if (!cancelled) call.emit('error', Object.assign(new Error((err as Error)?.message ?? String(err)), toServiceError(err)));
        },
      );
  };

  return {
    Prepare: unary('Prepare', createFields, async (r: CreateRequest) => mountsToWire(await store.prepare(r.key, parentOf(r.parent), labelsOf(r.labels)))),
    View: unary('View', createFields, async (r: CreateRequest) => mountsToWire(await store.view(r.key, parentOf(r.parent), labelsOf(r.labels)))),
    Mounts: unary('Mounts', keyFields, async (r: KeyRequest) => mountsToWire(await store.mounts(r.key))),
    Commit: unary(
      'Commit',
      (r: KeyRequest & { name: string }) => ({ key: r.key, name: r.name }),
      async (r: KeyRequest & { name: string; labels: Record<string, string> }) => {
        await store.commit(r.name, r.key, labelsOf(r.labels));
        return {};
      },
    ),
    Remove: unary('Remove', keyFields, async (r: KeyRequest) => {
      await store.remove(r.key);
      return {};
    }),
    Stat: unary('Stat', keyFields, async (r: KeyRequest) => ({ info: infoToWire(await store.stat(r.key)) })),
    Update: unary(
      'Update',
      (r: { info: WireInfo | null; update_mask: { paths: string[] } | null }) => ({ key: r.info?.name, paths: r.update_mask?.paths }),
      async (r: { info: WireInfo | null; update_mask: { paths: string[] } | null }) => {
        const info = { name: r.info?.name ?? '', labels: labelsOf(r.info?.labels) };
        return { info: infoToWire(await store.update(info, r.update_mask?.paths ?? [])) };
      },
    ),
    Usage: unary('Usage', keyFields, async (r: KeyRequest) => {
      const u = await store.usage(r.key);
      return { size: u.size, inodes: u.inodes };
    }),
    Cleanup: unary(
      'Cleanup',
      () => ({}),
      async () => {
        await store.cleanup();
        return {};
      },
    ),
    List: list,
  };
}
