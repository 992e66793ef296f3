/**
 * The service's stdout log writer: lines leave in one write per interval, in order; a large burst is flushed
 * at 64 KiB and an error line at once; the lines pending at an exit still arrive (the process test checks
 * that end to end: its "stopped:database" line is the last one before process.exit).
 */
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { LineBatcher } from '../../src/observability/line-batcher';

function sink() {
  const writes: string[] = [];
  const target = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { writes, target };
}

test('When many lines are logged within an interval, then they leave in one write, in order, when it ends', async () => {
  const { writes, target } = sink();
  const batcher = new LineBatcher(target, 20);
  for (let i = 0; i < 100; i++) batcher.write(`{"n":${i}}\n`);
  await sleep(5);
  expect(writes).toEqual([]);
  await sleep(40);
  expect(writes).toHaveLength(1);
  expect(writes[0]!.trimEnd().split('\n').map((l) => JSON.parse(l).n)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  batcher.write('{"n":100}\n');
  await sleep(40);
  expect(writes).toEqual([expect.any(String), '{"n":100}\n']);
  batcher.end();
});

test('When an error line is logged, then it leaves at once, after the lines pending before it', () => {
  const { writes, target } = sink();
  const batcher = new LineBatcher(target, 60_000);
  batcher.write('{"level":"info","n":1}\n');
  expect(writes).toEqual([]);
  batcher.write('{"level":"error","n":2}\n');
  expect(writes).toEqual(['{"level":"info","n":1}\n{"level":"error","n":2}\n']);
  batcher.end();
});

test('When a burst passes 64 KiB, then it is written at once without waiting for the next turn', () => {
  const { writes, target } = sink();
  const batcher = new LineBatcher(target);
  const line = `${'x'.repeat(1023)}\n`;
  for (let i = 0; i < 70; i++) batcher.write(line);
  expect(writes).toHaveLength(1);
  expect(writes[0]!.length).toBe(64 * 1024);
  batcher.flush();
  expect(writes.join('').length).toBe(70 * 1024);
  batcher.end();
});
