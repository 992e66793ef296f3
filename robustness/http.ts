/**
 * The harness's one clock and its HTTP client: every request has a deadline, and never throws; what
 * happened is in the answer (a status, or the reason no answer came: `timeout`, ECONNREFUSED, ECONNRESET...).
 */
import { performance } from 'node:perf_hooks';

/** Microseconds since the run began. */
export class Clock {
  private readonly t0 = performance.now();
  now(): number {
    return Math.round((performance.now() - this.t0) * 1000);
  }
}

export interface Answer {
  status: number;
  headers?: Headers;
  body?: unknown;
  error?: string;
}

export function errorCode(e: unknown): string {
  const err = e as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  if (err.name === 'TimeoutError' || err.cause?.name === 'TimeoutError') return 'timeout';
  if (err.name === 'AbortError') return 'aborted';
  return err.cause?.code ?? err.code ?? err.name ?? String(e);
}

export async function send(url: string, method: string, body: unknown, timeoutMs: number, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
  }
  try {
    const res = await fetch(url, init);
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    return { status: res.status, headers: res.headers, body: parsed };
  } catch (e) {
    return { status: 0, error: errorCode(e) };
  }
}

export const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
export const between = (lo: number, hi: number) => lo + Math.random() * (hi - lo);
