/**
 * Faults injected on a schedule, one at a time, each recorded with when it began and when it was over:
 *
 * - kill: SIGKILL of a replica, started again after a moment (a crash, a node lost);
 * - freeze: SIGSTOP of a replica, SIGCONT a few seconds later (a frozen writer: a GC pause, a stalled VM);
 * - db-restart: the database stopped and started again on the same data and port;
 * - cut: every connection between a replica and the database dropped at once, a few times at random moments
 *   (through the replica's TCP proxy), wherever the writes in flight are.
 *
 * The kinds are taken in turn from a shuffled cycle, so a short run still sees each of them.
 */
import type { Database } from './engines';
import type { Fault } from './history';
import { between, type Clock } from './http';
import type { ServiceProcess } from './processes';
import { sleep } from './processes';
import type { TcpProxy } from './tcp-proxy';

export interface FaultTargets {
  replicas: ServiceProcess[];
  proxies: TcpProxy[];
  database: Database;
  clock: Clock;
}

type Kind = Fault['kind'];
const KINDS: Kind[] = ['kill', 'freeze', 'cut', 'db-restart'];

function shuffled<T>(xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export class FaultInjector {
  readonly faults: Fault[] = [];
  private stopped = false;
  private loop?: Promise<void>;
  private wake?: () => void;

  constructor(private readonly t: FaultTargets, private readonly everyMs: [number, number]) {}

  start(): void {
    this.loop = this.run();
  }

  /** Stops scheduling; resolves once the fault under way is over (the process back, the database up). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    let cycle: Kind[] = [];
    while (!this.stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, between(...this.everyMs));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (this.stopped) return;
      if (cycle.length === 0) cycle = shuffled(KINDS);
      await this.inject(cycle.shift()!);
    }
  }

  private async inject(kind: Kind): Promise<void> {
    const target = kind === 'db-restart' ? -1 : Math.floor(Math.random() * this.t.replicas.length);
    const at = this.t.clock.now();
    let detail: string;
    try {
      detail = await this[kind === 'db-restart' ? 'restartDatabase' : kind](target);
    } catch (e) {
      detail = `failed: ${(e as Error).message}`;
    }
    this.faults.push({ kind, target, at, end: this.t.clock.now(), detail });
    process.stdout.write(`  fault ${kind}${target >= 0 ? ` replica ${target}` : ''}: ${detail}\n`);
  }

  private async kill(i: number): Promise<string> {
    const r = this.t.replicas[i]!;
    const pid = r.pid;
    await r.kill();
    const down = between(300, 2000);
    await sleep(down);
    await r.start();
    return `pid ${pid} killed, started again after ${Math.round(down)} ms as pid ${r.pid}`;
  }

  private async freeze(i: number): Promise<string> {
    const r = this.t.replicas[i]!;
    const ms = between(1500, 6000);
    r.signal('SIGSTOP');
    await sleep(ms);
    r.signal('SIGCONT');
    return `pid ${r.pid} stopped for ${Math.round(ms)} ms`;
  }

  private async cut(i: number): Promise<string> {
    const cuts: number[] = [];
    const times = 1 + Math.floor(Math.random() * 3);
    for (let k = 0; k < times; k++) {
      if (k > 0) await sleep(between(30, 600));
      cuts.push(this.t.proxies[i]!.cut());
    }
    return `${times} cut(s) of the database connections (${cuts.join(', ')} open)`;
  }

  private async restartDatabase(): Promise<string> {
    await this.t.database.stop();
    const down = between(300, 2000);
    await sleep(down);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.t.database.start();
        break;
      } catch (e) {
        if (attempt >= 10) throw e;
        await sleep(500);
      }
    }
    return `down for ${Math.round(down)} ms`;
  }
}
