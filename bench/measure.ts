/**
 * Running a command and measuring it: wall time, and CPU time (user + sys of
 * the command and its children) from bash's `time` builtin.
 */
import { spawn } from 'node:child_process';

export interface Measured {
  wallSeconds: number;
  cpuSeconds: number;
  stdout: string;
}

export function measure(command: string, env: NodeJS.ProcessEnv = {}): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const script = `TIMEFORMAT='%U %S'; { time ( ${command} ) 1>&3 ; } 2>&4`;
    const child = spawn('bash', ['-c', `exec 3>&1 4>&2; ${script}`], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const start = process.hrtime.bigint();
    child.on('error', reject);
    child.on('close', (code) => {
      const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (code !== 0) return reject(new Error(`${command} exited ${code}: ${stderr}`));
      const times = /([\d.]+) ([\d.]+)\s*$/.exec(stderr.trim());
      const cpuSeconds = times ? Number(times[1]) + Number(times[2]) : NaN;
      resolve({ wallSeconds, cpuSeconds, stdout });
    });
  });
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
