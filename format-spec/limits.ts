/**
 * Named limits of format version 2. The reader enforces every one of them
 * before trusting a structure; the writer refuses to produce anything beyond
 * them. SPEC.md section "Limits" gives the reasons for each value.
 */

export const FORMAT_VERSION = 2;
/**
 * Oldest bootstrap version this reader accepts. Version 1 lacks the
 * uncompressed address space (chunk `uoffset`, blob `uspace`) that the
 * engine's cache and kernel mounts are laid out by; such images are converted
 * again.
 */
export const MIN_READ_VERSION = 2;

/** "NYDBOOT\0": first 8 bytes of a bootstrap. */
export const BOOTSTRAP_MAGIC = Buffer.from('NYDBOOT\0', 'latin1');
/** "NYDBLOB\0": first 8 bytes of a blob footer. */
export const BLOB_MAGIC = Buffer.from('NYDBLOB\0', 'latin1');

/** Bootstrap header: magic(8) version(u32 LE) flags(u32 LE). */
export const BOOTSTRAP_HEADER_SIZE = 16;
/** Blob footer: magic(8) version(u32) flags(u32) tocOffset(u64) tocSize(u64) tocDigest(32). */
export const FOOTER_SIZE = 64;

export const MIN_CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

/** Chunks smaller than this are packed together into shared units (small-file batching). */
export const BATCH_THRESHOLD = 64 * 1024;
/** Target uncompressed size of a batched unit; a unit closes when the next chunk would pass it. */
export const BATCH_UNIT_SIZE = 256 * 1024;
/** Largest uncompressed unit: one chunk of MAX_CHUNK_SIZE. */
export const MAX_UNIT_SIZE = MAX_CHUNK_SIZE;
/**
 * Largest compressed unit (zstd frame): zstd's worst case for MAX_UNIT_SIZE
 * incompressible bytes (size + size/256 + frame overhead), rounded up. Bounds
 * what a reader fetches for one unit before it can check anything.
 */
export const MAX_UNIT_FRAME_SIZE = MAX_UNIT_SIZE + (MAX_UNIT_SIZE >> 8) + 4096;

export const MAX_INODES = 4 * 1024 * 1024;
export const MAX_ENTRIES_PER_DIR = 1024 * 1024;
export const MAX_NAME_LENGTH = 255;
export const MAX_PATH_LENGTH = 4096;
export const MAX_SYMLINK_LENGTH = 4096;
export const MAX_DEPTH = 256;
export const MAX_XATTRS_PER_INODE = 128;
export const MAX_XATTR_NAME_LENGTH = 255;
export const MAX_XATTR_VALUE_SIZE = 64 * 1024;
export const MAX_BLOBS = 1024;
export const MAX_CHUNKS_PER_FILE = 1024 * 1024;
export const MAX_FILE_SIZE = 2 ** 52;
export const MAX_BOOTSTRAP_SIZE = 512 * 1024 * 1024;
export const MAX_TOC_SIZE = 256 * 1024 * 1024;
export const MAX_BLOB_SIZE = 2 ** 52;
export const MAX_PREFETCH_PATTERNS = 4096;

export const DIGEST_SIZE = 32;

/**
 * Alignment of every chunk in its blob's uncompressed address space: the
 * page size and EROFS block size, so a chunk can be a kernel block device
 * extent and a cache hit is one aligned pread.
 */
export const UNCOMPRESSED_ALIGN = 4096;
/**
 * Largest uncompressed address space of one blob: EROFS addresses device
 * blocks with 32 bits, 2^32 blocks of UNCOMPRESSED_ALIGN bytes = 16 TiB.
 */
export const MAX_BLOB_USPACE = 2 ** 32 * UNCOMPRESSED_ALIGN;
