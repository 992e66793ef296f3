/**
 * Secrets in the configuration (issue 9 item 6): replicas on a shared database must share the credentials
 * key, and the placeholders shipped in deploy/secret.yaml stop the process until they are replaced.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config';

const KEY = Buffer.alloc(32, 7).toString('base64');

test('When MONGODB_URI is set without CREDENTIALS_KEY, then loading the config fails naming CREDENTIALS_KEY', () => {
  expect(() => loadConfig({ MONGODB_URI: 'mongodb://db.example:27017' })).toThrow(ConfigError);
  expect(() => loadConfig({ MONGODB_URI: 'mongodb://db.example:27017' })).toThrow(/^CREDENTIALS_KEY: is required when MONGODB_URI is set/);
  expect(loadConfig({ MONGODB_URI: 'mongodb://db.example:27017', CREDENTIALS_KEY: KEY }).CREDENTIALS_KEY).toHaveLength(32);
  // The embedded database keeps its generated key in DATA_DIR: no key needed.
  expect(loadConfig({}).CREDENTIALS_KEY).toBeUndefined();
});

test('When a value of deploy/secret.yaml still holds its placeholder, then loading the config fails naming that variable', () => {
  const yaml = readFileSync(path.join(__dirname, '..', '..', 'deploy', 'secret.yaml'), 'utf8');
  const shipped = Object.fromEntries([...yaml.matchAll(/^ {2}([A-Z_]+): "(.*)"$/gm)].map((m) => [m[1]!, m[2]!]));
  expect(Object.keys(shipped).sort()).toEqual(['API_KEYS', 'CREDENTIALS_KEY', 'MONGODB_URI']);
  const real = { MONGODB_URI: 'mongodb://db.example:27017/?replicaSet=rs0', CREDENTIALS_KEY: KEY, API_KEYS: 'admin:0123456789abcdef0123' };
  expect(() => loadConfig(real)).not.toThrow();
  for (const [name, value] of Object.entries(shipped)) {
    const attempt = () => loadConfig({ ...real, [name]: value });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(new RegExp(`^${name}: still holds the CHANGE-ME placeholder`));
  }
  // The message never echoes the value (API keys are secrets).
  expect(() => loadConfig({ ...real, API_KEYS: shipped.API_KEYS! })).toThrow(/^API_KEYS: [^,]*$/);
});
