/**
 * The image record a bootstrap snapshot keeps in its own directory: written
 * once, read back as untrusted input.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { readImageRecord, writeImageRecord } from '../../../snapshotter/remote/image-record';
import { IMAGE_RECORD_FILE, MAX_IMAGE_RECORD_BYTES, type ImageRecord } from '../../../snapshotter/remote/types';

const record: ImageRecord = {
  version: 1,
  pinned: `127.0.0.1:5000/nyd/app@sha256:${'a'.repeat(64)}`,
  manifestDigest: `sha256:${'a'.repeat(64)}`,
  bootstrapDigest: `sha256:${'b'.repeat(64)}`,
  pulledAs: '127.0.0.1:5000/nyd/app:v1',
  source: 'stargz',
};

describe('image record', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nyd-record-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads back what was written, and refuses to overwrite', async () => {
    await writeImageRecord(dir, record);
    expect(await readImageRecord(dir)).toEqual(record);
    await expect(writeImageRecord(dir, record)).rejects.toMatchObject({ code: 'EEXIST' });
  });

  it('says how to recover when the record is missing', async () => {
    await expect(readImageRecord(dir)).rejects.toMatchObject({ code: ErrorCode.FailedPrecondition, message: expect.stringMatching(/pull it again/) });
  });

  it.each([
    ['not JSON', '{"version":1,'],
    ['a wrong version', JSON.stringify({ ...record, version: 2 })],
    ['a bad digest', JSON.stringify({ ...record, manifestDigest: 'sha256:xyz' })],
    ['an unknown source', JSON.stringify({ ...record, source: 'docker' })],
    ['an empty reference', JSON.stringify({ ...record, pinned: '' })],
    ['no object', 'null'],
    ['too many bytes', JSON.stringify({ ...record, pad: 'x'.repeat(MAX_IMAGE_RECORD_BYTES) })],
  ])('refuses a record with %s as DataCorrupt', async (_what, text) => {
    await writeFile(path.join(dir, IMAGE_RECORD_FILE), text);
    await expect(readImageRecord(dir)).rejects.toMatchObject({ code: ErrorCode.DataCorrupt });
  });
});
