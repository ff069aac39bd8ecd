/**
 * Network profiles for the startup benchmark, applied in front of a registry
 * on loopback. A profile is a round-trip time and, optionally, a rate:
 *
 *   unlimited      the registry itself, nothing in between
 *   1gbit-2ms      1 Gbit/s, 2 ms RTT
 *   100mbit-20ms   100 Mbit/s, 20 ms RTT
 *
 * The delay always comes from the delaying proxy (delay-proxy.ts: RTT / 2
 * each way). The rate comes from either
 *   'htb'    an HTB class on lo for what the proxy's port sends (htb.ts), or
 *   'proxy'  the proxy's own per-direction link rate.
 * Clients connect to the endpoint's host instead of the registry's.
 */
import { type PortShaper, shapeSourcePort } from './htb';
import { type DelayProxy, startDelayProxy } from './delay-proxy';

export type RateShaping = 'htb' | 'proxy';

export interface NetworkProfile {
  name: string;
  /** Undefined: unlimited. */
  rateBitsPerSecond?: number;
  rttMs: number;
}

export const NETWORK_PROFILES: readonly NetworkProfile[] = [
  { name: 'unlimited', rttMs: 0 },
  { name: '1gbit-2ms', rateBitsPerSecond: 1e9, rttMs: 2 },
  { name: '100mbit-20ms', rateBitsPerSecond: 100e6, rttMs: 20 },
];

export function networkProfile(name: string): NetworkProfile {
  const p = NETWORK_PROFILES.find((x) => x.name === name);
  if (!p) throw new Error(`unknown network profile "${name}" (known: ${NETWORK_PROFILES.map((x) => x.name).join(', ')})`);
  return p;
}

export interface ProfileEndpoint {
  profile: NetworkProfile;
  /** How the rate is applied; 'none' for a profile without one. */
  shaping: RateShaping | 'none';
  /** "127.0.0.1:PORT" to use instead of the registry's host. */
  host: string;
  port: number;
  proxy?: DelayProxy;
  shaper?: PortShaper;
  /** Removes the shaping and stops the proxy; always call it. */
  close(): Promise<void>;
}

/** `alwaysProxy`: put the proxy in front even for a profile without delay or rate (to measure its own cost). */
export async function applyNetworkProfile(
  profile: NetworkProfile,
  upstream: { host: string; port: number },
  shaping: RateShaping,
  alwaysProxy = false,
): Promise<ProfileEndpoint> {
  if (profile.rttMs === 0 && profile.rateBitsPerSecond === undefined && !alwaysProxy) {
    return { profile, shaping: 'none', host: `${upstream.host}:${upstream.port}`, port: upstream.port, close: async () => undefined };
  }
  const rate = profile.rateBitsPerSecond;
  const proxy = await startDelayProxy({
    upstreamHost: upstream.host,
    upstreamPort: upstream.port,
    oneWayDelayMs: profile.rttMs / 2,
    ...(rate !== undefined && shaping === 'proxy' ? { rateBytesPerSecond: rate / 8 } : {}),
  });
  let shaper: PortShaper | undefined;
  if (rate !== undefined && shaping === 'htb') {
    try {
      shaper = await shapeSourcePort(proxy.port, rate);
    } catch (err) {
      await proxy.close();
      throw err;
    }
  }
  return {
    profile,
    shaping: rate === undefined ? 'none' : shaping,
    host: `127.0.0.1:${proxy.port}`,
    port: proxy.port,
    proxy,
    ...(shaper ? { shaper } : {}),
    close: async () => {
      try {
        await shaper?.remove();
      } finally {
        await proxy.close();
      }
    },
  };
}
