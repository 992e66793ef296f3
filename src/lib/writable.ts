/**
 * Writing large answers to a slow client (an HTTP response): wait until what was written drained, or the
 * client went away, before writing more, so an answer nobody reads does not pile up in this process.
 */
import type { Writable } from 'node:stream';

/** Resolves once `w` drained or closed (a client that goes away never drains). */
export function drainedOrClosed(w: Writable): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.once('drain', done);
    w.once('close', done);
  });
}
