/**
 * writeErofs: a nyd Bootstrap to an EROFS metadata image (types.ts for the
 * terms, layout and preconditions).
 *
 * Layout of the image, in this order:
 *   block 0: zeros, the superblock at 1024, the device table right after;
 *   the shared xattr area (if any inodes share an xattr), from a new block;
 *   inodes in bootstrap index order (root first), each on a 32-byte slot:
 *     fixed part, inline xattrs, then either the tail of its data (symlinks
 *     and directories whose last block fits) or its chunk indexes (8-byte
 *     aligned); an inode with inline data never crosses a block boundary;
 *   data blocks: the whole blocks of directories and symlinks, in inode order.
 * Two passes: the first sizes and places every inode (sizes do not depend on
 * nids), the second writes bytes, when every nid is known.
 */
import { dataCorrupt, limitExceeded, unsupported } from '../../common/errors';
import { linkCounts, statMode } from '../../format-spec/tree';
import { InodeType, type Bootstrap, type Inode } from '../../format-spec/types';
import { direntBlocks, encodeDirents, sortDirents } from './dir';
import { coreSize, DIRENT_TYPES, encodeDevice, needsExtended, writeInodeCore, type InodeCore } from './inode';
import { DEVICE_TABLE_OFFSET, writeDeviceTable, writeSuperblock } from './superblock';
import {
  EROFS_BLOCK_BITS,
  EROFS_BLOCK_SIZE,
  EROFS_CHUNK_FORMAT_BLKBITS_MASK,
  EROFS_CHUNK_FORMAT_INDEXES,
  EROFS_CHUNK_INDEX_SIZE,
  EROFS_DEVICE_SLOT_SIZE,
  EROFS_ISLOT_SIZE,
  EROFS_NAME_LEN,
  EROFS_NULL_BLOCK,
  ErofsLayout,
  MAX_DEVICE_BLOCKS,
  MAX_EXTRA_DEVICES,
  MAX_IMAGE_SIZE,
  MAX_PRIMARY_BLOCK,
  MAX_ROOT_NID,
} from './types';
import { encodeXattrs, sharedXattrs, xattrCount } from './xattr';

const alignTo = (n: number, a: number): number => Math.ceil(n / a) * a;

/** A directory entry before nids are known. */
interface NamedChild {
  name: Buffer;
  /** Inode index it names. */
  index: number;
}

/** Where and how one inode is written. */
interface Plan {
  core: InodeCore;
  xattrs: Buffer;
  /** Byte offset of the inode in the image (nid = pos / 32). */
  pos: number;
  /** Bytes of data kept right after the inode (inline tail). */
  tail: number;
  /** Whole blocks of data in the data area, and the first of them. */
  blocks: number;
  startBlock: number;
  /** Chunk indexes after the inode (chunk-based files). */
  chunkCount: number;
  /** Symlink target bytes. */
  target?: Buffer;
  /** Directory entries, "." and ".." included, sorted. */
  children?: NamedChild[];
}

/**
 * The EROFS metadata image of `b`. Throws LimitExceeded, Unsupported or
 * DataCorrupt (naming the inode) for anything EROFS cannot express.
 */
export function writeErofs(b: Bootstrap): Buffer {
  checkBlobs(b);
  const chunkFormat = chunkFormatOf(b.chunkSize);
  const nlinks = linkCounts(b);
  const parents = parentsOf(b);
  const epoch = chooseEpoch(b.inodes);
  const shared = sharedXattrs(b.inodes.map((inode) => inode.xattrs));
  const plans = b.inodes.map((inode, i) => planInode(b, i, inode, parents[i], nlinks[i], epoch, chunkFormat, shared.ids));

  let pos = DEVICE_TABLE_OFFSET + b.blobs.length * EROFS_DEVICE_SLOT_SIZE;
  const xattrBlock = shared.area.length > 0 ? alignTo(pos, EROFS_BLOCK_SIZE) / EROFS_BLOCK_SIZE : 0;
  if (shared.area.length > 0) pos = xattrBlock * EROFS_BLOCK_SIZE + shared.area.length;
  for (const plan of plans) pos = place(plan, alignTo(pos, EROFS_ISLOT_SIZE));
  let block = alignTo(pos, EROFS_BLOCK_SIZE) / EROFS_BLOCK_SIZE;
  for (const plan of plans) {
    plan.startBlock = plan.blocks > 0 ? block : 0;
    block += plan.blocks;
  }
  const size = block * EROFS_BLOCK_SIZE;
  if (size > MAX_IMAGE_SIZE || block > MAX_PRIMARY_BLOCK) {
    throw limitExceeded(`erofs: the metadata image would need ${size} bytes, at most ${MAX_IMAGE_SIZE} are built`);
  }
  const rootNid = plans[0].pos / EROFS_ISLOT_SIZE;
  if (rootNid > MAX_ROOT_NID) throw limitExceeded(`erofs: root nid ${rootNid} exceeds ${MAX_ROOT_NID}`);

  const image = Buffer.alloc(size);
  writeSuperblock(image, { rootNid, inodes: plans.length, epoch, blocks: block, devices: b.blobs.length, xattrBlock });
  writeDeviceTable(image, b.blobs);
  shared.area.copy(image, xattrBlock * EROFS_BLOCK_SIZE);
  plans.forEach((plan, i) => writeInode(image, b, i, plan, plans));
  return image;
}

