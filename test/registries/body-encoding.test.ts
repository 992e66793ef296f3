/**
 * Request bodies are stored as sent or refused (issue 24 item 8): the scan that names where an integer too
 * large for a double or a byte that is not UTF-8 sits (src/lib/json-scan.ts), and the answers of the real
 * service for such bodies in keys, nested arrays and outside any string. The main cases run on the real
 * process too (test/reliability/http-edge.reliability.ts).
 */
import { findUnsafeInteger, isUnsafeIntegerLiteral, pathAt } from '../../src/lib/json-scan';
import { parseJsonText } from '../../src/lib/json-shape';
import { InputError } from '../../src/errors';
import { startTestService, type TestService } from '../support/service';

describe('the scan', () => {
  test.each([
    ['9007199254740992', true],
    ['9007199254740993', true],
    ['-9007199254740993', true],
    ['123456789012345678901234567890', true],
    ['9007199254740991', false],
    ['-9007199254740991', false],
    ['0009', false],
    ['1e300', false],
    ['12345678901234567.5', false],
  ])('When the literal is %s, then unsafe is %p', (literal, unsafe) => {
    expect(isUnsafeIntegerLiteral(literal)).toBe(unsafe);
  });

  test('When a big integer sits deep in arrays and objects, under keys with escapes, then its JSON Pointer is named; digits inside strings are not numbers', () => {
    const text = '{"a\\"b/c~d": [1, {"x": "12345678901234567890", "y": [0, 0, 18014398509481984]}], "z": 1}';
    expect(JSON.parse(text)).toBeTruthy();
    expect(findUnsafeInteger(text)).toEqual({ literal: '18014398509481984', path: '/a"b~1c~0d/1/y/2' });
    expect(findUnsafeInteger('{"x": "12345678901234567890", "n": 1.5e30}')).toBeUndefined();
    expect(findUnsafeInteger('  90071992547409930  ')).toEqual({ literal: '90071992547409930', path: '/' });
    expect(findUnsafeInteger('[{}, [], {"k": []}, -9007199254740999]')).toEqual({ literal: '-9007199254740999', path: '/3' });
  });

  test('When a character offset is given, then pathAt names the value or the member holding it', () => {
    const text = '{"name": "abc", "meta": {"k\u00e9y": [true, "x"]}}';
    expect(pathAt(text, text.indexOf('abc'))).toBe('/name');
    expect(pathAt(text, text.indexOf('k\u00e9y'))).toBe('/meta/k\u00e9y');
    expect(pathAt(text, text.indexOf('"x"') + 1)).toBe('/meta/k\u00e9y/1');
    expect(pathAt(text, text.indexOf('true'))).toBe('/meta/k\u00e9y/0');
    expect(pathAt(text, 0)).toBe('/');
  });

  test('When the seed script or the API parses a text with a big integer, then it is an InputError naming the field', () => {
    expect(() => parseJsonText('{"m": {"n": 9007199254740993}}')).toThrow(InputError);
    try {
      parseJsonText('{"m": {"n": 9007199254740993}}');
    } catch (e) {
      expect((e as InputError).errors).toEqual([{ path: '/m/n', message: expect.stringMatching(/2\^53/) }]);
      expect((e as InputError).message).toMatch(/stored as 9007199254740992/);
    }
  });
});

describe('the service', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(() => svc.close());

  async function post(bytes: Buffer, contentType = 'application/json'): Promise<{ status: number; body: any }> {
    const res = await fetch(`${svc.url}/container_registry`, { method: 'POST', headers: { 'Content-Type': contentType }, body: bytes });
    return { status: res.status, body: await res.json() };
  }
  const withBytes = (text: string, marker: string, bytes: number[]): Buffer => {
    const b = Buffer.from(text, 'utf8');
    const at = b.indexOf(marker);
    return Buffer.concat([b.subarray(0, at), Buffer.from(bytes), b.subarray(at + marker.length)]);
  };
  const body = '{"container_registry_name": "n-@", "container_registry_public_url": "http://127.0.0.1:5999", "container_registry_metadata": {"k@y": ["a", "b@"]}}';

  test.each([
    ['in a value', 'n-@', [0x6e, 0x2d, 0xc3], '/container_registry_name'],
    // ED A0 80 would be a UTF-16 surrogate: three bytes that are not UTF-8; the key is named as decoded with U+FFFD.
    ['in a key', 'k@y', [0x6b, 0xed, 0xa0, 0x80, 0x79], '/container_registry_metadata/k\uFFFD\uFFFD\uFFFDy'],
    ['in an array item', 'b@', [0x62, 0xf8], '/container_registry_metadata/k@y/1'],
    ['outside any string', '{"container_registry_name"', [0x7b, 0xff, ...Buffer.from(' "container_registry_name"')], '/'],
  ])('When a byte that is not UTF-8 sits %s, then it is a 400 naming where', async (_where, marker, bytes, path) => {
    const res = await post(withBytes(body, marker as string, bytes as number[]));
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/not valid UTF-8/);
    expect(res.body.errors).toEqual([{ path, message: expect.stringMatching(/not UTF-8/) }]);
  });

  test('When a body starts with a byte-order mark, then it is still served', async () => {
    const text = body.replace(/@/g, 'x');
    expect((await post(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]))).status).toBe(201);
  });
});
