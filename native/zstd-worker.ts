/**
 * The piscina worker behind zstd-pool.ts (compiled to dist/native/zstd-worker.js).
 *
 * One task in, one reply out. Errors are never thrown across the thread
 * boundary (structured clone drops an Error's `code`); they come back as a
 * {@link WorkerFailure} the pool turns into a NydError of the same code.
 * Results are transferred, not copied: compress and decompressFrame return
 * buffers that own their ArrayBuffer, so moving it detaches nothing else.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { codeOf, type ErrorCode } from '../common/errors';
import { compress, decompressFrame } from './zstd';

export type WorkerTask =
  | { op: 'compress'; data: Uint8Array; level: number }
  | { op: 'decompress'; frame: Uint8Array; maxSize: number };

export interface WorkerSuccess {
  ok: true;
  data: Uint8Array;
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

export default function zstdWorker(task: WorkerTask): WorkerReply {
  let out: Buffer;
  try {
    out = run(task);
  } catch (err) {
    return { ok: false, code: codeOf(err), message: err instanceof Error ? err.message : String(err) };
  }
  const data = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  const reply: WorkerSuccess = { ok: true, data };
  // piscina posts the value of a moved Transferable with its transferable in
  // the transfer list: the reply travels, the ArrayBuffer under it moves.
  const movable = { [transferableSymbol]: out.buffer, [valueSymbol]: reply };
  return move(movable) as unknown as WorkerReply;
}
