import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { indexTar, lookupMember, parseNumber, type TarIndex } from '../../oci/tar-index';
import { rejection, sh, tempDir, thrown } from './helpers';

let dir: string;
const longDir = 'd'.repeat(90) + '/' + 'e'.repeat(60);

beforeAll(() => {
  dir = tempDir();
  sh(
    `mkdir -p src/${longDir} && cd src && seq 1 5000 > plain.txt && echo long > ${longDir}/file-with-a-long-name.txt && ` +
      `: > empty && ln -s plain.txt sym && ln -s ../../plain.txt ${longDir}/up && ln plain.txt hard && ln -s ../outside escape`,
    dir,
  );
});

function content(tarFile: string, member: string, index: TarIndex): string {
  const m = lookupMember(index, member);
  if (!m) throw new Error(`no ${member}`);
  return readFileSync(tarFile).subarray(m.offset, m.offset + m.size).toString();
}

describe('indexTar', () => {
  it.each(['gnu', 'pax', 'ustar', 'oldgnu'])('indexes a %s archive from GNU tar', async (format) => {
    const file = path.join(dir, `${format}.tar`);
    sh(`tar --format=${format} -C src -cf '${file}' .`, dir);
    const index = await indexTar(file);
    const want = readFileSync(path.join(dir, 'src/plain.txt'), 'utf8');
    expect(content(file, 'plain.txt', index)).toBe(want);
    expect(content(file, `${longDir}/file-with-a-long-name.txt`, index)).toBe('long\n');
    expect(index.get('empty')!.size).toBe(0);
    expect(index.get(longDir)!.type).toBe('dir');
    expect(index.get('sym')).toMatchObject({ type: 'symlink', linkname: 'plain.txt' });
    // Links resolve to the member holding the data; never outside the archive root.
    // tar stores whichever of plain.txt / hard it meets first as the file, the other as a link.
    const types = [index.get('plain.txt')!.type, index.get('hard')!.type].sort();
    expect(types).toEqual(['file', 'hardlink']);
    const data = lookupMember(index, 'plain.txt')!;
    expect(data.type).toBe('file');
    expect(data.size).toBe(want.length);
    expect(lookupMember(index, './hard')).toBe(data);
    expect(lookupMember(index, 'sym')).toBe(data);
    expect(lookupMember(index, `${longDir}/up`)?.offset).toBe(lookupMember(index, 'plain.txt')!.offset);
    expect(lookupMember(index, 'escape')).toBeUndefined();
    expect(lookupMember(index, longDir)).toBeUndefined();
    expect(lookupMember(index, 'missing')).toBeUndefined();
  });

  it('honours a PAX size record over the header size field', async () => {
    const data = Buffer.from('x'.repeat(700));
    const pax = paxRecord('size', String(data.length)) + paxRecord('path', 'pax/named/file');
    const tar = Buffer.concat([
      header('PaxHeaders/f', 'x', pax.length),
      pad(Buffer.from(pax)),
      header('f', '0', 0), // ustar size field says 0; PAX says 700
      pad(data),
      header('after', '0', 3),
      pad(Buffer.from('abc')),
      Buffer.alloc(1024),
    ]);
    const file = path.join(dir, 'crafted.tar');
    writeFileSync(file, tar);
    const index = await indexTar(file);
    expect(index.get('pax/named/file')).toMatchObject({ size: 700, offset: 1536 });
    expect(content(file, 'after', index)).toBe('abc');
    expect(sh(`tar -xOf '${file}' after`)).toBe('abc');
  });

  it('rejects corrupt headers, truncation and oversized members', async () => {
    sh(`tar -C src -cf good.tar plain.txt empty`, dir);
    const good = readFileSync(path.join(dir, 'good.tar'));
    const flip = Buffer.from(good);
    flip[10] ^= 0x20;
    writeFileSync(path.join(dir, 'flip.tar'), flip);
    const e1 = await rejection(indexTar(path.join(dir, 'flip.tar')));
    expect(e1.code).toBe('NYD_DATA_CORRUPT');
    expect(e1.message).toMatch(/checksum at offset 0/);
    writeFileSync(path.join(dir, 'trunc.tar'), good.subarray(0, 700));
    expect((await rejection(indexTar(path.join(dir, 'trunc.tar')))).message).toMatch(/runs past the end|truncated/);
    writeFileSync(path.join(dir, 'junk.tar'), Buffer.from('not a tar at all'.repeat(64)));
    expect((await rejection(indexTar(path.join(dir, 'junk.tar')))).code).toBe('NYD_DATA_CORRUPT');
  });

  it('accepts an archive that ends without end-of-archive blocks', async () => {
    sh(`tar -C src -cf noeof.tar plain.txt`, dir);
    const file = path.join(dir, 'noeof.tar');
    const t = readFileSync(file);
    const size = Number(sh(`stat -c %s src/plain.txt`, dir));
    writeFileSync(file, t.subarray(0, 512 + Math.ceil(size / 512) * 512));
    expect((await indexTar(file)).get('plain.txt')!.size).toBe(size);
  });
});

describe('parseNumber', () => {
  it('reads octal and GNU base-256', () => {
    expect(parseNumber(Buffer.from('00000001750\0'), 'n')).toBe(0o1750);
    expect(parseNumber(Buffer.from('     1750 \0'), 'n')).toBe(0o1750);
    expect(parseNumber(Buffer.alloc(12), 'n')).toBe(0);
    const b256 = Buffer.alloc(12);
    b256[0] = 0x80;
    b256.writeUIntBE(10 * 2 ** 32 + 5, 6, 6); // a 40 GiB member
    expect(parseNumber(b256, 'n')).toBe(10 * 2 ** 32 + 5);
  });
  it('rejects garbage, negative and oversized numbers', () => {
    expect(thrown(() => parseNumber(Buffer.from('0000000009\0\0'), 'size')).message).toMatch(/size: not an octal/);
    const neg = Buffer.alloc(12, 0xff);
    expect(thrown(() => parseNumber(neg, 'size')).message).toMatch(/negative/);
    const huge = Buffer.alloc(12, 0x3f);
    huge[0] = 0x80 | 0x3f;
    expect(thrown(() => parseNumber(huge, 'size')).code).toBe('NYD_DATA_CORRUPT');
  });
});

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len++;
  return `${len}${body}`;
}

function header(name: string, type: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  h.write('ustar\0' + '00', 257);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

function pad(b: Buffer): Buffer {
  return Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
}
