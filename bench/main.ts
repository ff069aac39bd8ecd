/**
 * `npm run bench -- convert [--size MiB] [--runs N]`: runs a benchmark,
 * writes bench/results/<name>.md and prints it. Numbers are ratios against a
 * baseline measured in the same run.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { convertBench, convertReport } from './convert-bench';

const REPO = path.resolve(__dirname, '..', '..');

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { size: { type: 'string' }, runs: { type: 'string' } },
  });
  const which = positionals[0] ?? 'convert';
  const cacheDir = path.join(REPO, 'bench', '.cache');
  const resultsDir = path.join(REPO, 'bench', 'results');
  await fs.mkdir(cacheDir, { recursive: true });
  await fs.mkdir(resultsDir, { recursive: true });
  if (which !== 'convert') {
    process.stderr.write(`bench: unknown benchmark "${which}" (available: convert)\n`);
    return 1;
  }
  const result = await convertBench({
    repo: REPO,
    cacheDir,
    sizeMiB: Number(values.size ?? 300),
    runs: Number(values.runs ?? 3),
  });
  const report = convertReport(result);
  await fs.writeFile(path.join(resultsDir, 'convert.md'), report);
  await fs.writeFile(path.join(resultsDir, 'convert.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(report);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
      process.exitCode = 2;
    },
  );
}