function checkBlobs(b: Bootstrap): void {
  if (b.blobs.length > MAX_EXTRA_DEVICES) {
    throw limitExceeded(`erofs: ${b.blobs.length} blobs, EROFS has at most ${MAX_EXTRA_DEVICES} extra devices`);
  }
  b.blobs.forEach((blob, k) => {
    if (blob.uspace % EROFS_BLOCK_SIZE !== 0 || blob.uspace / EROFS_BLOCK_SIZE > MAX_DEVICE_BLOCKS) {
      throw limitExceeded(`erofs: blob ${k} address space of ${blob.uspace} bytes is not a whole number of at most ${MAX_DEVICE_BLOCKS} blocks`);
    }
  });
}

/** The chunk format word: indexes with a device id, and the chunk size as a block shift. */
function chunkFormatOf(chunkSize: number): number {
  const bits = Math.log2(chunkSize) - EROFS_BLOCK_BITS;
  if (!Number.isInteger(bits) || bits < 0 || bits > EROFS_CHUNK_FORMAT_BLKBITS_MASK) {
    throw unsupported(`erofs: chunk size ${chunkSize} is not a power of two of at least ${EROFS_BLOCK_SIZE} bytes`);
  }
  return EROFS_CHUNK_FORMAT_INDEXES | bits;
}

/** Parent directory of each directory (the root is its own). */
function parentsOf(b: Bootstrap): Uint32Array {
  const parents = new Uint32Array(b.inodes.length);
  b.inodes.forEach((inode, i) => {
    for (const [, child] of inode.entries ?? []) if (b.inodes[child].type === InodeType.Dir) parents[child] = i;
  });
  return parents;
}

/**
 * The superblock epoch: the most common non-negative mtime (ties: the
 * earliest), so as many inodes as possible can be compact. Compact inodes
 * carry no time of their own on kernels before 6.15, so they are used only
 * when their mtime is exactly the epoch.
 */
function chooseEpoch(inodes: readonly Inode[]): number {
  const counts = new Map<number, number>();
  for (const inode of inodes) if (inode.mtime >= 0) counts.set(inode.mtime, (counts.get(inode.mtime) ?? 0) + 1);
  let best = 0;
  let bestCount = 0;
  for (const [mtime, count] of counts) {
    if (count > bestCount || (count === bestCount && mtime < best)) [best, bestCount] = [mtime, count];
  }
  return best;
}

function nameBytes(name: string, where: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length < 1 || bytes.length > EROFS_NAME_LEN) {
    throw limitExceeded(`${where}: name of ${bytes.length} bytes, EROFS allows 1..${EROFS_NAME_LEN}`);
  }
  return bytes;
}

function planInode(
  b: Bootstrap,
  i: number,
  inode: Inode,
  parent: number,
  nlink: number,
  epoch: number,
  chunkFormat: number,
  sharedIds: ReadonlyMap<string, number>,
): Plan {
  const where = `erofs: inode ${i}`;
  const xattrs = encodeXattrs(inode.xattrs, sharedIds, where);
  const core: InodeCore = {
    extended: false,
    layout: ErofsLayout.FlatPlain,
    xattrCount: xattrCount(xattrs.length),
    mode: statMode(inode),
    nlink,
    size: 0,
    mtime: inode.mtime,
    iu: 0,
    ino: i + 1,
    uid: inode.uid,
    gid: inode.gid,
  };
  const plan: Plan = { core, xattrs, pos: 0, tail: 0, blocks: 0, startBlock: 0, chunkCount: 0 };
  let dataLength = 0;
  switch (inode.type) {
    case InodeType.File:
      core.size = inode.size;
      if (inode.size > 0) {
        checkChunks(b, inode, where);
        core.layout = ErofsLayout.ChunkBased;
        core.iu = chunkFormat;
        plan.chunkCount = inode.chunks?.length ?? 0;
      }
      break;
    case InodeType.Dir: {
      const children: NamedChild[] = [
        { name: Buffer.from('.'), index: i },
        { name: Buffer.from('..'), index: parent },
        ...(inode.entries ?? []).map(([name, index]) => ({ name: nameBytes(name, `${where} entry ${JSON.stringify(name)}`), index })),
      ];
      plan.children = sortDirents(children);
      dataLength = direntBlocks(plan.children.map((c) => c.name)).size;
      break;
    }
    case InodeType.Symlink:
      plan.target = Buffer.from(inode.target ?? '', 'utf8');
      dataLength = plan.target.length;
      break;
    case InodeType.CharDev:
    case InodeType.BlockDev:
      core.iu = encodeDevice(inode.rdevMajor ?? 0, inode.rdevMinor ?? 0, where);
      break;
    default:
      break;
  }
  if (inode.type === InodeType.Dir || inode.type === InodeType.Symlink) core.size = dataLength;
  core.extended = needsExtended(inode, core.size, nlink, epoch);
  if (dataLength > 0) {
    // The last partial block goes inline when it fits in the inode's block.
    const tail = dataLength % EROFS_BLOCK_SIZE;
    if (tail > 0 && coreSize(core.extended) + xattrs.length + tail <= EROFS_BLOCK_SIZE) {
      core.layout = ErofsLayout.FlatInline;
      plan.tail = tail;
      plan.blocks = Math.floor(dataLength / EROFS_BLOCK_SIZE);
    } else {
      plan.blocks = Math.ceil(dataLength / EROFS_BLOCK_SIZE);
    }
  }
  return plan;
}

