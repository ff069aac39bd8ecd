/**
 * Polling for tests: until() calls fn every POLL_MS until it returns
 * something other than undefined, and fails naming `what` after `ms`.
 */
const POLL_MS = 100;

export async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
