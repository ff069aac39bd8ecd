import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { registryErrorCodes, statusError } from '../../../oci/registry/status-error';

const body = (text: string) => Readable.from([Buffer.from(text)]) as unknown as Parameters<typeof statusError>[0]['body'];

describe('registry error responses', () => {
  it('extracts spec error codes and messages, ignoring non-spec bodies', () => {
    expect(registryErrorCodes('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"},{"code":"X"}]}')).toEqual([
      'BLOB_UNKNOWN: blob unknown to registry',
      'X',
    ]);
    expect(registryErrorCodes('<html>gateway</html>')).toEqual([]);
    expect(registryErrorCodes('{"errors":"nope"}')).toEqual([]);
  });

  it('maps statuses to kinds and quotes only spec errors', async () => {
    const cases: Array<[number, string]> = [
      [404, ErrorCode.NotFound],
      [401, ErrorCode.Unauthorized],
      [403, ErrorCode.Unauthorized],
      [413, ErrorCode.LimitExceeded],
      [429, ErrorCode.Unavailable],
      [503, ErrorCode.Unavailable],
      [400, ErrorCode.FailedPrecondition],
    ];
    for (const [status, code] of cases) {
      const err = await statusError({ status, body: body('{"errors":[{"code":"SOME_CODE","message":"m"}]}') }, 'doing x', { maxErrorBodyBytes: 1024 });
      expect(err.code).toBe(code);
      expect(err.message).toBe(`doing x: registry answered ${status} (SOME_CODE: m)`);
      expect(err.details).toMatchObject({ status, registryErrors: ['SOME_CODE'] });
    }
    const raw = await statusError({ status: 502, body: body('upstream secret-ish page') }, 'y', { maxErrorBodyBytes: 1024 });
    expect(raw.message).toBe('y: registry answered 502');
  });
});
