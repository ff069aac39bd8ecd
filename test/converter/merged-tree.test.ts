import { describe, expect, it } from 'vitest';
import { MAX_NAME_IN_MESSAGE } from '../../common/errors';
import { MergedTree, splitPath } from '../../converter/merged-tree';
import { InodeType } from '../../format-spec/types';

const file = (size = 0) => ({ type: InodeType.File, mode: 0o644, uid: 0, gid: 0, mtime: 1, size });
const dir = (mode = 0o755) => ({ type: InodeType.Dir, mode, uid: 0, gid: 0, mtime: 1, size: 0 });
const names = (t: MergedTree, p: string) => [...(t.lookup(splitPath(p))?.children?.keys() ?? [])].sort();

describe('splitPath', () => {
  it('normalizes ./ prefixes, repeated and trailing slashes', () => {
    expect(splitPath('./a//b/')).toEqual(['a', 'b']);
    expect(splitPath('./')).toEqual([]);
  });
  it.each(['/etc/passwd', '../x', 'a/../../x', 'a/..'])('rejects %s', (p) => {
    expect(() => splitPath(p)).toThrow(/absolute|\.\./);
  });
  it('rejects names over 255 bytes', () => {
    expect(() => splitPath(`a/${'x'.repeat(256)}`)).toThrow(/longer than 255/);
  });
  it.each([
    ['a 4 KiB name', `a/${'n'.repeat(4096)}`],
    ['an absolute 4 KiB path', `/${'n'.repeat(4096)}`],
    ['a 4 KiB path with ..', `${'n'.repeat(4096)}/../x`],
  ])('cuts %s in its error message', (_label, p) => {
    let message = '';
    try {
      splitPath(p);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(`"${p.slice(0, 20)}`);
    expect(message).toContain('..."');
    expect(message.length).toBeLessThanOrEqual(MAX_NAME_IN_MESSAGE + 100);
  });
});

describe('MergedTree', () => {
  it('cuts a 4 KiB hardlink target in its error message and calls it corrupt input', () => {
    const t = new MergedTree();
    const target = 'm'.repeat(4096);
    expect(() => t.link(['a'], [target], 0)).toThrow(
      expect.objectContaining({ code: 'NYD_DATA_CORRUPT', message: expect.stringMatching(/^hardlink target "m{20,}\.\.\." does not exist$/) }),
    );
    expect(() => t.link(['a'], [target], 0)).toThrow(expect.objectContaining({ message: expect.stringMatching(new RegExp(`^.{0,${MAX_NAME_IN_MESSAGE + 40}}$`)) }));
  });

  it('whiteouts remove lower-layer entries only', () => {
    const t = new MergedTree();
    t.put(['d', 'a'], file(), 0);
    t.put(['d', 'b'], file(), 0);
    expect(t.applyWhiteout(['d', '.wh.a'], 1)).toBe(true);
    expect(names(t, 'd')).toEqual(['b']);
    // a whiteout in the same layer as the entry does not hide it
    t.put(['d', 'c'], file(), 2);
    t.applyWhiteout(['d', '.wh.c'], 2);
    expect(names(t, 'd')).toEqual(['b', 'c']);
  });

  it('opaque markers hide lower entries but keep the same layer, whatever the order', () => {
    const t = new MergedTree();
    t.put(['o', 'old'], file(), 0);
    t.put(['o', 'sub', 'deep'], file(), 0);
    t.put(['o', 'new-before'], file(), 1);
    t.applyWhiteout(['o', '.wh..wh..opq'], 1);
    t.put(['o', 'new-after'], file(), 1);
    expect(names(t, 'o')).toEqual(['new-after', 'new-before']);
  });

  it('a directory over a directory keeps children; other replacements drop them', () => {
    const t = new MergedTree();
    t.put(['x'], dir(), 0);
    t.put(['x', 'child'], file(), 0);
    t.put(['x'], dir(0o700), 1);
    expect(t.lookup(['x'])?.mode).toBe(0o700);
    expect(names(t, 'x')).toEqual(['child']);
    t.put(['x'], { ...file(), type: InodeType.Symlink, target: 'y' }, 2);
    expect(t.lookup(['x'])?.type).toBe(InodeType.Symlink);
    expect(t.lookup(['x', 'child'])).toBeUndefined();
    t.put(['f'], file(), 0);
    t.put(['f'], dir(), 1);
    expect(t.lookup(['f'])?.type).toBe(InodeType.Dir);
  });

  it('hardlinks share a node, survive deletion of the original name, and fail on missing targets', () => {
    const t = new MergedTree();
    const orig = t.put(['a'], file(5), 0);
    t.link(['b'], ['a'], 0);
    expect(t.lookup(['b'])).toBe(orig);
    t.applyWhiteout(['.wh.a'], 1);
    expect(t.lookup(['a'])).toBeUndefined();
    expect(t.lookup(['b'])).toBe(orig);
    expect(() => t.link(['c'], ['missing'], 1)).toThrow(/does not exist/);
    t.put(['d'], dir(), 0);
    expect(() => t.link(['e'], ['d'], 1)).toThrow(/is a directory/);
  });

  it('creates missing parents and replaces non-directory parents', () => {
    const t = new MergedTree();
    t.put(['p'], file(), 0);
    t.put(['p', 'q', 'r'], file(), 1);
    expect(t.lookup(['p'])?.type).toBe(InodeType.Dir);
    expect(t.lookup(['p', 'q', 'r'])?.type).toBe(InodeType.File);
  });
});
