import { describe, expect, it } from 'vitest';
import { parseChallenges } from '../../../oci/registry/challenge';

describe('parseChallenges', () => {
  it('parses a Bearer challenge with quoted parameters', () => {
    expect(
      parseChallenges('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"'),
    ).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull,push' },
      },
    ]);
  });

  it('parses Basic, token values, escapes, case and spacing', () => {
    expect(parseChallenges('basic Realm="my \\"registry\\""')).toEqual([{ scheme: 'basic', params: { realm: 'my "registry"' } }]);
    expect(parseChallenges('Bearer  realm = "r" , error=insufficient_scope')).toEqual([
      { scheme: 'bearer', params: { realm: 'r', error: 'insufficient_scope' } },
    ]);
  });

  it('splits several challenges in one header and across headers', () => {
    const got = parseChallenges(['Basic realm="a", Bearer realm="https://t/token",service="s"', 'Negotiate']);
    expect(got.map((c) => c.scheme)).toEqual(['basic', 'bearer', 'negotiate']);
    expect(got[1]?.params).toEqual({ realm: 'https://t/token', service: 's' });
  });

  it('survives malformed input', () => {
    expect(parseChallenges(undefined)).toEqual([]);
    expect(parseChallenges('')).toEqual([]);
    expect(parseChallenges('Bearer realm="unterminated')).toEqual([{ scheme: 'bearer', params: {} }]);
    expect(parseChallenges('=== ,,')).toEqual([]);
  });
});
