/**
 * ImageTarget writing an OCI image layout directory, `oci:DIR[:TAG]`.
 *
 * open() creates DIR and the layout (oci-layout, index.json, blobs/sha256)
 * when missing and keeps every image and blob already there.
 *
 * Atomicity: every file is written to a temp file in DIR, fsynced and
 * renamed into place, so no blob or index.json is ever seen half-written.
 * putManifest() checks that every blob the manifest refers to is stored
 * before index.json mentions it, so index.json only points at complete images.
 *
 * abort() undoes this target's work: restores the index.json entries it
 * replaced, removes the ones it added, deletes the blobs it added (never
 * ones that were there before), and removes DIR when this target created it.
 * After close() the image is committed and abort() does nothing.
 *
 * One target per directory at a time: two targets writing the same
 * index.json concurrently may lose each other's entries.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { failedPrecondition, invalidArgument, notFound, wrap } from '../common/errors';
import { nullLogger, type Logger } from '../common/logger';
import { verifyBytes, verifyingStream } from './digest';
import { parseManifestOrIndex } from './json';
import {
  BLOBS_DIR,
  IMAGE_LAYOUT_VERSION,
  INDEX_FILE,
  OCI_LAYOUT_FILE,
  REF_NAME_ANNOTATION,
  blobPath,
  checkOciLayoutFile,
  readLayoutIndex,
  refName,
} from './layout-files';
import { TAG_PATTERN } from './reference';
import { MediaType, type Descriptor, type ImageTarget, type Index } from './types';

export interface OciLayoutTargetOptions {
  logger?: Logger;
  /** Hard-link putBlobFile sources instead of copying when on the same filesystem. Default true. */
  link?: boolean;
}

interface IndexChange {
  added: Descriptor;
  replaced: Descriptor[];
}

const LINK_FALLBACK = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES']);

