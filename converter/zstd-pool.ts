/**
 * The zstd pool a conversion compresses with, for the entry files (which do
 * not reach native/ themselves): native/zstd-pool.ts's pool and its thread
 * limit.
 */
export { createZstdPool, MAX_ZSTD_THREADS } from '../native/zstd-pool';
