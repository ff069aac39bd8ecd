#!/usr/bin/env node
// Launcher of nyd's containerd snapshotter for the tests and the demo. The
// `--config` mode is exactly `nyd snapshotter`; the flag mode wires the
// server and the nyd remote handler directly, with knobs the config file
// does not offer (a fast status-file interval for short demos and tests).
// Runs the BUILT code (dist/): `npx tsc -p tsconfig.json` first.
//
// Two modes:
//   --config FILE [--root DIR] [--address SOCK] [--metrics-address ADDR] [--log-level L]
//       exactly `nyd snapshotter` (config file, backend chain, metrics) with
//       makeSnapshotterCommand(nydRemoteFromConfig)
//   --root DIR --address SOCK --cache-dir DIR [--cache-size BYTES] [--plain-http]
//   [--insecure HOST]... [--prefetch none|list|all] [--status-interval MS] [--log-level L]
//       startSnapshotterServer + createNydRemoteHandler, nothing else
//
// Both log JSON lines on stderr, one with "msg":"ready" once containerd can
// call the socket. SIGTERM/SIGINT: stop serving, unmount the images, exit 0.
'use strict';
const path = require('node:path');
const { parseArgs } = require('node:util');

const dist = path.resolve(__dirname, '..', 'dist');
const load = (p) => require(path.join(dist, p));
const argv = process.argv.slice(2);

function fail(msg, status = 2) {
  process.stderr.write(`nyd-snapshotter-dev: ${msg}\n`);
  process.exit(status);
}

async function viaConfig() {
  const { makeSnapshotterCommand } = load('cli/snapshotter-command.js');
  const { nydRemoteFromConfig } = load('snapshotter/remote/index.js');
  const { exitStatusOf } = load('common/errors.js');
  try {
    process.exitCode = await makeSnapshotterCommand(nydRemoteFromConfig)(argv, { out: process.stdout, err: process.stderr });
  } catch (err) {
    fail(err && err.message, exitStatusOf(err));
  }
  // Native parts (FUSE threads) must not keep the process alive.
  setTimeout(() => process.exit(process.exitCode || 0), 500).unref();
}

async function simple() {
  const { startSnapshotterServer } = load('snapshotter/snapshots/server.js');
  const { createNydRemoteHandler } = load('snapshotter/remote/index.js');
  const { parseEngineConfig } = load('engine/config/schema.js');
  const { flagValue } = load('engine/config/values.js');
  const { createLogger } = load('common/logger.js');
  const { values } = parseArgs({
    args: argv,
    options: {
      root: { type: 'string' },
      address: { type: 'string' },
      'cache-dir': { type: 'string' },
      'cache-size': { type: 'string' },
      'plain-http': { type: 'boolean' },
      insecure: { type: 'string', multiple: true },
      prefetch: { type: 'string' },
      'status-interval': { type: 'string' },
      'log-level': { type: 'string' },
    },
  });
  if (!values.root || !values.address || !values['cache-dir']) fail('--root, --address and --cache-dir are required (or --config FILE)');
  const logger = createLogger(values['log-level'] || 'info', 'nyd-snapshotter');
  const engine = parseEngineConfig(
    {
      cache: { dir: path.resolve(values['cache-dir']), ...(values['cache-size'] ? { size: flagValue(values['cache-size']) } : {}) },
      prefetch: { policy: values.prefetch || 'list' },
      registry: { insecure: values.insecure || [] },
    },
    new Map([['cache.dir', '--cache-dir'], ['cache.size', '--cache-size'], ['prefetch.policy', '--prefetch'], ['registry.insecure', '--insecure']]),
  );
  const remote = createNydRemoteHandler({
    root: values.root,
    engine,
    transport: values['plain-http'] === true ? { plainHttp: true } : undefined,
    statusIntervalMs: values['status-interval'] ? Number(values['status-interval']) : undefined,
    logger,
  });
  let server;
  try {
    await remote.ready;
    server = await startSnapshotterServer({ root: values.root, address: values.address, logger, remote });
  } catch (err) {
    await remote.close();
    logger.error({ err: err && err.message, code: err && err.code }, 'snapshotter failed to start');
    fail(err && err.message, 1);
  }
  let stopping = false;
  const stop = async (why) => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason: why }, 'stopping');
    try {
      await server.close();
      await remote.close();
    } catch (err) {
      logger.error({ err: err.message }, 'stopping failed');
      process.exitCode = 1;
    }
    setTimeout(() => process.exit(process.exitCode || 0), 500).unref();
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  logger.info({ address: server.address, root: values.root, pid: process.pid }, 'ready');
}

(argv.includes('--config') ? viaConfig() : simple()).catch((err) => fail(err && err.stack, 1));
