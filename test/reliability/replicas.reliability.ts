/**
 * Three service processes on one database, with health sweeps every 3 seconds (registries on a loopback
 * server of this test), concurrent creates of the same names, concurrent updates of the same entries
 * (plain and with If-Match), concurrent deletes, and one probe budget shared by the three.
 */
import { startLoopback, type Loopback } from '../health/loopback';
import { entry } from '../support/entries';
import { testDbName } from '../support/service';
import { send, sleep, startServiceProcess, tally, type Outcome, type ServiceProcess } from './support';

const SWEEP_REGISTRIES = 8;
const SHARED_ENTRIES = 4;
const UPDATES_PER_REPLICA_PER_ENTRY = 12;
const PROBE_BUDGET = 12;

let replicas: ServiceProcess[] = [];
let loopback: Loopback | undefined;
afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await loopback?.close();
});

test('When three replicas share one database under concurrent creates, updates, deletes and sweeps, then no update is lost, If-Match holds, names stay unique, each registry is probed at most once per sweep and the probe budget is shared', async () => {
  loopback = await startLoopback('registry');
  const env = { MONGODB_URI: process.env.TEST_MONGODB_URI!, MONGODB_DB: testDbName(), HEALTH_CRON: '*/3 * * * * *', PROBE_RATE_LIMIT_MAX: String(PROBE_BUDGET), RATE_LIMIT_WINDOW_MS: '600000' };
  replicas = await Promise.all([0, 1, 2].map(() => startServiceProcess(env)));
  const at = (i: number) => replicas[i % 3]!.url;
  const outcomes: Outcome[] = [];
  const track = async (p: Promise<Outcome>) => {
    const o = await p;
    outcomes.push(o);
    return o;
  };

  // Registries the sweeps probe, and entries the clients fight over.
  const sweepNames = Array.from({ length: SWEEP_REGISTRIES }, (_, i) => `sweep-${i}`);
  for (const [i, name] of sweepNames.entries()) expect((await track(send(at(i), 'POST', '/container_registry', entry({ container_registry_name: name, container_registry_public_url: loopback.url(name) })))).status).toBe(201);
  const shared: string[] = [];
  for (let i = 0; i < SHARED_ENTRIES; i++) {
    const o = await track(send(at(i), 'POST', '/container_registry', entry({ container_registry_public_url: loopback.url(`shared-${i}`) })));
    expect(o.status).toBe(201);
    shared.push(o.body.container_registry_id);
  }

  // 1. The same 10 names created at once through all three replicas: one 201 each, the rest 409.
  const names = Array.from({ length: 10 }, (_, i) => `dup-${i}`);
  const creates = await Promise.all(names.flatMap((name) => [0, 1, 2].map((r) => track(send(at(r), 'POST', '/container_registry', entry({ container_registry_name: name }))))));
  // 2. Plain $addToSet of distinct tags to the shared entries through all three replicas at once.
  const acknowledged = new Map<string, string[]>(shared.map((id) => [id, []]));
  const tagUpdates = shared.flatMap((id) =>
    [0, 1, 2].flatMap((r) =>
      Array.from({ length: UPDATES_PER_REPLICA_PER_ENTRY }, async (_, k) => {
        const tag = `r${r}-k${k}`;
        const o = await track(send(at(r + k), 'PUT', `/container_registry/${id}`, { $addToSet: { container_registry_tags: tag } }));
        if (o.status === 200) acknowledged.get(id)!.push(tag);
      }),
    ),
  );
  // 3. If-Match updates (after 2): nine clients read the version and try to change the entry; per base version one may win.
  const ifMatchWins: Array<{ id: string; base: string }> = [];
  const ifMatch = shared.map((id) => () =>
    Promise.all(Array.from({ length: 9 }, async (_, k) => {
      const read = await track(send(at(k), 'GET', `/container_registry/${id}`));
      const base = String(read.body.version);
      const o = await track(send(at(k + 1), 'PUT', `/container_registry/${id}`, { $set: { 'container_registry_metadata.owner': `writer-${k}` } }, { 'If-Match': `"${base}"` }));
      if (o.status === 200) ifMatchWins.push({ id, base });
    })),
  );
  // 4. Throw-away entries deleted through all three replicas at once: one 204 each, the rest 404.
  const doomed: string[] = [];
  for (let i = 0; i < 8; i++) {
    const o = await track(send(at(i), 'POST', '/container_registry', entry()));
    expect({ status: o.status, error: o.error }).toEqual({ status: 201, error: undefined });
    doomed.push(o.body.container_registry_id);
  }
  const deletes = Promise.all(doomed.flatMap((id) => [0, 1, 2].map((r) => track(send(at(r), 'DELETE', `/container_registry/${id}`)))));
  await Promise.all([...tagUpdates, deletes]);
  await Promise.all(ifMatch.map((run) => run()));
  const deleteOutcomes = await deletes;

  // Let a few sweeps run over the settled catalog.
  await sleep(7000);

  // 5. One probe budget for the three replicas: requests round-robin, sequential.
  const probes: Outcome[] = [];
  // A pause longer than RATE_LIMIT_SYNC_MS between them, so each replica has seen the others' counts (the
  // limiter's documented allowance is what replicas count between two syncs).
  for (let i = 0; i < PROBE_BUDGET * 3; i++) {
    probes.push(await track(send(at(i), 'GET', `/check_container_health/${shared[0]}`)));
    await sleep(200);
  }

  await Promise.all(replicas.map((r) => r.stop()));
  // No error in any log, besides the request lines of the 503s accepted below.
  expect(replicas.flatMap((r) => r.lines.filter((l) => l.level === 'error' && !(l.message === 'request' && l.status === 503)))).toEqual([]);

  process.stderr.write(`[replicas] requests ${outcomes.length} ${JSON.stringify(tally(outcomes, (o) => o.status || o.error!))}\n`);
  // An answer for every request: a 503 problem+json (an entry written too often, "try again") is one.
  expect(outcomes.filter((o) => o.status === 0 || (o.status >= 500 && !(o.status === 503 && o.contentType.startsWith('application/problem+json'))))).toEqual([]);

  // Unique names.
  for (const name of names) {
    const statuses = creates.filter((o) => o.status === 201 && o.body.container_registry_name === name).length;
    expect({ name, created: statuses }).toEqual({ name, created: 1 });
  }
  expect(tally(creates, (o) => o.status)).toEqual({ 201: names.length, 409: names.length * 2 });
  // Deletes: exactly one 204 per entry.
  expect(tally(deleteOutcomes, (o) => o.status)).toEqual({ 204: doomed.length, 404: doomed.length * 2 });

  // No lost update: every acknowledged tag is stored, and the version counts every acknowledged write.
  const verifier = (replicas = [...replicas, await startServiceProcess({ ...env, HEALTH_CRON: 'off' })])[3]!;
  let acknowledgedUpdates = 0;
  for (const id of shared) {
    const doc = (await send(verifier.url, 'GET', `/container_registry/${id}`)).body;
    const tags = acknowledged.get(id)!;
    const wins = ifMatchWins.filter((w) => w.id === id);
    acknowledgedUpdates += tags.length + wins.length;
    expect(tags.filter((t) => !doc.container_registry_tags.includes(t))).toEqual([]);
    expect(doc.version).toBe(1 + tags.length + wins.length);
    // If-Match: never two winners on one base version.
    expect(new Set(wins.map((w) => w.base)).size).toBe(wins.length);
  }
  process.stderr.write(`[replicas] acknowledged updates verified: ${acknowledgedUpdates} (If-Match winners ${ifMatchWins.length})\n`);

  // Sweeps: each registry probed at most once per sweep, and every probe belongs to a sweep.
  const sweeps = replicas.flatMap((r) => r.lines.filter((l) => l.message === 'health sweep finished'));
  const sweepIds = new Set(sweeps.map((l) => String(l.sweep_id)));
  const claimed = sweeps.reduce((n, l) => n + Number(l.claimed), 0);
  const probedBySweeps = loopback.total() - probes.filter((o) => o.status === 200).length;
  process.stderr.write(`[replicas] sweeps ${sweepIds.size}, claimed ${claimed}, loopback requests ${loopback.total()}\n`);
  expect(sweepIds.size).toBeGreaterThanOrEqual(2);
  for (const name of sweepNames) {
    expect(loopback.count(name)).toBeGreaterThanOrEqual(1);
    expect(loopback.count(name)).toBeLessThanOrEqual(sweepIds.size);
  }
  // Some claimed registries (default URL, nobody listening) are not on the loopback server.
  expect(probedBySweeps).toBeLessThanOrEqual(claimed);

  // The probe budget is shared: three separate budgets would have let all 36 through.
  const probeStatuses = tally(probes, (o) => o.status);
  process.stderr.write(`[replicas] probes ${JSON.stringify(probeStatuses)}\n`);
  expect(probeStatuses[429]).toBeGreaterThan(0);
  expect(probeStatuses[200] ?? 0).toBeLessThanOrEqual(PROBE_BUDGET + 3);
});
