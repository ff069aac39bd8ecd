/**
 * Layer decompression for converter input. The compression is sniffed from
 * the first bytes (gzip 1f 8b, zstd 28 b5 2f fd or a skippable frame, else a
 * plain tar) whatever the media type says, because registries and tools get
 * media types wrong.
 *
 * Decompression bombs: once more than `ratioFloor` bytes came out and the
 * output is more than `maxRatio` times the input read so far, the stream
 * fails with LimitExceeded. Output is produced on demand (backpressure is
 * kept inside a single input chunk too), so a bomb is stopped after about
 * ratioFloor bytes, never materialised.
 *
 * Buffering: at most one 128 KiB zstd output buffer or zlib's chunk plus the
 * result stream's 256 KiB highWaterMark.
 *
 * zstd goes through native/zstd.ts's streaming decoder, which produces output
 * on demand (one block-sized buffer per step).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { dataCorrupt, limitExceeded, NydError, wrap } from '../common/errors';
import { decompressChunks } from '../native/zstd';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Bytes needed to recognise every supported compression. */
export const SNIFF_SIZE = 4;
/**
 * Largest accepted ratio of uncompressed to compressed bytes for a converter
 * input layer (gzip tops out near 1032:1, anything beyond is a bomb).
 */
export const MAX_DECOMPRESSION_RATIO = 1024;
/** The ratio is checked only past this many uncompressed bytes, where a ratio means something. */
export const DECOMPRESSION_RATIO_FLOOR = 16 * 1024 * 1024;
/** highWaterMark of the decompressed stream. */
export const DECOMPRESS_HIGH_WATER_MARK = 256 * 1024;

export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd && head[0] === 0x28) return 'zstd';
  // A zstd skippable frame (magic 0x184D2A50..5F, little-endian) may precede the data frames.
  if (head.length >= 4 && (head[0]! & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) {
    return 'zstd';
  }
  return 'none';
}

export interface DecompressOptions {
  /** Names the input in error messages, e.g. "layer sha256:ab12..". Default "layer". */
  name?: string;
  /** Default MAX_DECOMPRESSION_RATIO. */
  maxRatio?: number;
  /** Default DECOMPRESSION_RATIO_FLOOR. */
  ratioFloor?: number;
}

export interface DecompressStats {
  /** What the first bytes said; undefined until they were read. */
  compression: Compression | undefined;
  /** Bytes read from the input so far. */
  compressed: number;
  /** Bytes produced so far. */
  uncompressed: number;
  /** sha256 of the whole output ("sha256:<hex>"), set once the stream has ended successfully. */
  diffId: string | undefined;
}

export interface DecompressedLayer {
  /** The uncompressed tar. Errors are NydErrors: DataCorrupt, LimitExceeded, or the input's own. */
  stream: Readable;
  stats(): DecompressStats;
}

export function decompressLayer(input: Readable, opts: DecompressOptions = {}): DecompressedLayer {
  const name = opts.name ?? 'layer';
  const maxRatio = opts.maxRatio ?? MAX_DECOMPRESSION_RATIO;
  const ratioFloor = opts.ratioFloor ?? DECOMPRESSION_RATIO_FLOOR;
  const st: DecompressStats = { compression: undefined, compressed: 0, uncompressed: 0, diffId: undefined };
  const hash = createHash('sha256');
  const ours = new WeakSet<Error>();
  const fail = (err: NydError): NydError => (ours.add(err), err);

  function account(out: Buffer): void {
    st.uncompressed += out.length;
    if (st.uncompressed > ratioFloor && st.uncompressed > maxRatio * st.compressed) {
      throw fail(
        limitExceeded(
          `${name}: decompression ratio over ${maxRatio}:1 (${st.uncompressed} bytes out of ${st.compressed}); possible decompression bomb`,
          { compressed: st.compressed, uncompressed: st.uncompressed, maxRatio },
        ),
      );
    }
    hash.update(out);
  }

  async function* run(): AsyncGenerator<Buffer> {
    const it = input[Symbol.asyncIterator]() as AsyncIterator<unknown>;
    const next = async (): Promise<Buffer | undefined> => {
      const r = await it.next();
      if (r.done) return undefined;
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as string);
      st.compressed += b.length;
      return b;
    };
    try {
      const head: Buffer[] = [];
      let headLen = 0;
      let ended = false;
      while (headLen < SNIFF_SIZE) {
        const b = await next();
        if (b === undefined) {
          ended = true;
          break;
        }
        head.push(b);
        headLen += b.length;
      }
      const first = Buffer.concat(head);
      const kind = detectCompression(first);
      st.compression = kind;
      const rest = async function* (): AsyncGenerator<Buffer> {
        if (first.length > 0) yield first;
        for (let b = ended ? undefined : await next(); b !== undefined; b = await next()) yield b;
      };
      const out = kind === 'gzip' ? gunzip(rest()) : kind === 'zstd' ? decompressChunks(rest()) : rest();
      for await (const b of out) {
        account(b);
        yield b;
      }
      st.diffId = `sha256:${hash.digest('hex')}`;
    } catch (err) {
      throw err instanceof Error && ours.has(err) ? err : wrap(err, name);
    } finally {
      if (!input.readableEnded) input.destroy();
    }
  }

  async function* gunzip(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const gz = createGunzip();
    pipeline(src, gz).catch(() => {
      /* surfaces through gz */
    });
    try {
      for await (const b of gz) yield b as Buffer;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && code.startsWith('Z_')) {
        throw fail(
          code === 'Z_BUF_ERROR'
            ? dataCorrupt(`${name}: truncated gzip stream`, { compressed: st.compressed })
            : dataCorrupt(`${name}: corrupt gzip stream: ${(err as Error).message}`, { compressed: st.compressed }),
        );
      }
      throw err;
    } finally {
      gz.destroy();
    }
  }

  const stream = Readable.from(run(), { objectMode: false, highWaterMark: DECOMPRESS_HIGH_WATER_MARK });
  return { stream, stats: () => ({ ...st }) };
}
