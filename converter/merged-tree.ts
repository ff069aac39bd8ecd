/**
 * The merged file tree of an image, built by applying layer entries in order
 * with OCI layer semantics:
 * - `.wh.NAME` deletes NAME as it was in lower layers;
 * - `.wh..wh..opq` hides every lower-layer entry of its directory, keeping
 *   entries of the same layer (whatever their order in the tar);
 * - a directory entry over an existing directory updates its metadata and
 *   keeps its children; any other entry replaces what was at its path;
 * - a hardlink names the node already at its target path, so the names share
 *   one node (and later one inode);
 * - missing parents are created as directories (0755, root).
 *
 * Paths are hostile input: absolute paths and `..` components are rejected,
 * never resolved. Node identity is object identity: hardlinked names hold the
 * same Node.
 */
import { dataCorrupt, limitExceeded, quoteName } from '../common/errors';
import { InodeType } from '../format-spec/types';
import type { ChunkRef, Inode } from '../format-spec/types';
import { MAX_DEPTH, MAX_INODES, MAX_NAME_LENGTH, MAX_PATH_LENGTH } from '../format-spec/limits';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

/** What a tar entry says about a node: an Inode without its tree and content links. */
export type EntryMeta = Omit<Inode, 'entries' | 'chunks'>;

export interface Node extends EntryMeta {
  /** Dir only: name -> node. */
  children?: Map<string, Node>;
  /** Dir only: name -> layer that wrote that entry (whiteouts and opaque markers hide lower layers only). */
  entryLayers?: Map<string, number>;
  /** File only; filled once the entry's data has been chunked. */
  chunks?: ChunkRef[];
}

/** Split a tar path into checked components. Empty array means the root. */
export function splitPath(raw: string): string[] {
  if (raw.startsWith('/')) throw dataCorrupt(`absolute path ${quoteName(raw)}`, { path: raw });
  if (Buffer.byteLength(raw) > MAX_PATH_LENGTH) {
    throw limitExceeded(`path ${quoteName(raw)} is longer than ${MAX_PATH_LENGTH} bytes`, { path: raw });
  }
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw dataCorrupt(`path ${quoteName(raw)} has a ".." component`, { path: raw });
    if (part.includes('\0')) throw dataCorrupt(`path ${quoteName(raw)} has a NUL byte`, { path: raw });
    if (Buffer.byteLength(part) > MAX_NAME_LENGTH) {
      throw limitExceeded(`a name in path ${quoteName(raw)} is longer than ${MAX_NAME_LENGTH} bytes`, { path: raw });
    }
    parts.push(part);
  }
  if (parts.length > MAX_DEPTH) throw limitExceeded(`path ${quoteName(raw)} is deeper than ${MAX_DEPTH} levels`, { path: raw });
  return parts;
}

function newDir(): Node {
  return { type: InodeType.Dir, mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, children: new Map(), entryLayers: new Map() };
}

function setEntry(dir: Node, name: string, node: Node, layer: number): void {
  dir.children?.set(name, node);
  dir.entryLayers?.set(name, layer);
}

function deleteEntry(dir: Node, name: string): void {
  dir.children?.delete(name);
  dir.entryLayers?.delete(name);
}

export class MergedTree {
  readonly root: Node = newDir();
  private nodeCount = 1;

  /** The node at `parts`, or undefined. Does not follow symlinks. */
  lookup(parts: readonly string[]): Node | undefined {
    let node: Node | undefined = this.root;
    for (const part of parts) {
      node = node.children?.get(part);
      if (!node) return undefined;
    }
    return node;
  }

  /** Apply a whiteout or opaque marker. Returns true if `parts` named one. */
  applyWhiteout(parts: readonly string[], layer: number): boolean {
    const name = parts[parts.length - 1];
    if (name === undefined || !name.startsWith(WHITEOUT_PREFIX)) return false;
    const dir = this.lookup(parts.slice(0, -1));
    if (!dir || dir.type !== InodeType.Dir) return true; // nothing below to hide
    const layers = dir.entryLayers as Map<string, number>;
    if (name === OPAQUE_MARKER) {
      for (const [childName, childLayer] of [...layers]) if (childLayer < layer) deleteEntry(dir, childName);
      return true;
    }
    const victim = name.slice(WHITEOUT_PREFIX.length);
    if (victim === '' || victim === '.' || victim === '..') {
      throw dataCorrupt(`whiteout ${quoteName(parts.join('/'))} names no entry`);
    }
    if (victim.startsWith(WHITEOUT_PREFIX)) return true; // other AUFS metadata (.wh..wh.plnk etc.): nothing to merge
    const victimLayer = layers.get(victim);
    if (victimLayer !== undefined && victimLayer < layer) deleteEntry(dir, victim);
    return true;
  }

  /** Put a new node (file, dir, symlink, device, fifo) at `parts`; returns the node now there. */
  put(parts: readonly string[], meta: EntryMeta, layer: number): Node {
    if (parts.length === 0) {
      if (meta.type !== InodeType.Dir) throw dataCorrupt('the root must be a directory');
      Object.assign(this.root, meta, { children: this.root.children, entryLayers: this.root.entryLayers });
      return this.root;
    }
    const dir = this.ensureDir(parts.slice(0, -1), layer);
    const name = parts[parts.length - 1] as string;
    const existing = dir.children?.get(name);
    if (meta.type === InodeType.Dir && existing?.type === InodeType.Dir) {
      Object.assign(existing, meta, { children: existing.children, entryLayers: existing.entryLayers });
      dir.entryLayers?.set(name, layer);
      return existing;
    }
    const node: Node = meta.type === InodeType.Dir ? { ...newDir(), ...meta } : { ...meta };
    if (meta.type === InodeType.Dir) {
      node.children = new Map();
      node.entryLayers = new Map();
    }
    this.count();
    setEntry(dir, name, node, layer);
    return node;
  }

  /** Add `parts` as another name of the node at `targetParts`. */
  link(parts: readonly string[], targetParts: readonly string[], layer: number): void {
    const target = this.lookup(targetParts);
    if (!target) {
      throw dataCorrupt(`hardlink target ${quoteName(targetParts.join('/'))} does not exist`, {
        path: parts.join('/'),
      });
    }
    if (target.type === InodeType.Dir) {
      throw dataCorrupt(`hardlink target ${quoteName(targetParts.join('/'))} is a directory`);
    }
    if (parts.length === 0) throw dataCorrupt('hardlink to the root');
    const dir = this.ensureDir(parts.slice(0, -1), layer);
    const name = parts[parts.length - 1] as string;
    setEntry(dir, name, target, layer);
  }

  private ensureDir(parts: readonly string[], layer: number): Node {
    let node = this.root;
    for (const part of parts) {
      let child = node.children?.get(part);
      if (!child || child.type !== InodeType.Dir) {
        child = newDir();
        this.count();
        setEntry(node, part, child, layer);
      }
      node = child;
    }
    return node;
  }

  private count(): void {
    if (++this.nodeCount > MAX_INODES) throw limitExceeded(`image has more than ${MAX_INODES} entries`);
  }
}
