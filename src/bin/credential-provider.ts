#!/usr/bin/env node
/**
 * registry-db-credential-provider (a `bin` of the package): the kubelet's exec credential provider for the
 * registries of a Registry DB catalog (src/agent/credential-provider.ts). The kubelet runs it with the
 * `args` and `env` of its CredentialProviderConfig, a request on stdin; the answer goes to stdout.
 *
 *   registry-db-credential-provider --server URL --key-file FILE [--cache-duration SECONDS] [--timeout SECONDS]
 *   (or REGISTRY_DB_URL and REGISTRY_DB_KEY_FILE)
 *
 * Exit status: 0 answered; 2 bad arguments or an unreadable key file; 1 any other failure (a message on
 * stderr; the kubelet then pulls without credentials).
 */
import { parseFlags, serverAccess, UsageError } from '../agent/args';
import { parseRequest, provide, REQUEST_MAX_BYTES } from '../agent/credential-provider';

const USAGE = 'usage: registry-db-credential-provider --server URL --key-file FILE [--cache-duration SECONDS] [--timeout SECONDS]  (or REGISTRY_DB_URL, REGISTRY_DB_KEY_FILE)';

function seconds(raw: string | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag}: "${raw}" is not a whole number of seconds between ${min} and ${max}`);
  return n;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > REQUEST_MAX_BYTES) throw new Error(`the request on stdin is over ${REQUEST_MAX_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), {
    server: { type: 'string' },
    'key-file': { type: 'string' },
    'cache-duration': { type: 'string' },
    timeout: { type: 'string' },
  });
  const access = serverAccess(flags, process.env);
  const cacheSeconds = seconds(flags['cache-duration'], 'cache-duration', 300, 0, 86_400);
  const timeoutMs = seconds(flags.timeout, 'timeout', 10, 1, 300) * 1000;
  const image = parseRequest(await readStdin());
  const response = await provide(access, image, { cacheSeconds, timeoutMs });
  process.stdout.write(`${JSON.stringify(response)}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`registry-db-credential-provider: ${e.message}\n${e instanceof UsageError ? `${USAGE}\n` : ''}`);
  process.exitCode = e instanceof UsageError ? 2 : 1;
});
