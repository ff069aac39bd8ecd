/**
 * Hostile bootstrap bodies: each check of bootstrap-check.ts gets a case that
 * takes a valid bootstrap, changes one thing in its raw msgpack, and expects
 * the named FormatError.
 */
import { describe, expect, test } from 'vitest';
import { decodeBootstrap, encodeBootstrap } from '../../format-spec/bootstrap';
import * as L from '../../format-spec/limits';
import { lookup } from '../../format-spec/tree';
import { InodeType } from '../../format-spec/types';
import { buildImage, expectFormatError, inodeOf, mutateBootstrap, sampleImage, type Raw } from './fixture';

const CORRUPT = 'NYD_DATA_CORRUPT';
const LIMIT = 'NYD_LIMIT_EXCEEDED';

const sample = sampleImage().bootstrap;
const sampleBytes = encodeBootstrap(sample);
const ix = Object.fromEntries(
  ['bin', 'bin/big', 'bin/small', 'bin/empty', 'etc', 'etc/sl', 'dev/null', 'run/fifo', 'z\u00e9\u{1F600}'].map((p) => [
    p,
    lookup(sample, p)!,
  ]),
) as Record<string, number>;
const BIG = ix['bin/big'];
const DIR = ix.bin;

interface Case {
  name: string;
  mutate: (body: Raw) => void;
  code: string;
  where: string | RegExp;
  message: RegExp;
}

const dirInode = (entries: unknown[] = []): Raw =>
  new Map<string, unknown>([['t', 2], ['m', 0o755], ['u', 0], ['g', 0], ['mt', 0], ['s', 0], ['e', entries]]);
const entriesOf = (body: Raw, i: number): unknown[][] => inodeOf(body, i).get('e');
const chunk = (body: Raw, j = 0): unknown[] => inodeOf(body, BIG).get('c')[j];
const xattrs = (body: Raw): Map<string, unknown> => inodeOf(body, ix['bin/small']).get('x');
const nils = (n: number): null[] => new Array<null>(n).fill(null);
const bin = (n: number) => Buffer.alloc(n, 1);

function run(cases: Case[]) {
  for (const c of cases) {
    test(c.name, () => {
      const bytes = mutateBootstrap(sampleBytes, c.mutate);
      expectFormatError(() => decodeBootstrap(bytes), c.code, c.where, c.message);
    });
  }
}

describe('top level', () => {
  run([
    { name: 'body is not a map', mutate: (b) => b.clear(), code: CORRUPT, where: 'bootstrap body', message: /missing key "cs"/ },
    { name: 'unknown key', mutate: (b) => b.set('zz', 1), code: CORRUPT, where: 'bootstrap body', message: /unknown key "zz"/ },
    { name: 'missing prefetch', mutate: (b) => b.delete('p'), code: CORRUPT, where: 'bootstrap body', message: /missing key "p"/ },
    { name: 'non-string key', mutate: (b) => (b as Map<unknown, unknown>).set(7, 1), code: CORRUPT, where: 'bootstrap body', message: /key must be a str, got integer/ },
    { name: 'chunk size not a power of two', mutate: (b) => b.set('cs', 3 * 65536), code: CORRUPT, where: 'bootstrap body', message: /not a power of two/ },
    { name: 'chunk size below minimum', mutate: (b) => b.set('cs', 4096), code: CORRUPT, where: 'bootstrap body', message: /below MIN_CHUNK_SIZE/ },
    { name: 'chunk size above maximum', mutate: (b) => b.set('cs', L.MAX_CHUNK_SIZE * 2), code: LIMIT, where: 'bootstrap body', message: /exceeds MAX_CHUNK_SIZE/ },
    { name: 'chunk size is a string', mutate: (b) => b.set('cs', '1M'), code: CORRUPT, where: 'bootstrap body', message: /chunk size must be an integer, got str/ },
    { name: 'inode table not an array', mutate: (b) => b.set('i', new Map()), code: CORRUPT, where: 'bootstrap body', message: /inode table must be an array, got map/ },
    { name: 'empty inode table', mutate: (b) => b.set('i', []), code: CORRUPT, where: 'bootstrap body', message: /inode table is empty/ },
    { name: 'too many inodes', mutate: (b) => b.set('i', nils(L.MAX_INODES + 1)), code: LIMIT, where: 'bootstrap body', message: /exceed MAX_INODES/ },
  ]);
  test('a body that is an array, not a map', () => {
    const bytes = mutateBootstrap(sampleBytes, () => undefined);
    const arr = Buffer.concat([bytes.subarray(0, L.BOOTSTRAP_HEADER_SIZE), Buffer.from([0x90])]);
    expectFormatError(() => decodeBootstrap(arr), CORRUPT, 'bootstrap body', /expected a map, got array/);
  });
});

