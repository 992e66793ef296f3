/**
 * Live presence for `/resolve?verify=true` (SPEC 19): each candidate is asked now, a HEAD of the manifest with
 * the prober's session (src/probe/presence.ts: the entry's stored credentials, the token flow, the egress policy,
 * its TLS settings). A round covers one request: every check in it shares one deadline (PROBE_TIMEOUT_MS) and
 * a pool of VERIFY_CONCURRENCY checks at once, so a request answers within the probe timeout whatever the
 * registries do; a check the deadline cuts off answers `present: null` with `error: "timeout"`.
 */
import type { HttpClient } from '../probe/client';
import { startDeadline, type Deadline } from '../probe/deadline';
import { checkManifest } from '../probe/presence';
import type { CredentialCipher } from '../registries/credentials';
import type { StoredRegistry } from '../registries/model';
import { hasPlatform, parseReference, type Candidate, type ImageReference, type Presence } from '../resolve';
import { Slots } from '../lib/slots';
import { toProbeTarget } from './target';

/** A live finding: a Presence with `source: "live"` and, when it gave no answer, why. */
export type LivePresence = Presence & { error?: string };

export interface VerifierOptions {
  concurrency: number;
  timeoutMs: number;
}

export class LiveVerifier {
  constructor(
    private readonly client: HttpClient,
    private readonly cipher: CredentialCipher,
    /** The stored entry by id (the view's), with its sealed credentials. */
    private readonly stored: (id: string) => Readonly<StoredRegistry> | undefined,
    private readonly opts: VerifierOptions,
  ) {}

  /** A round of checks sharing one deadline and one pool; `dispose` it when the request is answered. */
  round(): VerifyRound {
    return new VerifyRound(this.client, this.cipher, this.stored, startDeadline(this.opts.timeoutMs), new Slots(this.opts.concurrency));
  }
}

export class VerifyRound {
  constructor(
    private readonly client: HttpClient,
    private readonly cipher: CredentialCipher,
    private readonly stored: (id: string) => Readonly<StoredRegistry> | undefined,
    private readonly deadline: Deadline,
    private readonly slots: Slots,
  ) {}

  /** Each candidate of `ref` asked live, by container_registry_id. */
  async check(ref: ImageReference, candidates: readonly Candidate[], platform?: string): Promise<Map<string, LivePresence>> {
    const found = await Promise.all(candidates.map((c) => this.slots.run(() => this.one(ref, c, platform))));
    return new Map(candidates.map((c, i) => [c.container_registry_id, found[i]!]));
  }

  dispose(): void {
    this.deadline.dispose();
  }

  private async one(ref: ImageReference, c: Candidate, platform: string | undefined): Promise<LivePresence> {
    const observed_at = new Date().toISOString();
    const none = (error: string): LivePresence => ({ present: null, digest: null, platforms: null, observed_at, source: 'live', error });
    if (this.deadline.signal.aborted) return none('timeout');
    const doc = this.stored(c.container_registry_id);
    if (!doc) return none('probe_error');
    let target;
    try {
      target = toProbeTarget(doc as StoredRegistry, this.cipher);
    } catch {
      return none('probe_error');
    }
    const repository = parseReference(c.pull_reference).path;
    const live = await checkManifest(this.client, target, repository, ref.digest ?? ref.tag ?? 'latest', this.deadline.signal, this.deadline);
    if (live.error !== null) return none(live.error);
    let present = live.present;
    if (present === true && platform !== undefined) present = hasPlatform(live.platforms, platform);
    return { present, digest: live.digest, platforms: live.platforms, observed_at, source: 'live' };
  }
}
