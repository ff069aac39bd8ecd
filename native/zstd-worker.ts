/**
 * The piscina worker behind zstd-pool.ts (compiled to dist/native/zstd-worker.js).
 *
 * One task in, one reply out. Errors are never thrown across the thread
 * boundary (structured clone drops an Error's `code`); they come back as a
 * {@link WorkerFailure} the pool turns into a NydError of the same code.
 * Results are transferred, not copied: compress and decompressFrame return
 * buffers that own their ArrayBuffer, so moving it detaches nothing else.
 */
import { createHash } from 'node:crypto';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { codeOf, dataCorrupt, type ErrorCode } from '../common/errors';
import { compress, decompressFrame } from './zstd';

export type WorkerTask =
  | { op: 'compress'; data: Uint8Array; level: number }
  | { op: 'decompress'; frame: Uint8Array; maxSize: number }
  /** Decompress, then sha256 each span [offset, offset + size) of the output (`spans`: offset, size pairs). */
  | { op: 'decompressHash'; frame: Uint8Array; maxSize: number; spans: Float64Array };

export interface WorkerSuccess {
  ok: true;
  data: Uint8Array;
  /** decompressHash: the spans' sha256 digests, 32 bytes each, in span order. */
  digests?: Uint8Array;
}

export interface WorkerFailure {
  ok: false;
  code: ErrorCode;
  message: string;
}

export type WorkerReply = WorkerSuccess | WorkerFailure;

function run(task: WorkerTask): Buffer {
  switch (task.op) {
    case 'compress':
      return compress(task.data, task.level);
    case 'decompress':
      return decompressFrame(task.frame, task.maxSize);
    default:
      throw new TypeError(`unknown zstd worker op ${(task as { op: unknown }).op}`);
  }
}

/** sha256 of each span of `data`, 32 bytes each, in one buffer of its own. */
function hashSpans(data: Buffer, spans: Float64Array): Buffer {
  const out = Buffer.allocUnsafeSlow((spans.length / 2) * 32);
  for (let i = 0; i + 1 < spans.length; i += 2) {
    const offset = spans[i];
    const size = spans[i + 1];
    if (!(offset >= 0 && size >= 0 && offset + size <= data.length)) {
      throw dataCorrupt(`chunk ${offset}+${size} lies outside the unit's ${data.length} bytes`);
    }
    createHash('sha256').update(data.subarray(offset, offset + size)).digest().copy(out, (i / 2) * 32);
  }
  return out;
}

export default function zstdWorker(task: WorkerTask): WorkerReply {
  let out: Buffer;
  let digests: Buffer | undefined;
  try {
    out = run(task.op === 'decompressHash' ? { op: 'decompress', frame: task.frame, maxSize: task.maxSize } : task);
    if (task.op === 'decompressHash') digests = hashSpans(out, task.spans);
  } catch (err) {
    return { ok: false, code: codeOf(err), message: err instanceof Error ? err.message : String(err) };
  }
  const data = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  const reply: WorkerSuccess = { ok: true, data };
  if (digests) {
    // Both results move: the digests travel in a transfer list of their own.
    reply.digests = new Uint8Array(digests.buffer, digests.byteOffset, digests.byteLength);
    return move({ [transferableSymbol]: [out.buffer, digests.buffer], [valueSymbol]: reply } as never) as unknown as WorkerReply;
  }
  // piscina posts the value of a moved Transferable with its transferable in
  // the transfer list: the reply travels, the ArrayBuffer under it moves.
  const movable = { [transferableSymbol]: out.buffer, [valueSymbol]: reply };
  return move(movable) as unknown as WorkerReply;
}
