/**
 * TRUST_PROXY (issue 24 item 3): parsed once into what Express takes (a hop count, proxy addresses and ranges,
 * proxy-addr's names, true or false), and `true`, which lets a client choose its own address through
 * X-Forwarded-For, is warned about at start. That a hop count keeps forged headers from dodging the
 * failed-authentication budget is shown on the real process (test/reliability/http-edge.reliability.ts).
 */
import { ConfigError, loadConfig } from '../../src/config';
import { TRUST_ALL_PROXIES_WARNING } from '../../src/http/app';
import { startTestService } from '../support/service';

const trust = (value: string) => loadConfig({ TRUST_PROXY: value }).TRUST_PROXY;

test.each([
  ['false', false],
  ['0', false],
  ['1', 1],
  ['2', 2],
  ['true', true],
  ['loopback', ['loopback']],
  ['loopback, 10.0.0.0/8,192.0.2.7,fd00::/8', ['loopback', '10.0.0.0/8', '192.0.2.7/32', 'fd00::/8']],
  ['uniquelocal,LinkLocal', ['uniquelocal', 'linklocal']],
])('When TRUST_PROXY is "%s", then Express gets %p', (raw, expected) => {
  expect(trust(raw)).toEqual(expected);
});

test.each(['', 'maybe', '-1', '65', '10.0.0.0/33', 'proxy.example', 'loopback,nonsense'])('When TRUST_PROXY is "%s", then the start stops naming TRUST_PROXY', (raw) => {
  expect(() => trust(raw)).toThrow(ConfigError);
  expect(() => trust(raw)).toThrow(/^TRUST_PROXY: /);
});

test('When TRUST_PROXY is true, then the start logs a warning recommending a hop count; with a hop count it does not', async () => {
  const all = await startTestService({ TRUST_PROXY: 'true' });
  const logsAll = all.logs();
  await all.close();
  const one = await startTestService({ TRUST_PROXY: '1' });
  const logsOne = one.logs();
  await one.close();
  expect(logsAll).toContain(TRUST_ALL_PROXIES_WARNING);
  expect(logsAll).toMatch(/"level":"warn"[^\n]*TRUST_PROXY=true/);
  expect(logsOne).not.toContain(TRUST_ALL_PROXIES_WARNING);
});
