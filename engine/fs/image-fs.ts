/**
 * ImageFilesystem: one read-only FUSE mount of one image.
 *
 * Lifecycle: construct with the decoded Bootstrap and a ChunkReader, then
 * mount(mountpoint) once; unmount() detaches it (lazily: open files keep
 * working until closed) and may be called any number of times. A new
 * instance is needed to mount again.
 *
 * The image never changes while mounted, so the kernel may cache attributes,
 * names (including absent names) and file pages for a long time; all of it
 * is tunable through FilesystemOptions.
 */
import { failedPrecondition } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { type FuseHandle, type MountOptions, mountFuse } from '../../native/fuse';
import { DEFAULTS } from '../config/schema';
import type { Filesystem, FilesystemOptions } from '../types';
import type { AccessRecorder } from './access-log';
import { ImageOps } from './image-ops';

/** Mount settings beyond the Filesystem contract, for the entry files that need them. */
export type ImageMountTuning = Pick<
  MountOptions,
  'allowOther' | 'dev' | 'suid' | 'defaultPermissions' | 'fsName' | 'debug' | 'opTimeoutMs' | 'cleanStale' | 'maxRead'
>;

export interface ImageFilesystemOptions extends FilesystemOptions {
  logger: Logger;
  mount?: ImageMountTuning;
  /** Told of every READ of a regular file (e.g. an AccessLog, access-log.ts); none by default. */
  accessLog?: AccessRecorder;
}

export class ImageFilesystem implements Filesystem {
  private readonly ops: ImageOps;
  private readonly logger: Logger;
  private readonly mountOptions: MountOptions;
  private handle: FuseHandle | undefined;
  private state: 'new' | 'mounting' | 'mounted' | 'done' = 'new';

  constructor(opts: ImageFilesystemOptions) {
    this.logger = opts.logger;
    this.ops = new ImageOps({ bootstrap: opts.bootstrap, reader: opts.reader, logger: opts.logger, accessLog: opts.accessLog });
    const entryTimeout = opts.entryTimeout ?? DEFAULTS.fuse.entryTimeout;
    this.mountOptions = {
      fsName: 'nyd',
      ...opts.mount,
      subtype: 'nyd',
      readOnly: true,
      useIno: true,
      attrTimeout: opts.attrTimeout ?? DEFAULTS.fuse.attrTimeout,
      entryTimeout,
      negativeTimeout: entryTimeout,
      kernelCache: opts.keepCache ?? DEFAULTS.fuse.kernelCache,
      logger: opts.logger,
    };
  }

  async mount(mountpoint: string): Promise<void> {
    if (this.state !== 'new') throw failedPrecondition('filesystem was already mounted', { mountpoint, state: this.state });
    this.state = 'mounting';
    try {
      this.handle = await mountFuse(mountpoint, this.ops, this.mountOptions);
    } catch (err) {
      this.state = 'done';
      throw err;
    }
    this.state = 'mounted';
    this.logger.info({ mountpoint }, 'image mounted');
  }

  async unmount(): Promise<void> {
    const handle = this.handle;
    this.state = 'done';
    if (!handle) return;
    await handle.unmount();
    this.logger.info({ mountpoint: handle.mountpoint }, 'image unmounted');
  }
}