describe('blob table', () => {
  const blob0 = (b: Raw): Raw => b.get('b')[0];
  run([
    { name: 'too many blobs', mutate: (b) => b.set('b', nils(L.MAX_BLOBS + 1)), code: LIMIT, where: 'bootstrap blob table', message: /exceed MAX_BLOBS/ },
    { name: 'blob not a map', mutate: (b) => (b.get('b')[0] = 5), code: CORRUPT, where: 'bootstrap blob 0', message: /expected a map, got integer/ },
    { name: 'digest not sha256', mutate: (b) => blob0(b).set('d', 'md5:abc'), code: CORRUPT, where: 'bootstrap blob 0', message: /not of the form sha256:<64 hex>/ },
    { name: 'digest in upper case', mutate: (b) => blob0(b).set('d', blob0(b).get('d').toUpperCase()), code: CORRUPT, where: 'bootstrap blob 0', message: /sha256:<64 hex>/ },
    { name: 'size smaller than a footer', mutate: (b) => blob0(b).set('s', 10), code: CORRUPT, where: 'bootstrap blob 0', message: /smaller than a footer/ },
    { name: 'size over MAX_BLOB_SIZE', mutate: (b) => blob0(b).set('s', BigInt(L.MAX_BLOB_SIZE) + 1n), code: LIMIT, where: 'bootstrap blob 0', message: /exceeds MAX_BLOB_SIZE/ },
    { name: 'size beyond 2^53', mutate: (b) => blob0(b).set('s', 2n ** 60n), code: CORRUPT, where: 'bootstrap blob 0', message: /size 1152921504606846976 is outside/ },
    { name: 'missing usize', mutate: (b) => blob0(b).delete('u'), code: CORRUPT, where: 'bootstrap blob 0', message: /missing key "u"/ },
    { name: 'missing address space', mutate: (b) => blob0(b).delete('a'), code: CORRUPT, where: 'bootstrap blob 0', message: /missing key "a"/ },
    { name: 'address space not 4 KiB aligned', mutate: (b) => blob0(b).set('a', Number(blob0(b).get('a')) + 1), code: CORRUPT, where: 'bootstrap blob 0', message: /not a multiple of 4096/ },
    { name: 'address space below usize', mutate: (b) => blob0(b).set('a', 0), code: CORRUPT, where: 'bootstrap blob 0', message: /smaller than the uncompressed size/ },
    { name: 'address space over MAX_BLOB_USPACE', mutate: (b) => blob0(b).set('a', BigInt(L.MAX_BLOB_USPACE) + 4096n), code: LIMIT, where: 'bootstrap blob 0', message: /exceeds MAX_BLOB_USPACE/ },
    {
      name: 'same digest, other size',
      mutate: (b) => b.get('b')[1].set('d', blob0(b).get('d')),
      code: CORRUPT,
      where: 'bootstrap blob 1',
      message: /same digest as an earlier blob but different sizes/,
    },
  ]);
  test('the same blob twice (identical layers) is accepted', () => {
    const bytes = mutateBootstrap(sampleBytes, (b) => b.get('b').push(b.get('b')[0]));
    expect(decodeBootstrap(bytes).blobs).toHaveLength(3);
  });
});

