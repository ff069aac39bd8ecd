/**
 * A BlobBackend over local files: blob digest -> path. For tests and for
 * serving an image whose blobs are already on this host (an OCI layout).
 *
 * Each read opens the file, reads exactly the range and closes it, so no
 * descriptor outlives a call. A range past the file's end is InvalidArgument
 * (the caller asked for bytes the blob does not have); an unknown digest is
 * NotFound. Nothing here is transient, so nothing is retried.
 */
import { promises as fsp } from 'node:fs';
import { canceled, invalidArgument, limitExceeded, notFound, wrap } from '../../common/errors';
import type { BlobBackend } from '../types';

/** Largest single read, bytes. */
export const MAX_FILE_BACKEND_READ = 256 * 1024 * 1024;

export class FileBlobBackend implements BlobBackend {
  private readonly files: Map<string, string>;

  /** `files`: blob digest ("sha256:<hex>") -> path of the file holding exactly that blob. */
  constructor(files: ReadonlyMap<string, string> | Readonly<Record<string, string>>) {
    this.files = new Map(files instanceof Map ? files : Object.entries(files));
  }

  async read(blobDigest: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    if (signal?.aborted) throw canceled(`read of ${blobDigest} aborted`, undefined, signal.reason);
    const file = this.files.get(blobDigest);
    if (file === undefined) throw notFound(`blob ${blobDigest} is not among the local files`, { blob: blobDigest });
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw invalidArgument(`bad range ${offset}+${length} of ${blobDigest}`, { blob: blobDigest, offset });
    }
    if (length > MAX_FILE_BACKEND_READ) {
      throw limitExceeded(`read of ${length} bytes exceeds ${MAX_FILE_BACKEND_READ}`, { blob: blobDigest, offset });
    }
    let fd: fsp.FileHandle;
    try {
      fd = await fsp.open(file, 'r');
    } catch (err) {
      throw wrap(err, `opening blob ${blobDigest} at ${file}`, { blob: blobDigest });
    }
    try {
      const size = (await fd.stat()).size;
      if (offset + length > size) {
        throw invalidArgument(`range ${offset}+${length} is past the end of blob ${blobDigest} (${size} bytes)`, {
          blob: blobDigest,
          offset,
        });
      }
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        if (signal?.aborted) throw canceled(`read of ${blobDigest} aborted`, undefined, signal.reason);
        const { bytesRead } = await fd.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw invalidArgument(`blob ${blobDigest} shrank while being read`, { blob: blobDigest, offset });
        done += bytesRead;
      }
      return buf;
    } finally {
      await fd.close();
    }
  }
}
