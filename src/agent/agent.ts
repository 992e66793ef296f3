/**
 * The node agent (SPEC section 18): keeps a node's pull configuration current from the catalog. It follows
 * the change feed (feed-follower.ts) into a FeedCatalog (src/nodes) and, once a listing is complete (the
 * first bookmark of a connection) and after every change from then on, renders the files with the same
 * functions the server's GET /pull-config routes answer with, and writes those whose content changed
 * (owned-files.ts): `certs.d/<upstream>/hosts.toml` and its CA files under --containerd-dir, and the
 * containers-registries.conf named by --registries-conf. While the server cannot be reached the files stay
 * as they are. One JSON line per change on stdout.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { FeedCatalog } from '../nodes';
import { UsageError, type ServerAccess } from './args';
import { FeedFollower } from './feed-follower';
import { OwnedFiles, type FileChange } from './owned-files';

export interface AgentOptions {
  access: ServerAccess;
  containerdDir?: string;
  registriesConf?: string;
  /** Render once from a complete listing, then stop. */
  once?: boolean;
  /** Passed to the follower (tests shorten them). */
  idleTimeoutMs?: number;
  backoff?: { minMs: number; maxMs: number };
}

export type AgentLog = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** The manifest of the agent's files under --containerd-dir. */
export const CONTAINERD_MANIFEST = '.registry-db-agent.json';
/** The manifest of the registries.conf file, beside it. */
export const registriesConfManifest = (file: string) => `.${path.basename(file)}.registry-db-agent.json`;

interface Output {
  files: OwnedFiles;
  render: (catalog: FeedCatalog) => Map<string, string>;
}

async function outputs(opts: AgentOptions): Promise<Output[]> {
  const out: Output[] = [];
  if (opts.containerdDir) out.push({ files: new OwnedFiles(opts.containerdDir, CONTAINERD_MANIFEST), render: (c) => c.config.containerdTree() });
  if (opts.registriesConf) {
    const file = path.resolve(opts.registriesConf);
    const name = path.basename(file);
    const files = new OwnedFiles(path.dirname(file), registriesConfManifest(file));
    out.push({ files, render: (c) => new Map([[name, c.config.registriesConf()]]) });
  }
  for (const o of out) await o.files.load();
  if (opts.registriesConf) {
    const conf = out[out.length - 1]!.files;
    const name = path.basename(opts.registriesConf);
    const exists = await stat(path.join(conf.root, name)).then(() => true, () => false);
    if (exists && !conf.owns(name)) {
      throw new UsageError(`--registries-conf ${opts.registriesConf}: the file exists and this agent did not write it; give a file of its own (e.g. /etc/containers/registries.conf.d/50-registry-db.conf) or remove it`);
    }
  }
  return out;
}

/**
 * Runs until `signal` aborts (or, with `once`, until the files were written once). Throws UsageError for an
 * output it may not write, KeyRejectedError when the service refuses the key.
 */
export async function runAgent(opts: AgentOptions, log: AgentLog, signal: AbortSignal): Promise<void> {
  if (!opts.containerdDir && !opts.registriesConf) throw new UsageError('nothing to write: give --containerd-dir DIR and/or --registries-conf FILE');
  const outs = await outputs(opts);
  const catalog = new FeedCatalog();
  const stop = new AbortController();
  const both = AbortSignal.any([signal, stop.signal]);
  let listed = false;
  let dirty = false;
  let rendering: Promise<void> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let revision = 0;
  let onceFailed: Error | undefined;

  const render = async (): Promise<void> => {
    dirty = false;
    const at = revision;
    let failed = false;
    for (const o of outs) {
      let changes: FileChange[];
      try {
        changes = await o.files.sync(o.render(catalog));
      } catch (e) {
        failed = true;
        log('error', 'could not write the pull configuration', { root: o.files.root, error: (e as Error).message, ...(opts.once ? {} : { retry_in_ms: 5000 }) });
        continue;
      }
      for (const c of changes) log(c.action === 'left-alone' ? 'warn' : 'info', c.action, { path: c.path, revision: at, ...(c.detail ? { detail: c.detail } : {}) });
    }
    if (opts.once) {
      if (failed) onceFailed = new Error('the pull configuration could not be written (see the log)');
      stop.abort();
    } else if (failed) {
      clearTimeout(retry);
      retry = setTimeout(schedule, 5000);
    }
  };
  // One render at a time; changes that arrive meanwhile are rendered right after it.
  function schedule(): void {
    if (!listed) return;
    dirty = true;
    if (rendering) return;
    rendering = (async () => {
      while (dirty && !both.aborted) await render();
    })().finally(() => (rendering = undefined));
  }

  const follower = new FeedFollower(
    { access: opts.access, idleTimeoutMs: opts.idleTimeoutMs, backoff: opts.backoff, noRetry: opts.once },
    {
      reset: () => {
        catalog.clear();
        listed = false;
      },
      change: (change, r) => {
        catalog.apply(change);
        revision = Math.max(revision, r);
        if (listed) schedule();
      },
      bookmark: (r) => {
        revision = Math.max(revision, r);
        if (listed) return;
        listed = true;
        log('info', 'catalog listed', { revision: r, entries: catalog.size });
        schedule();
      },
      log,
    },
  );
  try {
    await follower.run(both);
    while (rendering) await rendering;
  } finally {
    clearTimeout(retry);
  }
  if (onceFailed) throw onceFailed;
}
