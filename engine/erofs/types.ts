/**
 * EROFS metadata for kernel-native mounts of nyd images (Nydus RAFS v6
 * style): a pure, deterministic codec from a decoded nyd Bootstrap to an EROFS
 * image that holds only metadata. File content stays in the blobs'
 * uncompressed address spaces (format-spec SPEC.md 6.1), which the kernel
 * reads as extra devices.
 *
 * Terms
 * - primary device (the "metadata image"): the bytes writeErofs() returns.
 *   Block 0 holds the superblock (at byte 1024) and the device table; the
 *   shared xattr area and the inodes follow, then the data blocks of
 *   directories and symlinks too long to be inlined. Nothing else.
 * - block: EROFS_BLOCK_SIZE (4 KiB) = format-spec UNCOMPRESSED_ALIGN, so a
 *   chunk's uoffset is a whole device block.
 * - extra device k (1-based): the uncompressed address space of blob k-1 of
 *   the bootstrap, a regular file of uspace bytes (the engine's cache file
 *   for that blob, or a file served by FUSE). Device slot k-1 records its
 *   size in blocks and, as tag, the blob digest's hex.
 * - shared xattr: an xattr (name and value) that two or more inodes carry,
 *   stored once in the shared area after the device table; inodes list its
 *   id. Others are stored inline in their inode.
 * - nid: an inode's number on disk, its byte offset in the metadata image
 *   divided by EROFS_ISLOT_SIZE (the metadata area starts at block 0).
 * - compact / extended inode: the 32- and 64-byte inode forms. Compact is
 *   used where every field fits (uid, gid, nlink <= 65535, size < 4 GiB,
 *   mtime equal to the superblock epoch), extended otherwise.
 * - chunk-based file: a regular file whose content is an array of chunk
 *   indexes, one per nyd chunk (nyd cuts files at k * chunkSize, exactly
 *   EROFS's chunk grid): (device = blob + 1, block = uoffset / 4096).
 *
 * Lifecycle and preconditions
 *   writeErofs(bootstrap) is called with a bootstrap that decodeBootstrap()
 *   validated (tree shape, sorted unique names, chunk sizes summing to the
 *   file size, uoffsets aligned and inside their blob). It checks every limit
 *   EROFS adds on top (EROFS_* and MAX_* below) and throws a NydError
 *   (LimitExceeded, Unsupported or DataCorrupt) naming the inode instead of
 *   writing an image the kernel would refuse or misread. Same bootstrap, same
 *   bytes: no clock, no randomness, no host state.
 *   Mounting: native/posix mountErofs(image, target, devices) with
 *   devices[k] = the address-space file of blob k, all of them, in blob
 *   table order (the kernel refuses a count that differs from the table).
 *
 * On-disk facts below are from the EROFS format (Linux fs/erofs/erofs_fs.h);
 * the numbers are the format's, the code and words are ours.
 */

/** Bytes before the superblock (room for boot sectors). */
export const EROFS_SUPER_OFFSET = 1024;
/** Superblock magic, little endian u32 at EROFS_SUPER_OFFSET. */
export const EROFS_SUPER_MAGIC = 0xe0f5e1e2;
/** Size of the superblock without extension slots. */
export const EROFS_SUPERBLOCK_SIZE = 128;
/** log2 of the block size: 4 KiB blocks, the page size and UNCOMPRESSED_ALIGN. */
export const EROFS_BLOCK_BITS = 12;
export const EROFS_BLOCK_SIZE = 1 << EROFS_BLOCK_BITS;
/** Inodes sit on 32-byte slots; a nid counts slots. */
export const EROFS_ISLOT_BITS = 5;
export const EROFS_ISLOT_SIZE = 1 << EROFS_ISLOT_BITS;
/** Size of one device table slot. */
export const EROFS_DEVICE_SLOT_SIZE = 128;
/** Length of a device slot's tag (we store the blob digest's 64 hex digits). */
export const EROFS_DEVICE_TAG_SIZE = 64;

/** feature_compat: the inode time field holds mtime (informational, set by mkfs.erofs too). */
export const EROFS_FEATURE_COMPAT_MTIME = 0x2;
/** feature_incompat: chunk-based files (inode data layout 4). */
export const EROFS_FEATURE_INCOMPAT_CHUNKED_FILE = 0x4;
/** feature_incompat: the superblock's extra_devices / devt_slotoff are valid. */
export const EROFS_FEATURE_INCOMPAT_DEVICE_TABLE = 0x8;

/** Inode data layouts (i_format bits 1..3). */
export const ErofsLayout = {
  /** Data in whole blocks starting at startblk (none for empty files and special files). */
  FlatPlain: 0,
  /** Whole blocks at startblk, the last partial block right after the inode (tail packing). */
  FlatInline: 2,
  /** An array of chunk indexes after the inode; chunks on extra devices. */
  ChunkBased: 4,
} as const;
export type ErofsLayout = (typeof ErofsLayout)[keyof typeof ErofsLayout];

