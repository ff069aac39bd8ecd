import { defineConfig } from 'vitest/config';

// Test groups, by file name:
//   *.test.ts          unit and integration tests that need no root or FUSE
//   *.fuse.test.ts     real FUSE mounts (need /dev/fuse and libfuse2)
//   *.root.test.ts     need root: containerd, runc, mknod, chown
//   *.slow.test.ts     large images or long runs
// `npm test` runs them all; `npm run test:unit|fuse|root|slow` runs one group.
const group = process.env.NYD_TEST_GROUP ?? 'all';
const special = ['**/*.fuse.test.ts', '**/*.root.test.ts', '**/*.slow.test.ts'];
const include =
  group === 'unit' ? ['test/**/*.test.ts'] : group === 'all' ? ['test/**/*.test.ts'] : [`test/**/*.${group}.test.ts`];
const exclude = group === 'unit' ? ['**/node_modules/**', ...special] : ['**/node_modules/**'];

export default defineConfig({
  test: {
    include,
    exclude,
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    fileParallelism: group === 'unit',
  },
});