describe('inode fields', () => {
  const at = (i: number) => `bootstrap inode ${i}`;
  run([
    { name: 'inode not a map', mutate: (b) => (b.get('i')[BIG] = []), code: CORRUPT, where: at(BIG), message: /expected a map, got array/ },
    { name: 'unknown inode type', mutate: (b) => inodeOf(b, BIG).set('t', 9), code: CORRUPT, where: at(BIG), message: /unknown inode type 9/ },
    { name: 'unknown key', mutate: (b) => inodeOf(b, BIG).set('q', 1), code: CORRUPT, where: at(BIG), message: /unknown key "q"/ },
    { name: 'missing mode', mutate: (b) => inodeOf(b, BIG).delete('m'), code: CORRUPT, where: at(BIG), message: /missing key "m"/ },
    { name: 'file without chunk list', mutate: (b) => inodeOf(b, BIG).delete('c'), code: CORRUPT, where: at(BIG), message: /file inode lacks key "c"/ },
    { name: 'directory without entries', mutate: (b) => inodeOf(b, DIR).delete('e'), code: CORRUPT, where: at(DIR), message: /directory inode lacks key "e"/ },
    { name: 'symlink without target', mutate: (b) => inodeOf(b, ix['etc/sl']).delete('l'), code: CORRUPT, where: at(ix['etc/sl']), message: /symlink inode lacks key "l"/ },
    { name: 'device without major', mutate: (b) => inodeOf(b, ix['dev/null']).delete('ma'), code: CORRUPT, where: at(ix['dev/null']), message: /char device inode lacks key "ma"/ },
    { name: 'target on a file', mutate: (b) => inodeOf(b, BIG).set('l', 'x'), code: CORRUPT, where: at(BIG), message: /key "l" is not allowed on a file inode/ },
    { name: 'device numbers on a fifo', mutate: (b) => inodeOf(b, ix['run/fifo']).set('ma', 1), code: CORRUPT, where: at(ix['run/fifo']), message: /key "ma" is not allowed on a fifo inode/ },
    { name: 'chunks on a directory', mutate: (b) => inodeOf(b, DIR).set('c', []), code: CORRUPT, where: at(DIR), message: /key "c" is not allowed on a directory/ },
    { name: 'entries on a file', mutate: (b) => inodeOf(b, BIG).set('e', []), code: CORRUPT, where: at(BIG), message: /key "e" is not allowed on a file/ },
    { name: 'mode with type bits', mutate: (b) => inodeOf(b, BIG).set('m', 0o100644), code: CORRUPT, where: at(BIG), message: /mode 33188 is outside \[0, 4095\]/ },
    { name: 'negative uid', mutate: (b) => inodeOf(b, BIG).set('u', -1), code: CORRUPT, where: at(BIG), message: /uid -1 is outside/ },
    { name: 'gid beyond 32 bits', mutate: (b) => inodeOf(b, BIG).set('g', 2 ** 32), code: CORRUPT, where: at(BIG), message: /gid 4294967296 is outside/ },
    { name: 'fractional mtime', mutate: (b) => inodeOf(b, BIG).set('mt', 1.5), code: CORRUPT, where: at(BIG), message: /mtime must be an integer, got float/ },
    { name: 'mtime beyond 2^53', mutate: (b) => inodeOf(b, BIG).set('mt', -(2n ** 60n)), code: CORRUPT, where: at(BIG), message: /mtime -1152921504606846976 is outside/ },
    { name: 'mode as nil', mutate: (b) => inodeOf(b, BIG).set('m', null), code: CORRUPT, where: at(BIG), message: /mode must be an integer, got nil/ },
    { name: 'directory with a size', mutate: (b) => inodeOf(b, DIR).set('s', 4096), code: CORRUPT, where: at(DIR), message: /size must be 0 for a directory, is 4096/ },
    { name: 'fifo with a size', mutate: (b) => inodeOf(b, ix['run/fifo']).set('s', 1), code: CORRUPT, where: at(ix['run/fifo']), message: /size must be 0 for a fifo/ },
    { name: 'file over MAX_FILE_SIZE', mutate: (b) => inodeOf(b, BIG).set('s', BigInt(L.MAX_FILE_SIZE) + 1n), code: LIMIT, where: at(BIG), message: /exceeds MAX_FILE_SIZE/ },
    { name: 'device major beyond 32 bits', mutate: (b) => inodeOf(b, ix['dev/null']).set('ma', 2 ** 32), code: CORRUPT, where: at(ix['dev/null']), message: /device major 4294967296 is outside/ },
    { name: 'device minor negative', mutate: (b) => inodeOf(b, ix['dev/null']).set('mi', -3), code: CORRUPT, where: at(ix['dev/null']), message: /device minor -3 is outside/ },
  ]);
});

