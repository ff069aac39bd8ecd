import { describe, expect, it } from 'vitest';
import { codeOf, ErrorCode } from '../../../common/errors';
import { parseFilters, snapshotFields } from '../../../snapshotter/snapshots/filters';
import type { Info } from '../../../snapshotter/snapshots/types';

const info = (name: string, over: Partial<Info> = {}): Info => ({
  name,
  parent: undefined,
  kind: 'committed',
  labels: {},
  created: new Date(0),
  updated: new Date(0),
  ...over,
});

const SAMPLE: Info[] = [
  info('default/1/sha256:aa', { labels: { 'containerd.io/snapshot.ref': 'sha256:aa', 'a.b': 'x' } }),
  info('default/2/extract', { parent: 'default/1/sha256:aa', kind: 'active', labels: { 'a.b': 'y', plain: 'with space' } }),
  info('view-1', { parent: 'default/1/sha256:aa', kind: 'view' }),
];

function select(...filters: string[]): string[] {
  const f = parseFilters(filters);
  return SAMPLE.filter((i) => f.match(snapshotFields(i))).map((i) => i.name);
}

describe('containerd filter expressions', () => {
  it('matches fields by equality, presence, inequality and regular expression', () => {
    expect(select()).toHaveLength(3);
    expect(select('')).toHaveLength(3);
    expect(select('kind==view')).toEqual(['view-1']);
    expect(select('kind!=view')).toEqual(['default/1/sha256:aa', 'default/2/extract']);
    expect(select('parent==default/1/sha256:aa')).toEqual(['default/2/extract', 'view-1']);
    expect(select('parent==""')).toEqual(['default/1/sha256:aa']);
    expect(select('labels."containerd.io/snapshot.ref"==sha256:aa,parent==""')).toEqual(['default/1/sha256:aa']);
    expect(select('labels.a.b')).toEqual(['default/1/sha256:aa', 'default/2/extract']);
    expect(select('labels."a.b"==y')).toEqual(['default/2/extract']);
    expect(select('labels.plain=="with space"')).toEqual(['default/2/extract']);
    expect(select('labels.a.b!=x')).toEqual(['default/2/extract', 'view-1']);
    expect(select('name~=^default/')).toEqual(['default/1/sha256:aa', 'default/2/extract']);
    expect(select('name~=|^view|')).toEqual(['view-1']);
    expect(select('  kind == active ,  labels.plain ')).toEqual(['default/2/extract']);
    expect(select('kind==view', 'kind==active')).toEqual(['default/2/extract', 'view-1']);
    expect(select('nosuchfield')).toEqual([]);
  });

  it('decodes Go escapes in quoted strings', () => {
    const f = parseFilters(['labels."k\\x41"=="a\\"b\\u00e9\\n"']);
    expect(f.match(snapshotFields(info('x', { labels: { kA: 'a"bé\n' } })))).toBe(true);
    expect(f.match(snapshotFields(info('x', { labels: { kA: 'a"b' } })))).toBe(false);
  });

  it('rejects malformed expressions as InvalidArgument', () => {
    for (const bad of ['name==', '==x', 'name=x', 'name==a,', 'labels."unterminated', 'name~=/(/', 'name==a b', 'name==/x/', 'labels.\\', '"\\q"']) {
      let err: unknown;
      try {
        parseFilters([bad]);
      } catch (e) {
        err = e;
      }
      expect(codeOf(err), bad).toBe(ErrorCode.InvalidArgument);
    }
  });
});
