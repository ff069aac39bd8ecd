/**
 * The nyd format, version 2: in-memory model shared by the one writer and the
 * one reader in this folder. SPEC.md is the normative text; this file is its
 * typed mirror. format-spec imports nothing of ours.
 *
 * Terms
 * - blob: one per source layer. A run of compression units followed by a
 *   table of contents (TOC) and a fixed-size footer. A blob is verifiable on
 *   its own: footer -> TOC digest -> unit sizes -> chunk digests.
 * - compression unit (CU): one zstd frame, addressed by (compressed offset,
 *   compressed size) inside its blob. It holds one or more whole chunks back
 *   to back. Chunks never span units, so any chunk is decoded from exactly
 *   one unit.
 * - chunk: a piece of one file's content, at most `chunkSize` bytes,
 *   identified by the sha256 of its uncompressed bytes. Identical chunks are
 *   stored once per image (dedup scope: the whole image, all layers).
 * - uncompressed address space: per blob, its chunks decompressed and laid
 *   out in TOC order, each at the next multiple of UNCOMPRESSED_ALIGN (4 KiB).
 *   A blob property (same for every image using the blob): the engine's
 *   cache files and the EROFS blob devices use this layout.
 * - bootstrap: the metadata of the whole image: the merged file tree after
 *   whiteouts and opaque directories, the blob table, every chunk's location,
 *   and the prefetch list. msgpack body behind a fixed binary header.
 *
 * Lifecycle
 *   writer: BlobWriter (per layer) -> units + TOC + footer; the converter then
 *   builds a Bootstrap from the merged tree and encodes it once.
 *   reader: decodeBootstrap(bytes) validates everything before returning; a
 *   caller then resolves file ranges to ChunkRefs and decodes units with
 *   decodeChunk(), which checks sizes and the digest before returning bytes.
 */

/** Inode types as stored (small integers, stable). */
export const InodeType = {
  File: 1,
  Dir: 2,
  Symlink: 3,
  CharDev: 4,
  BlockDev: 5,
  Fifo: 6,
  Socket: 7,
} as const;
export type InodeType = (typeof InodeType)[keyof typeof InodeType];

/** Names of inode types for messages and reports. */
export const INODE_TYPE_NAMES: Readonly<Record<number, string>> = {
  [InodeType.File]: 'file',
  [InodeType.Dir]: 'directory',
  [InodeType.Symlink]: 'symlink',
  [InodeType.CharDev]: 'char device',
  [InodeType.BlockDev]: 'block device',
  [InodeType.Fifo]: 'fifo',
  [InodeType.Socket]: 'socket',
};

/**
 * Where one chunk lives. Stored in the bootstrap as an 8-element array
 * [blob, cuOffset, cuSize, cuUsize, offset, size, digest, uoffset] in this order.
 */
export interface ChunkRef {
  /** Index into Bootstrap.blobs. */
  blob: number;
  /** Byte offset of the chunk's compression unit inside the blob. */
  cuOffset: number;
  /** Compressed size of that unit (the zstd frame), bytes. */
  cuSize: number;
  /** Uncompressed size of that unit, bytes. */
  cuUsize: number;
  /** Offset of this chunk inside the unit's uncompressed bytes. */
  offset: number;
  /** Uncompressed size of this chunk, bytes. */
  size: number;
  /** sha256 of the chunk's uncompressed bytes, 32 bytes. */
  digest: Uint8Array;
  /**
   * Offset of the chunk in its blob's uncompressed address space (SPEC.md
   * "Uncompressed address space"): a multiple of UNCOMPRESSED_ALIGN, fixed by
   * the blob alone (its TOC), so every image referencing the blob agrees.
   */
  uoffset: number;
}

export interface Inode {
  type: InodeType;
  /** Permission bits and setuid/setgid/sticky (mode & 0o7777); never type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time, whole seconds since the epoch. */
  mtime: number;
  /** Regular files: content length. Symlinks: target length in bytes. Others: 0. */
  size: number;
  /** Symlink target (Symlink only). */
  target?: string;
  /** Device numbers (CharDev and BlockDev only). */
  rdevMajor?: number;
  rdevMinor?: number;
  /** Extended attributes, name -> raw value. Absent when empty. */
  xattrs?: Map<string, Uint8Array>;
  /** Directory entries (Dir only): [name, inode index], sorted by name bytes. */
  entries?: Array<[string, number]>;
  /** Content (File only): chunks in file order, contiguous, sizes summing to `size`. */
  chunks?: ChunkRef[];
}

export interface BlobInfo {
  /** OCI digest of the whole blob, "sha256:<hex>". */
  digest: string;
  /** Size of the whole blob in bytes (units + TOC + footer). */
  size: number;
  /** Sum of the uncompressed sizes of the units stored in it. */
  usize: number;
  /**
   * Size of the blob's uncompressed address space: every chunk of its TOC,
   * in TOC order, each starting at a multiple of UNCOMPRESSED_ALIGN.
   */
  uspace: number;
}

export interface Bootstrap {
  /** Format version of this bootstrap (FORMAT_VERSION when written). */
  version: number;
  /** Chunk size the image was cut with (a power of two within limits). */
  chunkSize: number;
  blobs: BlobInfo[];
  /**
   * All inodes; index 0 is the root directory. Inode numbers seen through a
   * mount are index + 1, so they are stable for a given bootstrap. Hardlinked
   * names are several directory entries naming the same index; link counts
   * are derived, not stored.
   */
  inodes: Inode[];
  /** Prefetch list: the patterns given at conversion, and the matching file inodes in blob order. */
  prefetch: { patterns: string[]; inodes: number[] };
}

/** One compression unit as recorded in a blob's TOC. */
export interface UnitEntry {
  /** Offset of the zstd frame in the blob. */
  offset: number;
  /** Compressed (frame) size. */
  size: number;
  /** Uncompressed size. */
  usize: number;
}

/** One chunk as recorded in a blob's TOC. */
export interface TocChunk {
  /** Index into BlobToc.units. */
  unit: number;
  /** Offset inside the unit's uncompressed bytes. */
  offset: number;
  size: number;
  digest: Uint8Array;
}

/** The table of contents at a blob's tail. */
export interface BlobToc {
  version: number;
  chunkSize: number;
  units: UnitEntry[];
  chunks: TocChunk[];
}

/** The fixed-size footer, the last FOOTER_SIZE bytes of a blob. */
export interface BlobFooter {
  version: number;
  tocOffset: number;
  tocSize: number;
  /** sha256 of the TOC bytes. */
  tocDigest: Uint8Array;
}

/**
 * A decompressor handed in by the caller (format-spec has no native code).
 * Must return exactly the frame's bytes, and may refuse frames larger than
 * `maxSize`.
 */
export type Decompress = (frame: Uint8Array, maxSize: number) => Uint8Array;
/** The same, asynchronous (a worker pool); accepted where the caller awaits anyway (verifyBlob). */
export type DecompressAsync = (frame: Uint8Array, maxSize: number) => Promise<Uint8Array>;