export class OciLayoutTarget implements ImageTarget {
  readonly name: string;
  private readonly added = new Set<string>();
  private readonly changes: IndexChange[] = [];
  private state: 'open' | 'closed' | 'aborted' = 'open';
  private indexLock: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly tag: string | undefined,
    /** The top-most directory open() created, removed by abort(). */
    private readonly createdDir: string | undefined,
    /** open() wrote the layout files into an empty existing directory. */
    private readonly initialized: boolean,
    private readonly link: boolean,
    private readonly logger: Logger,
  ) {
    this.name = tag === undefined ? `oci:${dir}` : `oci:${dir}:${tag}`;
  }

  static async open(dir: string, tag: string | undefined, options: OciLayoutTargetOptions = {}): Promise<OciLayoutTarget> {
    const name = tag === undefined ? `oci:${dir}` : `oci:${dir}:${tag}`;
    if (tag !== undefined && !TAG_PATTERN.test(tag)) throw invalidArgument(`${name}: invalid tag "${tag}"`);
    const logger = (options.logger ?? nullLogger).child({ target: name });
    let createdDir: string | undefined;
    let initialized = false;
    try {
      const st = await fsp.stat(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (st === undefined) {
        createdDir = (await fsp.mkdir(dir, { recursive: true, mode: 0o755 })) ?? dir;
        await initLayout(dir);
      } else if (!st.isDirectory()) {
        throw invalidArgument(`${dir} exists and is not a directory`);
      } else if (await exists(path.join(dir, OCI_LAYOUT_FILE))) {
        await checkOciLayoutFile(dir);
        if (!(await exists(path.join(dir, INDEX_FILE)))) await writeIndex(dir, { schemaVersion: 2, manifests: [] });
        await fsp.mkdir(path.join(dir, BLOBS_DIR, 'sha256'), { recursive: true, mode: 0o755 });
      } else if ((await fsp.readdir(dir)).length === 0) {
        initialized = true;
        await initLayout(dir);
      } else {
        throw invalidArgument(`${dir} is not empty and is not an OCI image layout (no ${OCI_LAYOUT_FILE})`);
      }
    } catch (err) {
      if (createdDir !== undefined) await fsp.rm(createdDir, { recursive: true, force: true });
      throw wrap(err, name);
    }
    return new OciLayoutTarget(dir, tag, createdDir, initialized, options.link ?? true, logger);
  }

  async putBlobFile(desc: Descriptor, file: string): Promise<void> {
    this.checkOpen();
    const dest = blobPath(this.dir, desc.digest);
    const before = await this.present(dest, desc);
    if (before === 'present') return;
    const tmp = this.tmpPath();
    try {
      let linked = false;
      if (this.link) {
        try {
          await fsp.link(file, tmp);
          linked = true;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? '';
          if (code === 'ENOENT') throw notFound(`blob ${desc.digest}: source file ${file} not found`);
          if (!LINK_FALLBACK.has(code)) throw err;
        }
      }
      if (linked) {
        // The caller's file is now shared: read it to verify, never write it.
        await pipeline(createReadStream(tmp), verifyingStream(desc), new Writable({ write: (_c, _e, cb) => cb() }));
      } else {
        await pipeline(createReadStream(file), verifyingStream(desc), createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
      }
      await fsyncFile(tmp);
      await fsp.rename(tmp, dest);
      if (before === 'absent') await this.recordAdded(dest);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw wrap(err, `${this.name}: storing blob ${desc.digest}`);
    }
  }

  async putBlobBytes(desc: Descriptor, bytes: Buffer): Promise<void> {
    this.checkOpen();
    try {
      verifyBytes(desc, bytes);
    } catch (err) {
      throw wrap(err, `${this.name}: storing blob ${desc.digest}`);
    }
    const dest = blobPath(this.dir, desc.digest);
    const before = await this.present(dest, desc);
    if (before === 'present') return;
    await this.writeAtomic(dest, bytes);
    if (before === 'absent') await this.recordAdded(dest);
  }

  async putManifest(desc: Descriptor, bytes: Buffer, tag?: string): Promise<void> {
    this.checkOpen();
    if (tag !== undefined && !TAG_PATTERN.test(tag)) throw invalidArgument(`${this.name}: invalid tag "${tag}"`);
    let refs: Descriptor[];
    try {
      const doc = parseManifestOrIndex(bytes, desc.mediaType);
      refs = doc.kind === 'manifest' ? [doc.manifest.config, ...doc.manifest.layers] : doc.index.manifests;
    } catch (err) {
      throw wrap(err, `${this.name}: manifest ${desc.digest}`);
    }
    for (const r of refs) {
      if (r.urls !== undefined && r.urls.length > 0) continue; // foreign layer, fetched from its URLs
      const st = await fsp.stat(blobPath(this.dir, r.digest)).catch(() => undefined);
      if (!st || st.size !== r.size) {
        throw failedPrecondition(`${this.name}: manifest ${desc.digest} refers to blob ${r.digest}, which is not stored`, {
          digest: r.digest,
        });
      }
    }
    await this.putBlobBytes(desc, bytes);
    await fsyncDir(path.join(this.dir, BLOBS_DIR, 'sha256'));
    await this.withIndex((index) => {
      // abort() may have run while the blobs were being checked: never point at what it removed.
      if (this.state !== 'open') throw failedPrecondition(`${this.name}: target is ${this.state}`);
      const annotations = { ...desc.annotations };
      delete annotations[REF_NAME_ANNOTATION];
      if (tag !== undefined) annotations[REF_NAME_ANNOTATION] = tag;
      const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
      if (Object.keys(annotations).length > 0) entry.annotations = annotations;
      if (desc.platform !== undefined) entry.platform = desc.platform;
      const replaced = index.manifests.filter((d) => refName(d) === tag && (tag !== undefined || d.digest === desc.digest));
      if (tag === undefined && replaced.length > 0) return false; // already listed untagged
      index.manifests = index.manifests.filter((d) => !replaced.includes(d));
      index.manifests.push(entry);
      this.changes.push({ added: entry, replaced });
      return true;
    });
    this.logger.debug({ digest: desc.digest, tag }, 'manifest stored');
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    if (this.createdDir !== undefined) {
      await fsp.rm(this.createdDir, { recursive: true, force: true });
      return;
    }
    if (this.changes.length > 0) {
      await this.withIndex((index) => {
        for (const { added, replaced } of [...this.changes].reverse()) {
          const at = index.manifests.findIndex((d) => d.digest === added.digest && refName(d) === refName(added));
          if (at >= 0) index.manifests.splice(at, 1);
          for (const r of replaced) {
            if (!index.manifests.some((d) => refName(d) !== undefined && refName(d) === refName(r))) index.manifests.push(r);
          }
        }
        return true;
      });
    }
    for (const file of this.added) await fsp.rm(file, { force: true });
    if (this.initialized) {
      for (const name of [INDEX_FILE, OCI_LAYOUT_FILE, BLOBS_DIR]) {
        await fsp.rm(path.join(this.dir, name), { recursive: true, force: true });
      }
    }
    this.logger.debug({ blobs: this.added.size }, 'aborted');
  }

  async close(): Promise<void> {
    if (this.state === 'open') this.state = 'closed';
  }

  /** Remember a blob this target created; one finishing after abort() is removed at once. */
  private async recordAdded(file: string): Promise<void> {
    if (this.state === 'aborted') await fsp.rm(file, { force: true });
    else this.added.add(file);
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw failedPrecondition(`${this.name}: target is ${this.state}`);
  }

  /**
   * Whether the blob is stored: 'present' with the right size (skip it),
   * 'damaged' (wrong size: replace it, but it is not this target's to remove), or 'absent'.
   */
  private async present(dest: string, desc: Descriptor): Promise<'present' | 'damaged' | 'absent'> {
    const st = await fsp.stat(dest).catch(() => undefined);
    if (st === undefined) return 'absent';
    if (st.isFile() && st.size === desc.size) return 'present';
    this.logger.warn({ digest: desc.digest, size: st.size, expected: desc.size }, 'replacing stored blob of wrong size');
    return 'damaged';
  }

  private tmpPath(): string {
    return path.join(this.dir, `.nyd-tmp-${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  private async writeAtomic(dest: string, bytes: Uint8Array): Promise<void> {
    const tmp = this.tmpPath();
    try {
      await writeSynced(tmp, bytes);
      await fsp.rename(tmp, dest);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw wrap(err, `${this.name}: writing ${dest}`);
    }
  }

  /** Read-modify-write of index.json, serialized within this target. */
  private withIndex(edit: (index: Index) => boolean): Promise<void> {
    const run = this.indexLock.then(async () => {
      const index = await readLayoutIndex(this.dir);
      if (edit(index)) await writeIndex(this.dir, index);
    });
    this.indexLock = run.catch(() => undefined);
    return run;
  }
}

async function initLayout(dir: string): Promise<void> {
  await fsp.mkdir(path.join(dir, BLOBS_DIR, 'sha256'), { recursive: true, mode: 0o755 });
  await writeFileAtomic(dir, OCI_LAYOUT_FILE, Buffer.from(JSON.stringify({ imageLayoutVersion: IMAGE_LAYOUT_VERSION })));
  await writeIndex(dir, { schemaVersion: 2, manifests: [] });
}

async function writeIndex(dir: string, index: Index): Promise<void> {
  const doc: Index = { ...index, schemaVersion: 2, mediaType: MediaType.OciIndex };
  await writeFileAtomic(dir, INDEX_FILE, Buffer.from(JSON.stringify(doc)));
}

async function writeFileAtomic(dir: string, name: string, bytes: Uint8Array): Promise<void> {
  const tmp = path.join(dir, `.nyd-tmp-${process.pid}-${randomBytes(8).toString('hex')}`);
  try {
    await writeSynced(tmp, bytes);
    await fsp.rename(tmp, path.join(dir, name));
    await fsyncDir(dir);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

async function writeSynced(file: string, bytes: Uint8Array): Promise<void> {
  const fh = await fsp.open(file, 'wx', 0o644);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function exists(file: string): Promise<boolean> {
  return fsp.stat(file).then(
    () => true,
    () => false,
  );
}
