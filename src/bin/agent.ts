#!/usr/bin/env node
/**
 * registry-db-agent (`npm run agent -- ...`, a `bin` of the package): keeps a node's containerd hosts.toml
 * files and containers-registries.conf current from a Registry DB catalog (src/agent/agent.ts).
 *
 *   registry-db-agent --server URL [--key-file FILE] [--containerd-dir DIR] [--registries-conf FILE] [--once]
 *
 * Exit status: 0 stopped (SIGTERM, SIGINT) or, with --once, files written; 2 bad arguments, an unreadable
 * key file, an output it may not write, or a key the service refuses; 1 anything else (with --once, a
 * server that cannot be reached).
 */
import { runAgent, type AgentLog } from '../agent/agent';
import { parseFlags, serverAccess, UsageError } from '../agent/args';
import { KeyRejectedError } from '../agent/feed-follower';

const USAGE = `usage: registry-db-agent --server URL [--key-file FILE] [--containerd-dir DIR] [--registries-conf FILE] [--once]
  --server URL            the Registry DB service (or REGISTRY_DB_URL)
  --key-file FILE         a file holding an API key of role puller or reader (or REGISTRY_DB_KEY_FILE)
  --containerd-dir DIR    containerd's hosts directory, e.g. /etc/containerd/certs.d: one <upstream>/hosts.toml per mirrored host
  --registries-conf FILE  a containers-registries.conf file of its own, e.g. /etc/containers/registries.conf.d/50-registry-db.conf
  --once                  write the files once and exit
  --retry-max SECONDS     longest wait between reconnects when the service cannot be reached (default 30)`;

const log: AgentLog = (level, msg, fields = {}) => {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
};

function fail(status: number, message: string, usage = false): never {
  process.stderr.write(`registry-db-agent: ${message}\n${usage ? `${USAGE}\n` : ''}`);
  process.exit(status);
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), {
    server: { type: 'string' },
    'key-file': { type: 'string' },
    'containerd-dir': { type: 'string' },
    'registries-conf': { type: 'string' },
    once: { type: 'boolean' },
    'retry-max': { type: 'string' },
    help: { type: 'boolean' },
  });
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const access = serverAccess(flags, process.env);
  const retryMax = flags['retry-max'] === undefined ? 30 : Number(flags['retry-max']);
  if (!Number.isFinite(retryMax) || retryMax < 1 || retryMax > 3600) throw new UsageError(`--retry-max: "${flags['retry-max']}" is not a number of seconds between 1 and 3600`);
  const stop = new AbortController();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => stop.abort());
  log('info', 'registry-db-agent starting', { server: access.server, containerd_dir: flags['containerd-dir'] ?? null, registries_conf: flags['registries-conf'] ?? null, once: flags.once === true });
  const backoff = { minMs: Math.min(500, retryMax * 1000), maxMs: retryMax * 1000 };
  await runAgent({ access, containerdDir: flags['containerd-dir'], registriesConf: flags['registries-conf'], once: flags.once === true, backoff }, log, stop.signal);
  log('info', 'registry-db-agent stopped');
}

main().catch((e: Error) => {
  if (e instanceof UsageError) fail(2, e.message, true);
  if (e instanceof KeyRejectedError) fail(2, `${e.message}; check --key-file (a key of role puller or reader)`);
  fail(1, e.message);
});
