/**
 * A containerd daemon of the test's own (Debian's `containerd`, installed by scripts/install-test-deps.sh):
 * root, state and socket in a temporary directory, the CRI plugin off, so it touches nothing of the
 * machine's. `ctr` talks to it through that socket; pulls go where the hosts directory given to
 * `ctr images pull --hosts-dir` says (the client side of containerd resolves and fetches).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Containerd {
  socket: string;
  /** `ctr --debug -n NAMESPACE images pull --hosts-dir DIR --snapshotter native REF`: resolves with its output (debug log included), rejects with it. */
  pull(ref: string, hostsDir: string, namespace: string): Promise<string>;
  log(): string;
  stop(): Promise<void>;
}

export async function startContainerd(dir: string): Promise<Containerd> {
  mkdirSync(dir, { recursive: true });
  const socket = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  writeFileSync(
    config,
    [
      'version = 2',
      `root = ${JSON.stringify(path.join(dir, 'root'))}`,
      `state = ${JSON.stringify(path.join(dir, 'state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(socket)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
      '[debug]',
      `  address = ""`,
      '[metrics]',
      `  address = ""`,
      '',
    ].join('\n'),
  );
  const logPath = path.join(dir, 'containerd.log');
  const fd = openSync(logPath, 'w');
  const child: ChildProcess = spawn('containerd', ['--config', config], { stdio: ['ignore', fd, fd] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`containerd exited with ${child.exitCode} before serving its socket:\n${log()}`);
    if (existsSync(socket)) {
      try {
        await run('ctr', ['--address', socket, 'version'], { timeout: 10_000 });
        break;
      } catch {
        // not ready yet
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`containerd did not serve ${socket} within 30 s:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    socket,
    log,
    async pull(ref, hostsDir, namespace) {
      try {
        const { stdout, stderr } = await run('ctr', ['--address', socket, '--debug', '--namespace', namespace, 'images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', 'native', ref], { timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
        return stdout + stderr;
      } catch (e) {
        const err = e as Error & { stdout?: string; stderr?: string };
        throw new Error(`ctr images pull ${ref} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
      }
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
