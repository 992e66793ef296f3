/**
 * Serialises async work per key inside one process. Concurrent updates of one entry then queue here
 * instead of racing on the database's version check; replicas still rely on that check.
 */
export interface GiveUp {
  /** Epoch ms: a caller still waiting for its turn then stops waiting... */
  at: number;
  /** ...and gets this error; its work never runs. */
  error: () => Error;
}

export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, work: () => Promise<T>, giveUp?: GiveUp): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    const done = () => {
      release();
      // Once `tail` is settled nobody waits on it (a caller that gave up settles it only after `previous`).
      void tail.then(() => {
        if (this.tails.get(key) === tail) this.tails.delete(key);
      });
    };
    if (!(await turn(previous, giveUp))) {
      // Those queued after this caller still wait for `previous`: `tail` follows it.
      done();
      throw giveUp!.error();
    }
    try {
      return await work();
    } finally {
      done();
    }
  }
}

/** Waits for `previous`; false when `giveUp.at` came first. */
async function turn(previous: Promise<void>, giveUp: GiveUp | undefined): Promise<boolean> {
  if (!giveUp) return previous.then(() => true);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([previous.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, giveUp.at - Date.now()))))]);
  } finally {
    clearTimeout(timer);
  }
}
