/**
 * Onboarding (SPEC section 9): entries from JSON files (one object, an array, or a directory of .json
 * files) or stdin, each validated and upserted through the same RegistryService as the API. One bad
 * entry never stops the others, and each line says what became of its entry. Before anything is written,
 * the input as a whole is checked: an entry too large for the database, and an entry the input states
 * twice (the same id, or the same name), are refused on their own lines; the first statement of an entry
 * is onboarded, a later one would undo it on every run.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors';
import { parseJsonText } from '../lib/json-shape';
import { ONBOARD_BATCH, type OnboardOutcome, type RegistryService } from '../registries/service';

export interface SourceEntry {
  /** file[#index] the entry came from. */
  source: string;
  value?: unknown;
  /** Set when the source itself could not be read or parsed. */
  error?: string;
  /** Set when the entry is refused before the batch (too large, or stated twice in the input). */
  refused?: string;
}

export interface OnboardLine {
  source: string;
  outcome: OnboardOutcome | 'invalid' | 'failed';
  name?: string;
  id?: string;
  reasons?: string[];
}

async function filesOf(p: string): Promise<string[]> {
  const s = await stat(p);
  if (!s.isDirectory()) return [p];
  const names = (await readdir(p)).filter((n) => n.endsWith('.json')).sort();
  return names.map((n) => path.join(p, n));
}

function entriesOf(source: string, text: string): SourceEntry[] {
  let value: unknown;
  try {
    value = parseJsonText(text, source);
  } catch (e) {
    return [{ source, error: (e as Error).message }];
  }
  if (Array.isArray(value)) return value.map((v, i) => ({ source: `${source}#${i}`, value: v }));
  return [{ source, value }];
}

/** Reads every path (`-` = stdin) into entries; unreadable paths become entries with an error. */
export async function readSources(paths: string[], stdin: NodeJS.ReadableStream = process.stdin): Promise<SourceEntry[]> {
  const out: SourceEntry[] = [];
  for (const p of paths) {
    if (p === '-') {
      const chunks: Buffer[] = [];
      for await (const c of stdin) chunks.push(Buffer.from(c));
      out.push(...entriesOf('<stdin>', Buffer.concat(chunks).toString('utf8')));
      continue;
    }
    let files: string[];
    try {
      files = await filesOf(p);
    } catch (e) {
      out.push({ source: p, error: `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
      continue;
    }
    for (const f of files) {
      try {
        out.push(...entriesOf(f, await readFile(f, 'utf8')));
      } catch (e) {
        out.push({ source: f, error: `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
      }
    }
  }
  return out;
}

function reasonsOf(e: unknown): string[] {
  if (e instanceof AppError) return e.errors?.map((fe) => `${fe.path}: ${fe.message}`) ?? [e.message];
  return [(e as Error).message];
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Where each id and name of the input is first stated: a later entry with one of them states that entry again. */
class FirstStatements {
  private readonly byId = new Map<string, string>();
  private readonly byName = new Map<string, string>();

  /** Why the entry at `source` repeats an earlier one, or undefined (it is then the first statement of its id and name). */
  repeat(value: Record<string, unknown>, source: string): string | undefined {
    const id = typeof value.container_registry_id === 'string' ? value.container_registry_id : undefined;
    const name = typeof value.container_registry_name === 'string' ? value.container_registry_name.normalize('NFC') : undefined;
    const firstId = id === undefined ? undefined : this.byId.get(id);
    if (firstId !== undefined) return `/container_registry_id: ${id} is given twice, at ${firstId} and at ${source}; only the first is onboarded`;
    const firstName = name === undefined ? undefined : this.byName.get(name);
    if (firstName !== undefined) return `/container_registry_name: "${name}" is given twice, at ${firstName} and at ${source}; only the first is onboarded`;
    if (id !== undefined) this.byId.set(id, source);
    if (name !== undefined) this.byName.set(name, source);
    return undefined;
  }
}

/** Why an entry is refused before any batch (a repeat of an earlier entry of the input), by position. Entries too large to store are answered by the service (413). */
function refusedUpFront(entries: SourceEntry[]): Map<number, string> {
  const out = new Map<number, string>();
  const first = new FirstStatements();
  for (const [i, e] of entries.entries()) {
    if (e.error || !isObject(e.value)) continue;
    const why = first.repeat(e.value, e.source);
    if (why) out.set(i, why);
  }
  return out;
}

export async function onboard(service: RegistryService, input: SourceEntry[], dryRun: boolean): Promise<OnboardLine[]> {
  const refused = refusedUpFront(input);
  const entries = input.map((e, i): SourceEntry => (refused.has(i) ? { ...e, refused: refused.get(i) } : e));
  const lines: OnboardLine[] = [];
  // Batches: one lookup and one insertMany per batch instead of two round trips per entry.
  for (let start = 0; start < entries.length; start += ONBOARD_BATCH) {
    const batch = entries.slice(start, start + ONBOARD_BATCH);
    const readable = batch.filter((e) => !e.error && !e.refused);
    let results: Awaited<ReturnType<RegistryService['onboardMany']>>;
    try {
      results = await service.onboardMany(readable.map((e) => e.value), dryRun);
    } catch (e) {
      results = readable.map(() => ({ error: e }));
    }
    let next = 0;
    for (const entry of batch) {
      if (entry.error) {
        lines.push({ source: entry.source, outcome: 'invalid', reasons: [entry.error] });
        continue;
      }
      const name = (entry.value as { container_registry_name?: unknown } | null)?.container_registry_name;
      const shown = typeof name === 'string' ? name : undefined;
      if (entry.refused) {
        lines.push({ source: entry.source, outcome: 'invalid', name: shown, reasons: [entry.refused] });
        continue;
      }
      const r = results[next++]!;
      if ('outcome' in r) {
        lines.push({ source: entry.source, outcome: r.outcome, id: r.id, name: String(name) });
        continue;
      }
      const client = r.error instanceof AppError && r.error.status < 500;
      lines.push({ source: entry.source, outcome: client ? 'invalid' : 'failed', name: shown, reasons: reasonsOf(r.error) });
    }
  }
  return lines;
}

export function formatLine(l: OnboardLine): string {
  const what = l.name ? `${l.name}${l.id ? ` (${l.id})` : ''}` : '';
  const reasons = l.reasons ? `: ${l.reasons.join('; ')}` : '';
  return `${l.outcome.padEnd(9)} ${l.source}${what ? ` ${what}` : ''}${reasons}`;
}

export function summarize(lines: OnboardLine[], dryRun: boolean): string {
  const count = (o: OnboardLine['outcome']) => lines.filter((l) => l.outcome === o).length;
  return `${dryRun ? '[dry run, nothing written] ' : ''}${lines.length} entries: ${count('created')} created, ${count('updated')} updated, ${count('unchanged')} unchanged, ${count('invalid')} invalid, ${count('failed')} failed`;
}
