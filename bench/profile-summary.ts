/**
 * `node dist/bench/profile-summary.js FILE.cpuprofile [N]`: self time by function (and by package) of a
 * V8 CPU profile, as written by `node --cpu-prof` (`npm run bench -- --profile`).
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** `node_modules/<package>`, `node:internal`, or the project file. */
function packageOf(url: string): string {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith('node:') || url === '') return url === '' ? '(native / gc / idle)' : 'node:internal';
  return url.replace(/^file:\/\//, '').replace(/^.*\/dist\//, 'dist/');
}

function top(map: Map<string, number>, total: number, n: number): string[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, us]) => `${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`);
}

function main(): void {
  const [file, nRaw] = process.argv.slice(2);
  if (!file) throw new Error('usage: profile-summary FILE.cpuprofile [N]');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const fn = `${functionName || '(anonymous)'} ${packageOf(url)}:${lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byPackage.set(packageOf(url), (byPackage.get(packageOf(url)) ?? 0) + us);
    total += us;
  });
  const n = Number(nRaw ?? 30);
  process.stdout.write([`${file}: ${(total / 1e6).toFixed(1)} s sampled`, '', 'self time by package:', ...top(byPackage, total, 15), '', 'self time by function:', ...top(byFunction, total, n)].join('\n') + '\n');
}

main();
