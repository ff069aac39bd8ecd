import { describe, expect, it } from 'vitest';
import { codeOf, ErrorCode } from '../../../common/errors';
import { isLoopbackHost, parseByteSize, parseDurationMs, parseHost, parseListenAddress, parseOriginUrl } from '../../../snapshotter/config/values';

function rejects(fn: () => unknown, key: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(codeOf(thrown)).toBe(ErrorCode.InvalidArgument);
  expect((thrown as Error).message).toContain(key);
}

describe('sizes', () => {
  it('reads bytes and 1024-based units', () => {
    expect(parseByteSize(4096, 'k', 0)).toBe(4096);
    expect(parseByteSize('0', 'k', 0)).toBe(0);
    expect(parseByteSize('512K', 'k', 0)).toBe(512 * 1024);
    expect(parseByteSize('10G', 'k', 0)).toBe(10 * 1024 ** 3);
    expect(parseByteSize('3MiB', 'k', 0)).toBe(3 * 1024 ** 2);
    expect(parseByteSize('2 gb', 'k', 0)).toBe(2 * 1024 ** 3);
    expect(parseByteSize('1T', 'k', 0)).toBe(1024 ** 4);
    expect(parseByteSize('100B', 'k', 0)).toBe(100);
  });
  it('refuses other text, fractions and values out of range', () => {
    rejects(() => parseByteSize('1.5G', 'cache.size', 0), 'cache.size');
    rejects(() => parseByteSize('10X', 'cache.size', 0), 'cache.size');
    rejects(() => parseByteSize(1.5, 'cache.size', 0), 'cache.size');
    rejects(() => parseByteSize(true, 'cache.size', 0), 'cache.size');
    rejects(() => parseByteSize('1K', 'cache.size', 2048), 'cache.size');
    rejects(() => parseByteSize('99999999T', 'cache.size', 0), 'cache.size');
  });
});

describe('durations', () => {
  it('reads seconds as numbers and strings with units', () => {
    expect(parseDurationMs(5, 'k', 0, 1e9)).toBe(5000);
    expect(parseDurationMs(0.25, 'k', 0, 1e9)).toBe(250);
    expect(parseDurationMs('500ms', 'k', 0, 1e9)).toBe(500);
    expect(parseDurationMs('1.5m', 'k', 0, 1e9)).toBe(90_000);
    expect(parseDurationMs('2h', 'k', 0, 1e9)).toBe(7_200_000);
  });
  it('refuses no unit, negatives and the out of range', () => {
    rejects(() => parseDurationMs('5', 'proxy.timeout', 0, 1e9), 'proxy.timeout');
    rejects(() => parseDurationMs('-1s', 'proxy.timeout', 0, 1e9), 'proxy.timeout');
    rejects(() => parseDurationMs('5d', 'proxy.timeout', 0, 1e9), 'proxy.timeout');
    rejects(() => parseDurationMs(-1, 'proxy.timeout', 0, 1e9), 'proxy.timeout');
    rejects(() => parseDurationMs('1s', 'proxy.timeout', 2000, 1e9), 'proxy.timeout');
  });
});

describe('hosts, URLs and addresses', () => {
  it('hosts are lower-cased host[:port]', () => {
    expect(parseHost('Registry.Local:5000', 'k')).toBe('registry.local:5000');
    expect(parseHost('[::1]:5000', 'k')).toBe('[::1]:5000');
    expect(parseHost('host:80', 'k')).toBe('host:80');
    for (const bad of ['http://h', 'h/path', 'u@h', '', 'h:port', 'h?x']) rejects(() => parseHost(bad, 'registry.insecure[0]'), 'registry.insecure[0]');
  });
  it('endpoint URLs are reduced to their origin', () => {
    expect(parseOriginUrl('https://m.example.com/', 'k')).toBe('https://m.example.com');
    expect(parseOriginUrl('http://10.0.0.5:5000', 'k')).toBe('http://10.0.0.5:5000');
    for (const bad of ['m.example.com', 'https://m/x', 'https://m/?a=1', 'ftp://m', 'https://u:p@m']) rejects(() => parseOriginUrl(bad, 'e'), 'e');
  });
  it('listen addresses', () => {
    expect(parseListenAddress('127.0.0.1:9110', 'k')).toEqual({ host: '127.0.0.1', port: 9110 });
    expect(parseListenAddress('[::1]:9110', 'k')).toEqual({ host: '::1', port: 9110 });
    expect(parseListenAddress(':9110', 'k')).toEqual({ host: '0.0.0.0', port: 9110 });
    expect(parseListenAddress('localhost:0', 'k')).toEqual({ host: 'localhost', port: 0 });
    for (const bad of ['9110', '127.0.0.1', '[zz]:1', 'h:70000', 'a b:1']) rejects(() => parseListenAddress(bad, 'metrics.address'), 'metrics.address');
  });
  it('loopback hosts', () => {
    for (const h of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.9.8.7', '[::1]:5000', 'x.localhost']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['10.0.0.1:5000', 'registry.local', '128.0.0.1', 'docker.io', '[::2]:1']) expect(isLoopbackHost(h)).toBe(false);
    for (const h of ['LOCALHOST:5000', '127.8.9.10:80', '127.0.0.1']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['127.0.0.256:5000', 'localhost.example.com', '10.0.0.1']) expect(isLoopbackHost(h)).toBe(false);
  });
});
