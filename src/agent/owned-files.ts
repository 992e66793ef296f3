/**
 * Files the agent owns under one root directory, and only those: a manifest beside them lists every file
 * and directory the agent wrote, so that it rewrites and removes its own files and never touches anyone
 * else's (a hand-written hosts.toml, a directory an operator made). `sync(desired)` brings the root to the
 * desired files: a file whose content differs is written to a temporary file in its directory and renamed
 * over the old one (readers see the old or the new file, never half of one), mode 0644; a file of the
 * manifest no longer desired is removed, and so is a directory of the manifest left empty. A desired path
 * held by a file the agent did not write is left alone and reported.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';

export interface FileChange {
  action: 'wrote' | 'removed' | 'removed-dir' | 'left-alone';
  /** Absolute path. */
  path: string;
  detail?: string;
}

interface Manifest {
  files: string[];
  dirs: string[];
}

const FILE_MODE = 0o644;
const DIR_MODE = 0o755;

/** Writes `text` to `file` atomically: a temporary file in the same directory, flushed, then renamed over it. */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', FILE_MODE);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.chmod(FILE_MODE); // the umask may have narrowed the mode given to open
    await handle.sync();
  } catch (e) {
    await handle.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export class OwnedFiles {
  private manifest: Manifest = { files: [], dirs: [] };
  /** Paths already reported as left alone (reported again only after they were free once). */
  private readonly reported = new Set<string>();
  readonly manifestPath: string;

  /** `root`: the directory (created when missing); `manifestName`: the manifest's file name in it. */
  constructor(
    readonly root: string,
    manifestName: string,
  ) {
    this.root = path.resolve(root);
    this.manifestPath = path.join(this.root, manifestName);
  }

  /** Reads the manifest a previous run left (none: the agent owns nothing here yet). */
  async load(): Promise<void> {
    const text = await readIfExists(this.manifestPath);
    if (text === undefined) return;
    let parsed: Partial<Manifest>;
    try {
      parsed = JSON.parse(text) as Partial<Manifest>;
    } catch {
      throw new Error(`${this.manifestPath} is not the agent's manifest (not JSON); move it away`);
    }
    const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && this.inside(x)) : []);
    this.manifest = { files: strings(parsed.files), dirs: strings(parsed.dirs) };
  }

  /** True when the agent wrote `rel` (a path relative to the root). */
  owns(rel: string): boolean {
    return this.manifest.files.includes(rel);
  }

  /** A relative path that stays inside the root (no `..`, not absolute, not the manifest). */
  private inside(rel: string): boolean {
    const abs = path.resolve(this.root, rel);
    return abs.startsWith(this.root + path.sep) && abs !== this.manifestPath;
  }

  /**
   * Makes the root hold exactly `desired` (relative path → content) of the agent's files; answers what it
   * did. The manifest names a file before the file is written, so a crash in between leaves nothing the
   * agent would later take for someone else's.
   */
  async sync(desired: ReadonlyMap<string, string>): Promise<FileChange[]> {
    const changes: FileChange[] = [];
    const files = new Set(this.manifest.files);
    const dirs = new Set(this.manifest.dirs);
    await mkdir(this.root, { recursive: true, mode: DIR_MODE });
    const writes: Array<[string, string]> = [];
    for (const [rel, text] of desired) {
      if (!this.inside(rel)) throw new Error(`refusing to write ${rel}: outside ${this.root}`);
      const current = await readIfExists(path.join(this.root, rel));
      if (current !== undefined && !files.has(rel)) {
        if (!this.reported.has(rel)) changes.push({ action: 'left-alone', path: path.join(this.root, rel), detail: 'the agent did not write this file; remove it to let the agent manage it' });
        this.reported.add(rel);
        continue;
      }
      this.reported.delete(rel);
      if (current === text) continue;
      for (const dir of await this.missingDirs(path.dirname(rel))) dirs.add(dir);
      files.add(rel);
      writes.push([rel, text]);
    }
    await this.saveManifest(files, dirs);
    for (const [rel, text] of writes) {
      for (const dir of await this.missingDirs(path.dirname(rel))) await mkdir(path.join(this.root, dir), { mode: DIR_MODE });
      await writeAtomically(path.join(this.root, rel), text);
      changes.push({ action: 'wrote', path: path.join(this.root, rel) });
    }
    for (const rel of [...files]) {
      if (desired.has(rel)) continue;
      await rm(path.join(this.root, rel), { force: true });
      files.delete(rel);
      changes.push({ action: 'removed', path: path.join(this.root, rel) });
    }
    // Deepest first, so that a parent is empty once its children are gone.
    for (const rel of [...dirs].sort((a, b) => b.length - a.length)) {
      if ([...files].some((f) => f.startsWith(rel + '/'))) continue;
      try {
        await rmdir(path.join(this.root, rel));
        changes.push({ action: 'removed-dir', path: path.join(this.root, rel) });
        dirs.delete(rel);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') dirs.delete(rel);
        else if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
        // Not empty: someone else's files are in it; it stays, still the agent's to remove once they are gone.
      }
    }
    await this.saveManifest(files, dirs);
    return changes;
  }

  private async saveManifest(files: Set<string>, dirs: Set<string>): Promise<void> {
    const next = { files: [...files].sort(), dirs: [...dirs].sort() };
    if (JSON.stringify(next) === JSON.stringify(this.manifest)) return;
    await writeAtomically(this.manifestPath, JSON.stringify({ written_by: 'registry-db-agent', ...next }, null, 2) + '\n');
    this.manifest = next;
  }

  /** The directories of `relDir` (relative, outermost first) that do not exist yet. */
  private async missingDirs(relDir: string): Promise<string[]> {
    if (relDir === '.' || relDir === '') return [];
    try {
      await stat(path.join(this.root, relDir));
      return [];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return [...(await this.missingDirs(path.dirname(relDir))), relDir];
  }
}
