/** Shared helpers for the oci tests: temp dirs, shell commands, umoci-built layouts. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';
import type { Descriptor, Index, Manifest } from '../../oci/types';

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp directory removed after the test file. */
export function tempDir(prefix = 'nyd-oci-'): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Run a bash command line; throws with stderr on failure. */
export function sh(cmd: string, cwd?: string): string {
  return execFileSync('bash', ['-euo', 'pipefail', '-c', cmd], { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
}

export function sha256(buf: Uint8Array): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

export function blobFile(layout: string, digest: string): string {
  return path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/**
 * Build (or extend) an OCI layout with umoci: tag `tag` gets one layer
 * holding `files` under /data.
 */
export function umociImage(layout: string, tag: string, files: Record<string, string | Buffer>): void {
  const stage = mkdtempSync(path.join(tmpdir(), 'nyd-stage-'));
  try {
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(stage, name)), { recursive: true });
      writeFileSync(path.join(stage, name), content);
    }
    let init = '';
    try {
      statSync(path.join(layout, 'oci-layout'));
    } catch {
      init = `umoci init --layout '${layout}' && `;
    }
    sh(`${init}umoci new --image '${layout}:${tag}' && umoci insert --image '${layout}:${tag}' '${stage}' /data`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

export function readIndex(layout: string): Index {
  return JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8')) as Index;
}

export function manifestOf(layout: string, tag: string): { desc: Descriptor; manifest: Manifest; bytes: Buffer } {
  const desc = readIndex(layout).manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!desc) throw new Error(`no tag ${tag} in ${layout}`);
  const bytes = readFileSync(blobFile(layout, desc.digest));
  return { desc, manifest: JSON.parse(bytes.toString()) as Manifest, bytes };
}

/**
 * Every blob reachable from index.json exists with the right size and digest;
 * returns the number of blobs checked.
 */
export function checkLayoutComplete(layout: string): number {
  let checked = 0;
  const visit = (d: Descriptor): void => {
    const bytes = readFileSync(blobFile(layout, d.digest));
    if (bytes.length !== d.size || sha256(bytes) !== d.digest) throw new Error(`blob ${d.digest} is incomplete`);
    checked++;
    if (d.mediaType.includes('manifest.v1+json') || d.mediaType.includes('manifest.v2+json')) {
      const m = JSON.parse(bytes.toString()) as Manifest;
      [m.config, ...m.layers].forEach(visit);
    } else if (d.mediaType.includes('index') || d.mediaType.includes('list')) {
      (JSON.parse(bytes.toString()) as Index).manifests.forEach(visit);
    }
  };
  readIndex(layout).manifests.forEach(visit);
  return checked;
}

/** Collect a stream into one buffer. */
export async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

/** The error a function throws (fails the test if it returns). */
export function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a throw');
}
