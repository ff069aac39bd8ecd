/**
 * One range being written into a cached blob's data file (see disk-cache.ts).
 * Bytes go straight to their blob offsets with pwrite; commit() makes them
 * durable (fdatasync) and only then has the cache record the range. The
 * writer owns the file handle and the blob lease until commit() or abort().
 */
import type { FileHandle } from 'node:fs/promises';
import { invalidArgument, wrap } from '../../common/errors';
import type { CacheWriter } from '../types';
import type { Release } from './leases';

/** Exactly `length` bytes at `position`; throws on a short file. */
export async function readFully(fd: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fd.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at ${position + done}`);
    done += bytesRead;
  }
  return buf;
}

export interface DiskCacheWriterParts {
  blobDigest: string;
  fd: FileHandle;
  offset: number;
  length: number;
  /** Held until the writer finishes. */
  release: Release;
  /** Records [offset, offset+length) complete once the bytes in `fd` are durable. */
  record: (fd: FileHandle, offset: number, length: number) => Promise<void>;
}

export class DiskCacheWriter implements CacheWriter {
  private written = 0;
  private done = false;
  private readonly blobDigest: string;
  private readonly fd: FileHandle;
  private readonly offset: number;
  private readonly length: number;

  constructor(private readonly parts: DiskCacheWriterParts) {
    this.blobDigest = parts.blobDigest;
    this.fd = parts.fd;
    this.offset = parts.offset;
    this.length = parts.length;
  }
  private where(): string {
    return `blob cache: range ${this.offset}+${this.length} of ${this.blobDigest}`;
  }

  async write(data: Uint8Array): Promise<void> {
    if (this.done) throw invalidArgument(`${this.where()}: writer already finished`);
    if (this.written + data.length > this.length) {
      throw invalidArgument(`${this.where()}: ${this.written + data.length} bytes written, more than the range`);
    }
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fd.write(data, done, data.length - done, this.offset + this.written + done);
      done += bytesWritten;
    }
    this.written += data.length;
  }

  async commit(): Promise<void> {
    if (this.done) throw invalidArgument(`${this.where()}: writer already finished`);
    if (this.written !== this.length) {
      throw invalidArgument(`${this.where()}: ${this.written} bytes written, the range has ${this.length}`);
    }
    this.done = true;
    try {
      await this.fd.datasync();
      await this.parts.record(this.fd, this.offset, this.length);
    } catch (err) {
      throw wrap(err, `${this.where()}: commit`, { blob: this.blobDigest, offset: this.offset });
    } finally {
      await this.fd.close();
      this.parts.release();
    }
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.fd.close();
    this.parts.release();
  }
}
