/**
 * The stop hooks of src/lifecycle.ts (issue 20): a part that never finishes (one waiting on a database that
 * is gone) or fails after its time was up does not hold the stop, and the parts after it still run.
 * The whole stop of the process under followers is in test/ops/process.test.ts.
 */
import { PassThrough } from 'node:stream';
import { Lifecycle } from '../../src/lifecycle';
import { createLogger } from '../../src/logger';

test('When a stop hook never finishes and another fails after its wait, then the stop goes on without them, runs the later hooks and says which parts it left', async () => {
  const out = new PassThrough();
  const lines: string[] = [];
  out.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n').filter(Boolean)));
  const logger = createLogger('info', out);
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const lifecycle = new Lifecycle();
    const ran: string[] = [];
    lifecycle.onStop('stuck', () => new Promise(() => undefined));
    lifecycle.onStop('fails late', () => new Promise((_, reject) => setTimeout(() => reject(new Error('the database is gone')), 300)));
    lifecycle.onStop('after', () => void ran.push('after'));

    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still waiting after 5 s'), 5000)));
    expect(await Promise.race([lifecycle.stop(logger, 100, 1000).then(() => 'stopped'), bound])).toBe('stopped');
    clearTimeout(timer);
    expect(ran).toEqual(['after']);
    // The late failure comes after the stop went on: it must not surface as an unhandled rejection.
    await new Promise((r) => setTimeout(r, 500));
    expect(unhandled).toEqual([]);
    const parts = lines.map((l) => JSON.parse(l) as { level: string; message: string; part?: string });
    expect(parts.filter((p) => p.part).map((p) => [p.level, p.part])).toEqual([
      ['warn', 'stuck'],
      ['warn', 'fails late'],
      ['info', 'after'],
    ]);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
