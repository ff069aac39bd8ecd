import { describe, expect, it } from 'vitest';
import { withDigest } from '../../../oci/registry/blob-upload';

describe('upload locations', () => {
  it('adds digest= and keeps the session state query byte for byte', () => {
    const state = '_state=ab%2Bcd%3D%3D&x=1+2';
    const url = withDigest(new URL(`http://r:5000/v2/a/blobs/uploads/uuid?${state}`), `sha256:${'0'.repeat(64)}`);
    expect(url.search).toBe(`?${state}&digest=sha256%3A${'0'.repeat(64)}`);
    expect(withDigest(new URL('https://r/v2/a/blobs/uploads/u'), 'sha256:ab').search).toBe('?digest=sha256%3Aab');
  });
});
