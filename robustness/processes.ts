/**
 * The service as real processes (`node dist/src/main.js`, with the node flags of `npm start`), each on a
 * fixed loopback port so that a replica killed and started again keeps its URL. Output goes to a log file
 * per process in the run's directory. Signals: SIGKILL (crash), SIGSTOP/SIGCONT (a frozen writer), SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { productionNodeFlags } from '../bench/proc';
import { freePort } from '../test/support/registries';

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'dist', 'src', 'main.js');

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export { freePort };

/** Every service process started, so that a run cut short by its deadline or a signal leaves none behind. */
const started = new Set<ServiceProcess>();

/** SIGKILLs every service process still running (a run that ends abnormally). */
export function killAll(): void {
  for (const p of started) p.signal('SIGKILL');
}

export class ServiceProcess {
  readonly url: string;
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private readonly log: WriteStream;
  /** The environment of the next start (sweeps are turned off for the end of a run). */
  env: Record<string, string>;

  constructor(
    readonly name: string,
    readonly port: number,
    env: Record<string, string>,
    logFile: string,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.env = env;
    started.add(this);
    this.log = createWriteStream(logFile, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process and waits until it listens; throws when it exits first or takes over `ms`. */
  async startOnce(ms = 60_000): Promise<void> {
    if (this.running()) return;
    const child = spawn(process.execPath, [...productionNodeFlags(ROOT), MAIN], {
      env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(this.port), ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.log.write(`--- ${new Date().toISOString()} start pid ${child.pid}\n`);
    child.stderr!.on('data', (d: Buffer) => this.log.write(d));
    const exited = new Promise<void>((resolve) => child.once('exit', (code, signal) => {
      this.log.write(`--- ${new Date().toISOString()} exit ${code ?? signal}\n`);
      resolve();
    }));
    this.exited = exited;
    const listening = new Promise<void>((resolve) => {
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        this.log.write(line + '\n');
        if (line.includes('"listening"')) resolve();
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      listening.then(() => 'up' as const),
      exited.then(() => 'exited' as const),
      new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms))),
    ]);
    clearTimeout(timer);
    if (outcome === 'up') return;
    child.kill('SIGKILL');
    await exited;
    throw new Error(`${this.name} ${outcome === 'late' ? `did not listen within ${ms} ms` : 'exited before listening'} (see ${this.log.path})`);
  }

  /** Starts it, trying again while it cannot (the database is down...), for at most `ms`. */
  async start(ms = 60_000): Promise<void> {
    const until = Date.now() + ms;
    for (;;) {
      try {
        return await this.startOnce(Math.max(1000, until - Date.now()));
      } catch (e) {
        if (Date.now() > until) throw e;
        await sleep(500);
      }
    }
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running()) {
      if (sig === 'SIGKILL') this.child!.kill('SIGCONT');
      this.child!.kill(sig);
    }
  }

  /** SIGKILL; resolves once it is gone. */
  async kill(): Promise<void> {
    if (!this.running()) return;
    this.child!.kill('SIGCONT');
    this.child!.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (SIGKILL after `graceMs`); resolves once it is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running()) return;
    this.child!.kill('SIGCONT');
    this.child!.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  close(): void {
    this.log.end();
  }
}