/** EROFS chunks sit on the grid k * chunkSize, one index each: the nyd chunks must be cut the same way. */
function checkChunks(b: Bootstrap, inode: Inode, where: string): void {
  const chunks = inode.chunks ?? [];
  if (chunks.length !== Math.ceil(inode.size / b.chunkSize)) {
    throw dataCorrupt(`${where}: ${chunks.length} chunks for ${inode.size} bytes in chunks of ${b.chunkSize}`);
  }
  chunks.forEach((c, k) => {
    const at = `${where} chunk ${k}`;
    if (k < chunks.length - 1 && c.size !== b.chunkSize) throw dataCorrupt(`${at}: ${c.size} bytes, not a whole chunk of ${b.chunkSize}`);
    const blob = b.blobs[c.blob];
    if (blob === undefined || c.uoffset % EROFS_BLOCK_SIZE !== 0 || c.uoffset + c.size > blob.uspace) {
      throw dataCorrupt(`${at}: uoffset ${c.uoffset} is not a block inside blob ${c.blob}'s address space`);
    }
    if (c.uoffset / EROFS_BLOCK_SIZE >= EROFS_NULL_BLOCK) {
      throw limitExceeded(`${at}: device block ${c.uoffset / EROFS_BLOCK_SIZE} is beyond EROFS's 32-bit chunk addresses`);
    }
  });
}

/** Bytes an inode takes in the metadata area, from its start. */
function recordSize(plan: Plan): number {
  const head = coreSize(plan.core.extended) + plan.xattrs.length;
  if (plan.core.layout !== ErofsLayout.ChunkBased) return head + plan.tail;
  return alignTo(head, EROFS_CHUNK_INDEX_SIZE) + plan.chunkCount * EROFS_CHUNK_INDEX_SIZE;
}

/** Places an inode at `pos` (32-aligned) or the next block, and returns where the next may start. */
function place(plan: Plan, pos: number): number {
  const keep = plan.core.layout === ErofsLayout.FlatInline ? recordSize(plan) : coreSize(plan.core.extended);
  const inBlock = pos % EROFS_BLOCK_SIZE;
  plan.pos = inBlock + keep > EROFS_BLOCK_SIZE ? alignTo(pos, EROFS_BLOCK_SIZE) : pos;
  return plan.pos + recordSize(plan);
}

function writeInode(image: Buffer, b: Bootstrap, i: number, plan: Plan, plans: readonly Plan[]): void {
  const where = `erofs: inode ${i}`;
  const inode = b.inodes[i];
  if (plan.blocks > 0) plan.core.iu = plan.startBlock;
  writeInodeCore(image, plan.pos, plan.core, where);
  const after = plan.pos + coreSize(plan.core.extended);
  plan.xattrs.copy(image, after);
  const dataAt = after + plan.xattrs.length;

  let data: Buffer | undefined = plan.target;
  if (plan.children !== undefined) {
    data = encodeDirents(
      plan.children.map((c) => ({ name: c.name, nid: plans[c.index].pos / EROFS_ISLOT_SIZE, type: DIRENT_TYPES[b.inodes[c.index].type] })),
    );
  }
  if (data !== undefined && data.length > 0) {
    const whole = data.length - plan.tail;
    data.copy(image, plan.startBlock * EROFS_BLOCK_SIZE, 0, whole);
    data.copy(image, dataAt, whole);
  }
  if (plan.core.layout === ErofsLayout.ChunkBased) {
    let at = alignTo(dataAt, EROFS_CHUNK_INDEX_SIZE);
    for (const c of inode.chunks ?? []) {
      // startblk_hi stays 0: device blocks fit 32 bits (checked).
      image.writeUInt16LE(c.blob + 1, at + 2);
      image.writeUInt32LE(c.uoffset / EROFS_BLOCK_SIZE, at + 4);
      at += EROFS_CHUNK_INDEX_SIZE;
    }
  }
}
