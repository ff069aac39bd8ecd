/**
 * The EROFS superblock and device table (types.ts for the terms). The
 * superblock sits at EROFS_SUPER_OFFSET of block 0; the device table follows
 * it directly, one slot per extra device (one per nyd blob).
 */
import type { BlobInfo } from '../../format-spec/types';
import {
  EROFS_BLOCK_BITS,
  EROFS_BLOCK_SIZE,
  EROFS_DEVICE_SLOT_SIZE,
  EROFS_DEVICE_TAG_SIZE,
  EROFS_FEATURE_COMPAT_MTIME,
  EROFS_FEATURE_INCOMPAT_CHUNKED_FILE,
  EROFS_FEATURE_INCOMPAT_DEVICE_TABLE,
  EROFS_SUPER_MAGIC,
  EROFS_SUPER_OFFSET,
  EROFS_SUPERBLOCK_SIZE,
} from './types';

/** Byte offset of the device table: right after the superblock, on a slot boundary. */
export const DEVICE_TABLE_OFFSET = EROFS_SUPER_OFFSET + EROFS_SUPERBLOCK_SIZE;

export interface SuperblockFields {
  /** nid of the root directory. */
  rootNid: number;
  /** Number of inodes. */
  inodes: number;
  /** Seconds every compact inode's mtime equals. */
  epoch: number;
  /** Size of the metadata image in blocks. */
  blocks: number;
  /** Number of extra devices (blobs). */
  devices: number;
  /** First block of the shared xattr area (0 when there is none). */
  xattrBlock: number;
}

/** Writes the superblock into `image` (block 0 must be zeroed). */
export function writeSuperblock(image: Buffer, f: SuperblockFields): void {
  const sb = image.subarray(EROFS_SUPER_OFFSET, EROFS_SUPER_OFFSET + EROFS_SUPERBLOCK_SIZE);
  sb.writeUInt32LE(EROFS_SUPER_MAGIC, 0);
  // 4: checksum, unused (no SB_CHKSUM compat feature).
  sb.writeUInt32LE(EROFS_FEATURE_COMPAT_MTIME, 8);
  sb.writeUInt8(EROFS_BLOCK_BITS, 12);
  // 13: no extension slots.
  sb.writeUInt16LE(f.rootNid, 14);
  sb.writeBigUInt64LE(BigInt(f.inodes), 16);
  sb.writeBigUInt64LE(BigInt(f.epoch), 24);
  // 32: fixed nanoseconds 0 (nyd stores whole seconds).
  sb.writeUInt32LE(f.blocks, 36);
  // 40: metadata area starts at block 0, so a nid is a byte offset / 32.
  sb.writeUInt32LE(f.xattrBlock, 44);
  // 48..79: uuid and volume name left zero (deterministic).
  sb.writeUInt32LE(EROFS_FEATURE_INCOMPAT_CHUNKED_FILE | EROFS_FEATURE_INCOMPAT_DEVICE_TABLE, 80);
  sb.writeUInt16LE(f.devices, 86);
  sb.writeUInt16LE(DEVICE_TABLE_OFFSET / EROFS_DEVICE_SLOT_SIZE, 88);
  // 90: directory blocks are file system blocks (dirblkbits 0); the rest stays zero.
}

/**
 * Writes one device slot per blob: tag = the digest's hex (informational:
 * mounts name the device files explicitly), blocks = uspace / block size.
 * uniaddr stays 0: chunks name their device, there is no flat address space.
 */
export function writeDeviceTable(image: Buffer, blobs: readonly BlobInfo[]): void {
  blobs.forEach((blob, k) => {
    const slot = image.subarray(DEVICE_TABLE_OFFSET + k * EROFS_DEVICE_SLOT_SIZE);
    slot.write(blob.digest.replace(/^sha256:/, '').slice(0, EROFS_DEVICE_TAG_SIZE), 0, EROFS_DEVICE_TAG_SIZE, 'latin1');
    slot.writeUInt32LE(blob.uspace / EROFS_BLOCK_SIZE, EROFS_DEVICE_TAG_SIZE);
  });
}
