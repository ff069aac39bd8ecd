/**
 * The nyd format, version 2 (SPEC.md): types, limits, and the one reader and
 * writer of bootstraps, blob tails and chunks.
 */
export * from './types';
export * from './limits';
export { FormatError, FormatErrorCode, isFormatError } from './errors';
export { encodeBootstrap, decodeBootstrap, decodeBootstrapHeader } from './bootstrap';
export { encodeToc, decodeToc, encodeFooter, decodeFooter, blobTail, verifyBlob } from './blob';
export { alignUp, tocAddresses } from './address-space';
export { decodeUnit, decodeChunk, sliceChunk, checkUnitSize, chunkWhere, sha256 } from './chunk';
export { lookup, walk, linkCounts, statMode, chunksFor, digestHex, compareNames, type WalkEntry, type ChunkSpan } from './tree';
export * from './oci-names';
export {
  BOOTSTRAP_LAYER_PATH,
  packBootstrapTar,
  packBootstrapLayer,
  unpackBootstrapLayer,
  type PackedBootstrapLayer,
} from './bootstrap-layer';
