/**
 * A small LRU of decompressed units, so that reading one large chunk in
 * kernel-sized pieces (e.g. 1 MiB via 128 KiB FUSE reads) decompresses and
 * hashes it once.
 *
 * Bound: at most maxBytes of unit bytes and maxEntries entries; a unit
 * larger than maxBytes is not kept.
 */

/** Default byte budget of the LRU. */
export const DECODED_UNITS_MAX_BYTES = 32 * 1024 * 1024;
/** Default entry budget of the LRU. */
export const DECODED_UNITS_MAX_ENTRIES = 256;

export interface DecodedUnit {
  /** The unit's uncompressed bytes (exactly cuUsize). Never handed out; callers get copies. */
  bytes: Uint8Array;
  /** Chunks (offset:size:digest) already checked against their digest. */
  verified: Set<string>;
  /** Where the frame came from: a cached copy may be bad while the remote is good. */
  source: 'cache' | 'backend';
}

export class DecodedUnits {
  private readonly map = new Map<string, DecodedUnit>();
  private bytes = 0;

  constructor(
    readonly maxBytes: number = DECODED_UNITS_MAX_BYTES,
    readonly maxEntries: number = DECODED_UNITS_MAX_ENTRIES,
  ) {}

  get(key: string): DecodedUnit | undefined {
    const e = this.map.get(key);
    if (e) {
      this.map.delete(key);
      this.map.set(key, e);
    }
    return e;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  put(key: string, e: DecodedUnit): void {
    if (e.bytes.length > this.maxBytes) return;
    this.delete(key);
    this.map.set(key, e);
    this.bytes += e.bytes.length;
    for (const [k, old] of this.map) {
      if (this.bytes <= this.maxBytes && this.map.size <= this.maxEntries) break;
      this.map.delete(k);
      this.bytes -= old.bytes.length;
    }
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    this.map.delete(key);
    this.bytes -= e.bytes.length;
  }
}