describe('symlinks', () => {
  const SL = () => ix['etc/sl'];
  const setTarget = (b: Raw, t: string, size = Buffer.byteLength(t)) => inodeOf(b, SL()).set('l', t).set('s', size);
  run([
    { name: 'empty target', mutate: (b) => setTarget(b, ''), code: CORRUPT, where: `bootstrap inode ${SL()}`, message: /symlink target is empty/ },
    { name: 'NUL in target', mutate: (b) => setTarget(b, 'a\0b'), code: CORRUPT, where: `bootstrap inode ${SL()}`, message: /contains NUL/ },
    { name: 'target too long', mutate: (b) => setTarget(b, 'a'.repeat(L.MAX_SYMLINK_LENGTH + 1)), code: LIMIT, where: `bootstrap inode ${SL()}`, message: /over MAX_SYMLINK_LENGTH/ },
    { name: 'size is not the target length', mutate: (b) => setTarget(b, 'abc', 4), code: CORRUPT, where: `bootstrap inode ${SL()}`, message: /size 4 differs from the target length 3/ },
    { name: 'target not a string', mutate: (b) => inodeOf(b, SL()).set('l', Buffer.from('x')), code: CORRUPT, where: `bootstrap inode ${SL()}`, message: /symlink target must be a str, got bin/ },
  ]);
  test('a target of exactly MAX_SYMLINK_LENGTH bytes (multi-byte characters) is accepted', () => {
    const t = '\u00e9'.repeat(L.MAX_SYMLINK_LENGTH / 2);
    const bytes = mutateBootstrap(sampleBytes, (b) => setTarget(b, t));
    expect(decodeBootstrap(bytes).inodes[SL()].target).toBe(t);
  });
});

