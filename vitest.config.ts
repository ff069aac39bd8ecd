import { defineConfig } from 'vitest/config';

// Test groups, by file name (one vitest project each):
//   *.test.ts           unit tests: no root, FUSE, registry, umoci/skopeo or generated fixtures
//   *.registry.test.ts  start a real docker-registry (and token server)
//   *.tools.test.ts     run umoci or skopeo, or read the generated image fixtures
//   *.fuse.test.ts      real FUSE mounts (need root, /dev/fuse and libfuse2)
//   *.root.test.ts      need root: containerd, runc, mknod, chown
//   *.slow.test.ts      large images or long runs
// `npm test` runs them all; `npm run test:<group>` (or NYD_TEST_GROUP=<group>) runs one.
// unit, registry and tools run first, PARALLEL_WORKERS files at a time (they mostly wait on
// child processes and sockets, so more workers than the 2 cores pay); then fuse, root and slow,
// one file at a time (mounts, containerd and CPU-heavy conversions).
// Root and FUSE tests skip (one line per group from group-setup.ts) where they cannot run.

/** Files of the parallel groups run at once. */
const PARALLEL_WORKERS = 4;
const parallel = ['unit', 'registry', 'tools'];
const serial = ['fuse', 'root', 'slow'];
const named = [...parallel, ...serial].filter((g) => g !== 'unit');

const group = process.env.NYD_TEST_GROUP ?? 'all';
if (group !== 'all' && !parallel.includes(group) && !serial.includes(group)) {
  throw new Error(`NYD_TEST_GROUP=${group}: expected one of all, ${[...parallel, ...serial].join(', ')}`);
}

function project(name: string) {
  const isParallel = parallel.includes(name);
  return {
    extends: true as const,
    test: {
      name,
      include: name === 'unit' ? ['test/**/*.test.ts'] : [`test/**/*.${name}.test.ts`],
      exclude: name === 'unit' ? ['**/node_modules/**', ...named.map((g) => `**/*.${g}.test.ts`)] : ['**/node_modules/**'],
      globalSetup: name === 'root' || name === 'fuse' ? ['test/helpers/group-setup.ts'] : [],
      maxWorkers: isParallel ? PARALLEL_WORKERS : 1,
      sequence: { groupOrder: isParallel ? 0 : 1 },
    },
  };
}

export default defineConfig({
  test: {
    projects: (group === 'all' ? [...parallel, ...serial] : [group]).map(project),
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
  },
});
