/**
 * Reliability suite global setup: the run's database server (the shared test setup), then one private
 * build of the service (tsc into node_modules/.cache), so the processes this suite starts run code that a
 * concurrent `npm run build` in the same working tree cannot change under them.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import sharedSetup from '../setup/global-setup';

const ROOT = path.join(__dirname, '..', '..');

export default async function globalSetup(): Promise<void> {
  await sharedSetup();
  mkdirSync(path.join(ROOT, 'node_modules', '.cache'), { recursive: true }); // absent in a fresh clone
  const build = mkdtempSync(path.join(ROOT, 'node_modules', '.cache', 'registry-db-reliability-'));
  // tsc's exit status also reports type errors in files the service does not run; the emitted entry point decides.
  await promisify(execFile)(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', build]).catch(() => undefined);
  const main = path.join(build, 'src', 'main.js');
  if (!existsSync(main)) throw new Error(`building the service into ${build} produced no src/main.js`);
  process.env.RELIABILITY_BUILD = build;
}