describe('xattrs', () => {
  const where = `bootstrap inode ${ix['bin/small']}`;
  run([
    { name: 'not a map', mutate: (b) => inodeOf(b, ix['bin/small']).set('x', []), code: CORRUPT, where, message: /xattrs must be a map/ },
    { name: 'empty map', mutate: (b) => xattrs(b).clear(), code: CORRUPT, where, message: /xattr map is empty/ },
    {
      name: 'too many',
      mutate: (b) => {
        for (let k = 0; k < L.MAX_XATTRS_PER_INODE; k++) xattrs(b).set(`user.${String(k).padStart(4, '0')}`, bin(1));
      },
      code: LIMIT,
      where,
      message: /exceed MAX_XATTRS_PER_INODE/,
    },
    { name: 'empty name', mutate: (b) => xattrs(b).set('', bin(1)), code: CORRUPT, where: `${where} xattr ""`, message: /xattr name is empty/ },
    { name: 'NUL in name', mutate: (b) => xattrs(b).set('user.\0', bin(1)), code: CORRUPT, where: /xattr "user\.\\u0000"$/, message: /contains NUL/ },
    { name: 'name too long', mutate: (b) => xattrs(b).set(`user.${'n'.repeat(251)}`, bin(1)), code: LIMIT, where: /xattr "user\.n+\.\.\."$/, message: /over MAX_XATTR_NAME_LENGTH/ },
    { name: 'value too large', mutate: (b) => xattrs(b).set('user.b', bin(L.MAX_XATTR_VALUE_SIZE + 1)), code: LIMIT, where: `${where} xattr "user.b"`, message: /over MAX_XATTR_VALUE_SIZE/ },
    { name: 'value not bin', mutate: (b) => xattrs(b).set('user.b', 'text'), code: CORRUPT, where: `${where} xattr "user.b"`, message: /xattr value must be bin, got str/ },
    { name: 'name not a string', mutate: (b) => (xattrs(b) as Map<unknown, unknown>).set(5, bin(1)), code: CORRUPT, where, message: /xattr name must be a str/ },
    { name: 'names not sorted', mutate: (b) => xattrs(b).set('trusted.x', bin(1)).set('security.y', bin(1)), code: CORRUPT, where: `${where} xattr "trusted.x"`, message: /not sorted/ },
  ]);
  test('exactly MAX_XATTRS_PER_INODE xattrs with MAX-size names and values are accepted', () => {
    const bytes = mutateBootstrap(sampleBytes, (b) => {
      const x = xattrs(b);
      x.clear();
      for (let k = 0; k < L.MAX_XATTRS_PER_INODE; k++) x.set(`user.${String(k).padStart(250, '0')}`, bin(k === 0 ? L.MAX_XATTR_VALUE_SIZE : 1));
    });
    expect(decodeBootstrap(bytes).inodes[ix['bin/small']].xattrs!.size).toBe(L.MAX_XATTRS_PER_INODE);
  });
});

describe('directory entries', () => {
  const where = (name: string) => `bootstrap inode ${DIR} entry ${JSON.stringify(name)}`;
  const rename = (b: Raw, name: string) => (entriesOf(b, DIR)[0][0] = name);
  run([
    { name: 'entries not an array', mutate: (b) => inodeOf(b, DIR).set('e', 'x'), code: CORRUPT, where: `bootstrap inode ${DIR}`, message: /entries must be an array, got str/ },
    { name: 'entry not a pair', mutate: (b) => entriesOf(b, DIR).push(['x']), code: CORRUPT, where: `bootstrap inode ${DIR} entry 5`, message: /entry must have 2 elements, has 1/ },
    { name: 'name not a string', mutate: (b) => (entriesOf(b, DIR)[0][0] = 1), code: CORRUPT, where: `bootstrap inode ${DIR} entry 0`, message: /entry name must be a str, got integer/ },
    { name: 'empty name', mutate: (b) => rename(b, ''), code: CORRUPT, where: where(''), message: /name is empty/ },
    { name: 'name "."', mutate: (b) => rename(b, '.'), code: CORRUPT, where: where('.'), message: /name "\." is not allowed/ },
    { name: 'name ".."', mutate: (b) => rename(b, '..'), code: CORRUPT, where: where('..'), message: /name "\.\." is not allowed/ },
    { name: "name with '/'", mutate: (b) => rename(b, 'a/b'), code: CORRUPT, where: where('a/b'), message: /name contains '\/'/ },
    { name: 'name with NUL', mutate: (b) => rename(b, 'a\0'), code: CORRUPT, where: where('a\0'), message: /name contains NUL/ },
    { name: 'name too long', mutate: (b) => rename(b, 'a'.repeat(L.MAX_NAME_LENGTH + 1)), code: LIMIT, where: /entry "a{77}\.\.\."$/, message: /256 bytes, over MAX_NAME_LENGTH/ },
    { name: 'index out of range', mutate: (b) => (entriesOf(b, DIR)[0][1] = 99), code: CORRUPT, where: /entry "big"$/, message: /inode index 99 is outside \[0, 15\]/ },
    { name: 'entry naming the root', mutate: (b) => (entriesOf(b, DIR)[0][1] = 0), code: CORRUPT, where: /entry "big"$/, message: /names the root directory/ },
    { name: 'duplicate name', mutate: (b) => rename(b, 'dup'), code: CORRUPT, where: where('dup'), message: /duplicate name/ },
    { name: 'not sorted', mutate: (b) => entriesOf(b, DIR).reverse(), code: CORRUPT, where: where('link'), message: /not sorted \(comes after "small"\)/ },
    {
      name: 'sorted by UTF-16, not UTF-8 bytes',
      mutate: (b) => entriesOf(b, 0).push(['\u{1F600}', ix['bin/small']], ['\uFF01', ix['bin/small']]),
      code: CORRUPT,
      where: 'bootstrap inode 0 entry "！"',
      message: /not sorted/,
    },
    { name: 'too many entries', mutate: (b) => inodeOf(b, DIR).set('e', nils(L.MAX_ENTRIES_PER_DIR + 1)), code: LIMIT, where: `bootstrap inode ${DIR}`, message: /exceed MAX_ENTRIES_PER_DIR/ },
  ]);
  test('a name of exactly MAX_NAME_LENGTH bytes is accepted', () => {
    const name = `z${'\u00e9'.repeat(127)}`;
    const bytes = mutateBootstrap(sampleBytes, (b) => entriesOf(b, DIR).push([name, ix['bin/small']]));
    expect(lookup(decodeBootstrap(bytes), `bin/${name}`)).toBe(ix['bin/small']);
  });
});

