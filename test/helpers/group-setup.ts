/**
 * vitest globalSetup of the groups that need root or FUSE (vitest.config.ts): when this host
 * cannot run them, prints the one line saying so; the tests themselves skip (describeRoot,
 * describeFuse in capabilities.ts). Runs once per run and group, in the main vitest process.
 */
import type { TestProject } from 'vitest/node';
import { missingFor, type Need } from './capabilities';

export default function setup(project: TestProject): void {
  const group = project.name;
  const need: Need = group === 'fuse' ? 'fuse' : 'root';
  const why = missingFor(need);
  if (why !== undefined) console.log(`nyd tests: skipping the ${group} group (test/**/*.${group}.test.ts): ${why}`);
}
