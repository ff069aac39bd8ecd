/**
 * Which mount points exist below a path, from /proc/self/mountinfo. Used to
 * never delete a directory tree through a mount (a recursive delete would
 * otherwise empty whatever is mounted there).
 */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';

const MOUNTINFO = '/proc/self/mountinfo';

/** mountinfo escapes space, tab, newline and backslash as \NNN (octal). */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points listed in a mountinfo text (field 5 of each line). */
export function parseMountPoints(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length >= 5 && fields[4] !== undefined) out.push(unescapeMountPath(fields[4]));
  }
  return out;
}

/** Mount points equal to `dir` or below it, in this process's mount namespace. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const root = path.resolve(dir);
  const points = parseMountPoints(await readFile(MOUNTINFO, 'utf8'));
  return points.filter((p) => p === root || p.startsWith(root + path.sep));
}