describe('tree shape', () => {
  run([
    { name: 'root is not a directory', mutate: (b) => b.get('i').splice(0, 1, inodeOf(b, ix['run/fifo'])), code: CORRUPT, where: 'bootstrap inode 0', message: /root is not a directory/ },
    { name: 'directory linked twice', mutate: (b) => entriesOf(b, 0).push(['~', DIR]), code: CORRUPT, where: /^bootstrap inode (0|1) entry /, message: /directory inode 1 is linked more than once/ },
    { name: 'cycle', mutate: (b) => entriesOf(b, ix.etc).push(['up', ix.etc]), code: CORRUPT, where: `bootstrap inode ${ix.etc} entry "up"`, message: /linked more than once \(cycle/ },
    { name: 'unreachable inode', mutate: (b) => entriesOf(b, DIR).splice(2, 1), code: CORRUPT, where: `bootstrap inode ${ix['bin/empty']}`, message: /not reachable from the root/ },
    { name: 'unreachable directory', mutate: (b) => b.get('i').push(dirInode()), code: CORRUPT, where: 'bootstrap inode 16', message: /not reachable/ },
  ]);

  test('hardlinks: a file under several names is fine, including across directories', () => {
    const bytes = mutateBootstrap(sampleBytes, (b) => entriesOf(b, ix.etc).push(['zlink', ix['bin/small']]));
    const b = decodeBootstrap(bytes);
    expect(lookup(b, 'etc/zlink')).toBe(lookup(b, 'bin/link'));
  });

  const chain = (depth: number) => buildImage([{ path: Array.from({ length: depth }, () => 'd').join('/'), type: 'dir' }]);
  test('depth MAX_DEPTH is accepted, one more is refused', () => {
    const ok = chain(L.MAX_DEPTH).bootstrap;
    const deepest = lookup(ok, Array.from({ length: L.MAX_DEPTH }, () => 'd').join('/'))!;
    expect(decodeBootstrap(encodeBootstrap(ok)).inodes).toHaveLength(L.MAX_DEPTH + 1);
    const bytes = mutateBootstrap(ok, (b) => {
      b.get('i').push(dirInode());
      entriesOf(b, deepest).push(['d', L.MAX_DEPTH + 1]);
    });
    expectFormatError(() => decodeBootstrap(bytes), LIMIT, `bootstrap inode ${deepest} entry "d"`, /depth 257 exceeds MAX_DEPTH/);
  });

  test('path of MAX_PATH_LENGTH bytes is accepted, one more byte is refused', () => {
    const parts = Array.from({ length: 20 }, (_, k) => String(k % 10).repeat(200));
    const img = buildImage([{ path: parts.join('/'), type: 'dir' }]).bootstrap;
    const deepest = lookup(img, parts.join('/'))!;
    const used = 20 * 200 + 19;
    const withName = (n: number) =>
      mutateBootstrap(img, (b) => {
        b.get('i').push(dirInode());
        entriesOf(b, deepest).push(['x'.repeat(n), b.get('i').length - 1]);
      });
    expect(decodeBootstrap(withName(L.MAX_PATH_LENGTH - used - 1)).inodes).toHaveLength(22);
    expectFormatError(() => decodeBootstrap(withName(L.MAX_PATH_LENGTH - used)), LIMIT, /^bootstrap inode \d+ entry "x+"$/, /4097 bytes, over MAX_PATH_LENGTH/);
  });
});

describe('chunk refs', () => {
  const where = (j = 0) => `bootstrap inode ${BIG} chunk ${j}`;
  const set = (j: number, k: number, v: unknown) => (b: Raw) => (chunk(b, j)[k] = v);
  const blobSize = sample.blobs[0].size;
  run([
    { name: 'chunk list not an array', mutate: (b) => inodeOf(b, BIG).set('c', new Map()), code: CORRUPT, where: `bootstrap inode ${BIG}`, message: /chunk list must be an array, got map/ },
    { name: 'ref of 6 elements', mutate: (b) => chunk(b).pop(), code: CORRUPT, where: where(), message: /chunk ref must have 8 elements, has 7/ },
    { name: 'blob index out of range', mutate: set(0, 0, 2), code: CORRUPT, where: where(), message: /blob index 2 but there are 2 blobs/ },
    { name: 'unit beyond the blob', mutate: set(1, 1, blobSize - 100), code: CORRUPT, where: where(1), message: /ends past the units of blob 0/ },
    { name: 'unit overlapping the footer', mutate: set(0, 2, blobSize - 64 + 1), code: CORRUPT, where: where(), message: /ends past the units/ },
    { name: 'unit of size 0', mutate: set(0, 2, 0), code: CORRUPT, where: where(), message: /unit size 0 is outside/ },
    { name: 'unit frame over MAX_UNIT_FRAME_SIZE', mutate: set(0, 2, L.MAX_UNIT_FRAME_SIZE + 1), code: LIMIT, where: where(), message: /exceeds MAX_UNIT_FRAME_SIZE/ },
    { name: 'unit over MAX_UNIT_SIZE', mutate: set(0, 3, L.MAX_UNIT_SIZE + 1), code: LIMIT, where: where(), message: /exceeds MAX_UNIT_SIZE/ },
    { name: 'chunk past its unit', mutate: set(0, 4, 1), code: CORRUPT, where: where(), message: /chunk \[1, \+65536\) ends past its unit's 65536 bytes/ },
    { name: 'chunk of size 0', mutate: set(0, 5, 0), code: CORRUPT, where: where(), message: /chunk size 0 is outside/ },
    {
      name: 'chunk larger than the chunk size',
      mutate: (b) => {
        chunk(b)[3] = 65537;
        chunk(b)[5] = 65537;
      },
      code: CORRUPT,
      where: where(),
      message: /chunk size 65537 exceeds the image chunk size 65536/,
    },
    { name: 'digest of 31 bytes', mutate: set(2, 6, bin(31)), code: CORRUPT, where: where(2), message: /digest must be 32 bytes, is 31/ },
    { name: 'digest as hex string', mutate: set(2, 6, 'ab'.repeat(32)), code: CORRUPT, where: where(2), message: /digest must be bin, got str/ },
    { name: 'negative offset', mutate: set(0, 1, -1), code: CORRUPT, where: where(), message: /unit offset -1 is outside/ },
    { name: 'sizes do not sum to the file size', mutate: (b) => inodeOf(b, BIG).set('s', 3 * 65536 + 124), code: CORRUPT, where: `bootstrap inode ${BIG}`, message: /chunk sizes sum to 196731 but the file size is 196732/ },
    { name: 'empty file with a chunk', mutate: (b) => inodeOf(b, ix['bin/empty']).set('c', [chunk(b)]), code: CORRUPT, where: `bootstrap inode ${ix['bin/empty']}`, message: /sum to 65536 but the file size is 0/ },
    { name: 'too many chunks', mutate: (b) => inodeOf(b, BIG).set('c', nils(L.MAX_CHUNKS_PER_FILE + 1)), code: LIMIT, where: `bootstrap inode ${BIG}`, message: /exceed MAX_CHUNKS_PER_FILE/ },
    { name: 'uncompressed offset not 4 KiB aligned', mutate: set(0, 7, 100), code: CORRUPT, where: where(), message: /uncompressed offset 100 is not a multiple of 4096/ },
    { name: 'chunk past the address space', mutate: set(0, 7, 2 ** 40), code: CORRUPT, where: where(), message: /ends past blob 0's uncompressed address space/ },
  ]);
  const inBlob = /^bootstrap blob 0 chunk at uncompressed offset \d+$/;
  const uoff = (b: Raw, j: number): number => Number(chunk(b, j)[7]);
  run([
    { name: 'two chunks overlap in the address space', mutate: (b) => (chunk(b, 1)[7] = uoff(b, 0) + 4096), code: CORRUPT, where: inBlob, message: /overlaps the chunk at/ },
    { name: 'two different chunks at one address', mutate: (b) => (chunk(b, 1)[7] = uoff(b, 0)), code: CORRUPT, where: inBlob, message: /two different chunks have the same uncompressed offset/ },
    {
      name: 'addresses out of the chunks\' order in the blob',
      mutate: (b) => {
        const [a, c] = [chunk(b, 0)[7], chunk(b, 1)[7]];
        chunk(b, 0)[7] = c;
        chunk(b, 1)[7] = a;
      },
      code: CORRUPT,
      where: inBlob,
      message: /not in the order of the chunks in the blob/,
    },
  ]);
});

describe('prefetch', () => {
  const p = (b: Raw): Raw => b.get('p');
  run([
    { name: 'not a map', mutate: (b) => b.set('p', []), code: CORRUPT, where: 'bootstrap prefetch', message: /expected a map, got array/ },
    { name: 'too many patterns', mutate: (b) => p(b).set('g', Array.from({ length: L.MAX_PREFETCH_PATTERNS + 1 }, () => 'a')), code: LIMIT, where: 'bootstrap prefetch', message: /exceed MAX_PREFETCH_PATTERNS/ },
    { name: 'empty pattern', mutate: (b) => p(b).get('g').push(''), code: CORRUPT, where: 'bootstrap prefetch', message: /pattern 2 is empty/ },
    { name: 'pattern too long', mutate: (b) => p(b).get('g').push('a'.repeat(L.MAX_PATH_LENGTH + 1)), code: LIMIT, where: 'bootstrap prefetch', message: /pattern 2 is 4097 bytes/ },
    { name: 'pattern not a string', mutate: (b) => p(b).get('g').push(3), code: CORRUPT, where: 'bootstrap prefetch', message: /pattern 2 must be a str/ },
    { name: 'inode index out of range', mutate: (b) => p(b).get('i').push(16), code: CORRUPT, where: 'bootstrap prefetch', message: /inode 2 16 is outside \[0, 15\]/ },
    { name: 'inode not a regular file', mutate: (b) => p(b).get('i').push(DIR), code: CORRUPT, where: 'bootstrap prefetch', message: new RegExp(`inode ${DIR} is not a regular file`) },
    { name: 'inode listed twice', mutate: (b) => p(b).get('i').push(BIG), code: CORRUPT, where: 'bootstrap prefetch', message: new RegExp(`inode ${BIG} is listed twice`) },
  ]);
  test('prefetch list survives a round trip in order', () => {
    expect(decodeBootstrap(sampleBytes).prefetch).toEqual({ patterns: ['bin/small', 'bin/big'], inodes: [ix['bin/small'], BIG] });
    expect(decodeBootstrap(sampleBytes).inodes[BIG].type).toBe(InodeType.File);
  });
});