/** i_format bit 0: 0 compact (32 bytes), 1 extended (64 bytes). */
export const EROFS_INODE_COMPACT_SIZE = 32;
export const EROFS_INODE_EXTENDED_SIZE = 64;

/** Chunk format flag: the chunk array holds 8-byte indexes (with a device id), not 4-byte block numbers. */
export const EROFS_CHUNK_FORMAT_INDEXES = 0x20;
/** Chunk format bits 0..4: log2(chunk size) - EROFS_BLOCK_BITS. */
export const EROFS_CHUNK_FORMAT_BLKBITS_MASK = 0x1f;
/** One chunk index: startblk_hi u16, device_id u16, startblk_lo u32. */
export const EROFS_CHUNK_INDEX_SIZE = 8;
/**
 * A 32-bit chunk block address equal to this means "hole", so the largest
 * usable device block is one less. (MAX_BLOB_USPACE allows 2^32 blocks; the
 * last one cannot be addressed by a chunk.)
 */
export const EROFS_NULL_BLOCK = 0xffffffff;

/** One directory entry: nid u64, nameoff u16, file_type u8, reserved u8; names follow the entries. */
export const EROFS_DIRENT_SIZE = 12;
/** Longest name EROFS stores (Linux NAME_MAX). */
export const EROFS_NAME_LEN = 255;

/** File types in directory entries. */
export const ErofsFileType = {
  File: 1,
  Dir: 2,
  CharDev: 3,
  BlockDev: 4,
  Fifo: 5,
  Socket: 6,
  Symlink: 7,
} as const;

/** Inline xattr area header: name filter u32, shared count u8, 7 reserved bytes. */
export const EROFS_XATTR_IBODY_HEADER_SIZE = 12;
/** Most shared xattr ids one inode lists (u8 h_shared_count); more stay inline. */
export const EROFS_SHARED_XATTRS_MAX = 0xff;
/** One xattr entry header: name length u8, prefix index u8, value size u16; name and value follow, padded to 4. */
export const EROFS_XATTR_ENTRY_SIZE = 4;
/** Largest xattr value an entry can describe (u16 e_value_size). nyd allows 65536. */
export const EROFS_XATTR_VALUE_MAX = 0xffff;
/**
 * Largest inline xattr area: i_xattr_icount is a u16 counting 4-byte words
 * after the first 12 bytes, so 12 + 4 * 65534 bytes.
 */
export const EROFS_XATTR_IBODY_MAX = EROFS_XATTR_IBODY_HEADER_SIZE + 4 * (0xffff - 1);

/**
 * xattr name prefixes EROFS knows, by index. A name is stored as (index,
 * rest of the name). The two POSIX ACL names are whole names (rest empty).
 * Names outside these namespaces (system.* other than the ACLs) cannot be
 * stored: the kernel would neither list nor read them.
 */
export const EROFS_XATTR_PREFIXES: ReadonlyArray<{ index: number; prefix: string; whole: boolean }> = [
  { index: 2, prefix: 'system.posix_acl_access', whole: true },
  { index: 3, prefix: 'system.posix_acl_default', whole: true },
  { index: 1, prefix: 'user.', whole: false },
  { index: 4, prefix: 'trusted.', whole: false },
  { index: 6, prefix: 'security.', whole: false },
];

/** Largest number of extra devices: the superblock's extra_devices and the chunk index device id are u16. */
export const MAX_EXTRA_DEVICES = 0xffff;
/** Largest nid the superblock can name as root (u16 root_nid). */
export const MAX_ROOT_NID = 0xffff;
/** Largest uid, gid, nlink and size of a compact inode (u16, u16, u16, u32). */
export const COMPACT_ID_MAX = 0xffff;
export const COMPACT_NLINK_MAX = 0xffff;
export const COMPACT_SIZE_MAX = 0xffffffff;
/** Largest link count of an extended inode (u32). */
export const MAX_NLINK = 0xffffffff;
/**
 * Device numbers as the kernel decodes i_u.rdev (new_decode_dev): 12 bits of
 * major, 20 bits of minor.
 */
export const MAX_DEVICE_MAJOR = 0xfff;
export const MAX_DEVICE_MINOR = 0xfffff;
/**
 * Largest metadata image writeErofs() builds: it is one Buffer in memory.
 * Real images need far less (about 100 bytes per inode plus 8 per chunk: a
 * million files in ~150 MiB).
 */
export const MAX_IMAGE_SIZE = 2 ** 31;
/** Largest size of an extra device in blocks (u32 blocks_lo of its slot). */
export const MAX_DEVICE_BLOCKS = 0xffffffff;
/** Largest block address on the primary device (u32 startblk_lo). */
export const MAX_PRIMARY_BLOCK = 0xffffffff;
