/**
 * Loads nyd's .proto files for containerd's snapshot service
 * (snapshotter/proto/, read at run time by @grpc/proto-loader). The folder is
 * found from the repository root: the nearest ancestor of this file holding
 * package.json, so the same code works from the TypeScript sources and from
 * dist/.
 *
 * Loader options: field names as in the .proto (keepCase), int64 as JS
 * numbers (usage sizes and timestamp seconds stay far below 2^53), enums as
 * their names ("ACTIVE"), absent fields as defaults ("" / [] / {}).
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { internal } from '../../common/errors';

export const SNAPSHOTS_SERVICE = 'containerd.services.snapshots.v1.Snapshots';
const SNAPSHOTS_PROTO = 'containerd/services/snapshots/v1/snapshots.proto';

/** Absolute path of snapshotter/proto/. */
export function protoDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) {
      const candidate = path.join(dir, 'snapshotter', 'proto');
      if (existsSync(path.join(candidate, SNAPSHOTS_PROTO))) return candidate;
    }
    if (path.dirname(dir) === dir) throw internal(`snapshotter/proto/${SNAPSHOTS_PROTO} not found above ${__dirname}`);
  }
}

export interface SnapshotsProto {
  /** For grpc.Server.addService. */
  readonly service: grpc.ServiceDefinition;
  /** Client constructor (tests, tools). */
  readonly Client: grpc.ServiceClientConstructor;
}

let cached: SnapshotsProto | undefined;

export function loadSnapshotsProto(): SnapshotsProto {
  if (cached !== undefined) return cached;
  const definition = protoLoader.loadSync(SNAPSHOTS_PROTO, {
    includeDirs: [protoDir()],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  let node: unknown = grpc.loadPackageDefinition(definition);
  for (const part of SNAPSHOTS_SERVICE.split('.')) node = (node as grpc.GrpcObject)[part];
  if (typeof node !== 'function') throw internal(`${SNAPSHOTS_PROTO} does not define ${SNAPSHOTS_SERVICE}`);
  const Client = node as grpc.ServiceClientConstructor;
  cached = { service: Client.service, Client };
  return cached;
}
