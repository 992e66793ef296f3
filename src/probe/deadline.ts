/** One time limit for a whole probe or crawl (every redirect, token request and retry inside it). */

export interface Deadline {
  readonly signal: AbortSignal;
  /** True when this deadline's own timer fired (as opposed to the caller cancelling). */
  timedOut(): boolean;
  dispose(): void;
}

export function startDeadline(ms: number, outer?: AbortSignal): Deadline {
  const controller = new AbortController();
  let fired = false;
  const timer = setTimeout(() => {
    fired = true;
    controller.abort(new DOMException(`time limit of ${ms} ms reached`, 'TimeoutError'));
  }, ms);
  timer.unref();
  const onOuter = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => fired,
    dispose: () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}
