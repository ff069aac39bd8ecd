/**
 * `nyd snapshotter --config FILE` as a real process from the built CLI
 * (dist/; run `npx tsc -p tsconfig.json` first): it serves containerd's
 * Snapshots gRPC service on its socket and Prometheus metrics, and exits 0
 * on SIGTERM, removing its socket. Until cli/main.ts registers the command,
 * the process calls dist/cli/snapshotter-command.js directly (printing an
 * error the way main does).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadSnapshotsProto } from '../../../snapshotter/snapshots/proto';
import { freePort } from '../../helpers/ports';

const REPO = path.resolve(__dirname, '..', '..', '..');
const MAIN_JS = path.join(REPO, 'dist', 'cli', 'main.js');
const COMMAND_JS = path.join(REPO, 'dist', 'cli', 'snapshotter-command.js');
const READY_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 30_000;

const work = mkdtempSync(path.join(tmpdir(), 'nyd-snapshotter-cmd-'));
const children = new Set<ChildProcess>();

afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function registeredInMain(): boolean {
  return existsSync(MAIN_JS) && readFileSync(MAIN_JS, 'utf8').includes('snapshotter-command');
}

interface Running {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number>;
}

function spawnSnapshotter(args: string[]): Running {
  if (!existsSync(COMMAND_JS)) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.json` before the tests');
  const argv = registeredInMain()
    ? [path.join(REPO, 'bin', 'nyd'), 'snapshotter', ...args]
    : [
        '-e',
        `require(${JSON.stringify(COMMAND_JS)}).snapshotterCommand(${JSON.stringify(args)}, { out: process.stdout, err: process.stderr })` +
          `.then((c) => { process.exitCode = c; }, (e) => { process.stderr.write('nyd snapshotter: ' + e.message + ' [' + e.code + ']\\n'); process.exitCode = 1; });`,
      ];
  const child = spawn(process.execPath, argv, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout?.resume();
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  return { child, stderr: () => err, exited };
}

/** The JSON log lines written so far. */
function logLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function waitReady(r: Running): Promise<Record<string, unknown>> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const ready = logLines(r.stderr()).find((l) => l.msg === 'ready');
    if (ready) return ready;
    if (r.child.exitCode !== null) throw new Error(`snapshotter exited ${r.child.exitCode} before ready:\n${r.stderr()}`);
    if (Date.now() > deadline) throw new Error(`snapshotter not ready in time:\n${r.stderr()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

function statCall(socket: string, key: string): Promise<grpc.ServiceError | undefined> {
  const { Client } = loadSnapshotsProto();
  const client = new Client(`unix:${socket}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.Stat({ snapshotter: 'nyd', key }, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null) => {
      client.close();
      resolve(err ?? undefined);
    });
  });
}

async function exitWithin(r: Running): Promise<number> {
  const timer = setTimeout(() => r.child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
  try {
    return await r.exited;
  } finally {
    clearTimeout(timer);
  }
}

describe('nyd snapshotter', () => {
  it('serves Snapshots on its socket and metrics, and stops cleanly on SIGTERM', async () => {
    const dir = mkdtempSync(path.join(work, 'run-'));
    const socket = path.join(dir, 'run', 'snapshotter.sock');
    const port = await freePort();
    const config = path.join(dir, 'config.toml');
    writeFileSync(config, `root = "${path.join(dir, 'root')}"\naddress = "${path.join(dir, 'unused.sock')}"\nlog_level = "info"\n[metrics]\naddress = "127.0.0.1:${port}"\n`);

    const r = spawnSnapshotter(['--config', config, '--address', socket]);
    const ready = await waitReady(r);
    expect(ready.address).toBe(socket);
    expect(ready.metrics).toBe(`http://127.0.0.1:${port}/metrics`);
    expect(existsSync(socket)).toBe(true);
    expect(existsSync(path.join(dir, 'unused.sock'))).toBe(false);

    const err = await statCall(socket, 'no-such-snapshot');
    expect(err?.code).toBe(grpc.status.NOT_FOUND);

    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    // prom-client writes the exposition (its own tests cover the format); here: the served samples.
    const text = await res.text();
    expect(text).toMatch(/^nyd_snapshot_op_seconds_count\{op="Stat",code="NOT_FOUND"\} 1$/m);
    expect(text).toMatch(/^nyd_mounts 0$/m);

    r.child.kill('SIGTERM');
    expect(await exitWithin(r)).toBe(0);
    expect(existsSync(socket)).toBe(false);
    const msgs = logLines(r.stderr()).map((l) => l.msg);
    expect(msgs).toContain('stopping');
    expect(msgs).toContain('stopped');
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });

  it('stops on SIGINT too, without a metrics server when none is configured', async () => {
    const dir = mkdtempSync(path.join(work, 'int-'));
    const socket = path.join(dir, 's.sock');
    const config = path.join(dir, 'config.toml');
    writeFileSync(config, `root = "${path.join(dir, 'root')}"\naddress = "${socket}"\n`);
    const r = spawnSnapshotter(['--config', config]);
    const ready = await waitReady(r);
    expect(ready.metrics).toBeUndefined();
    expect((await statCall(socket, 'x'))?.code).toBe(grpc.status.NOT_FOUND);
    r.child.kill('SIGINT');
    expect(await exitWithin(r)).toBe(0);
    expect(existsSync(socket)).toBe(false);
  });

  it('a bad config value fails at start with the key named', async () => {
    const config = path.join(work, 'bad.toml');
    writeFileSync(config, `[proxy]\nurl = "http://127.0.0.1:1"\ntimeout = "forever"\n`);
    const r = spawnSnapshotter(['--config', config, '--root', path.join(work, 'bad-root'), '--address', path.join(work, 'bad.sock')]);
    expect(await exitWithin(r)).toBe(1);
    expect(r.stderr()).toContain('proxy.timeout');
    expect(r.stderr()).toContain(config);
    expect(existsSync(path.join(work, 'bad.sock'))).toBe(false);
  });
});

describe('startSnapshotter (in process): the remote-layer seam', () => {
  it('hands the factory config, metrics and backends, serves with its handler, and closes it after the gRPC server', async () => {
    const { startSnapshotter } = await import('../../../snapshotter/service');
    const { parseConfig } = await import('../../../snapshotter/config/load');
    const { nullLogger } = await import('../../../common/logger');
    const dir = mkdtempSync(path.join(work, 'seam-'));
    const socket = path.join(dir, 's.sock');
    const config = parseConfig(`root = "${path.join(dir, 'root')}"\naddress = "${socket}"\n`, 'seam.toml');
    const order: string[] = [];
    let claimsAsked = 0;
    const running = await startSnapshotter(config, nullLogger, (ctx) => {
      expect(ctx.config).toBe(config);
      expect(typeof ctx.metrics.trackMount).toBe('function');
      expect(typeof ctx.backends.forImage).toBe('function');
      return {
        claims: () => {
          claimsAsked++;
          return false;
        },
        prepareRemote: async () => ({ committed: false }),
        lowerDir: () => undefined,
        release: async () => undefined,
        close: async () => {
          order.push(existsSync(socket) ? 'remote closed while serving' : 'remote closed after server');
        },
      };
    });
    await running.server.store.prepare('k1', undefined, { 'containerd.io/snapshot.ref': 'chain-1' });
    expect(claimsAsked).toBe(1);
    await running.close();
    await running.close();
    expect(order).toEqual(['remote closed after server']);
  });
});
