/**
 * Where blob bytes come from: BlobBackend implementations (engine/types.ts)
 * for the sources a host may have besides the image's own registry, and the
 * composition that tries them in order.
 *
 * Terms
 * - source: one place a range of a blob can be read from. Kinds: a registry
 *   mirror endpoint (MirrorBackend: the same /v2/<repo>/blobs/<digest> path on
 *   another host), an HTTP proxy (ProxyBackend: the origin's blob URL sent
 *   through the proxy, the way a P2P daemon such as Dragonfly's dfdaemon is
 *   used), and the origin registry (the lazy engine's registry backend).
 * - chain: the sources of one image, in the order tried: mirror endpoints of
 *   the image's registry, then the proxy, then the origin (FallbackBackend).
 * - health: per source and shared by every chain that uses it (one process-wide
 *   record per mirror endpoint or proxy). A source is "down" after a read from
 *   it failed in a way that says the source is broken (unreachable, timed out,
 *   5xx, malformed answer), for a cool-off period; or while its health checker
 *   says so. A down source is skipped, except the last of a chain, which is
 *   always tried (there is nothing to fall back to).
 *
 * Outcome of one attempt at one source, and what the chain does next:
 *   ok                              -> return the bytes
 *   Canceled (the caller's signal)  -> stop, reject Canceled
 *   InvalidArgument                 -> stop (the request is wrong everywhere)
 *   NotFound, Unauthorized,
 *   Unsupported                     -> next source; health unchanged (the source
 *                                      works, it cannot serve this blob); the
 *                                      chain skips it for that blob from then on
 *   anything else                   -> mark the source down, next source
 *   last source fails               -> reject with its error's kind, the message
 *                                      naming every source tried
 */
import type { BlobBackend } from '../types';

/** What happened at one source for one read (metrics). */
export type SourceResult = 'ok' | 'error' | 'miss' | 'skipped';

/** Called once per source considered for a read. */
export type SourceObserver = (source: string, result: SourceResult, bytes: number, seconds: number) => void;

/** Up/down state of one source, shared by every chain that reads from it. */
export interface SourceHealth {
  /** Name for logs and metrics: "mirror https://m.example.com", "proxy", "origin". */
  readonly name: string;
  /** Whether reads should go to the source now. */
  isUp(): boolean;
  /** A read failed in a way that says the source is broken: down for the cool-off. */
  markFailed(reason: string): void;
  /** A read succeeded. */
  markOk(): void;
}

/** One source of a chain. */
export interface ChainMember {
  readonly name: string;
  readonly backend: BlobBackend;
  readonly health: SourceHealth;
}
