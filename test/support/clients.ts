/**
 * Real clients of the pull path for the node tests, none written here: Debian's `skopeo` (with a trust
 * policy and a registries.conf of the test's own, so the machine's /etc/containers is never read), and the
 * Kubernetes side of the credential provider, `test/go/kubelet-decode` (the kubelet's API types and
 * codecs, built with the Go toolchain; its modules come through the Go module proxy the first time).
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './node-programs';

const run = promisify(execFile);

export interface Skopeo {
  /** `skopeo copy docker://ref dir:dest`; resolves with stderr (the --debug log), rejects with the error's output. */
  copy(ref: string, dest: string, opts?: { creds?: string; anonymous?: boolean; tlsVerify?: boolean; registriesConf?: string }): Promise<string>;
}

/** A skopeo that reads `registriesConf` (default: an empty file) and accepts any image (a policy of its own). */
export function skopeo(dir: string, registriesConf?: string): Skopeo {
  const policy = path.join(dir, 'policy.json');
  writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const empty = path.join(dir, 'empty-registries.conf');
  writeFileSync(empty, '');
  return {
    async copy(ref, dest, opts = {}) {
      const args = ['--debug', '--policy', policy, '--registries-conf', opts.registriesConf ?? registriesConf ?? empty, 'copy', '--retry-times', '0'];
      if (opts.tlsVerify === false) args.push('--src-tls-verify=false');
      if (opts.creds) args.push('--src-creds', opts.creds);
      if (opts.anonymous) args.push('--src-no-creds');
      args.push(`docker://${ref}`, `dir:${dest}`);
      try {
        // HOME and XDG dirs of the test's own: no auth.json or user registries.conf of the machine is read.
        const { stderr } = await run('skopeo', args, { env: { PATH: process.env.PATH ?? '', HOME: dir, XDG_RUNTIME_DIR: dir, XDG_CONFIG_HOME: dir }, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
        return stderr;
      } catch (e) {
        const err = e as Error & { stderr?: string };
        throw new Error(`skopeo copy ${ref} failed: ${err.message}\n${(err.stderr ?? '').split('\n').filter((l) => !/level=debug/.test(l)).join('\n')}`);
      }
    },
  };
}

/** Builds test/go/kubelet-decode into `dir`; returns the binary's path. */
export function buildKubeletDecode(dir: string): string {
  const out = path.join(dir, 'kubelet-decode');
  execFileSync('go', ['build', '-trimpath', '-o', out, '.'], {
    cwd: path.join(ROOT, 'test', 'go', 'kubelet-decode'),
    env: { ...process.env, GOFLAGS: '-mod=readonly -buildvcs=false' },
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 600_000,
  });
  return out;
}
