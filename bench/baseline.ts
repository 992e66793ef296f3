/**
 * The bare baseline of the benchmark: a minimal Express 5 app doing the service's reads through the same
 * driver on the same database, with nothing else (no validation, logging, auth, rate limiting, metrics).
 * Env: MONGODB_URI, MONGODB_DB, PORT. Prints `listening <port>` once ready.
 */
import express from 'express';
import type { AddressInfo } from 'node:net';
import { MongoClient, type Document, type Sort } from 'mongodb';

async function main(): Promise<void> {
  const client = new MongoClient(process.env.MONGODB_URI!, { maxPoolSize: 50 });
  await client.connect();
  const registries = client.db(process.env.MONGODB_DB ?? 'registry_db').collection<Document>('container_registries');
  const app = express();
  app.get('/container_registry/:id', async (req, res) => {
    const doc = await registries.findOne({ _id: req.params.id as unknown as Document['_id'] });
    if (!doc) {
      res.status(404).end();
      return;
    }
    res.json(doc);
  });
  // Body: { filter, sort, limit } passed to find() as they are.
  app.post('/container_registries', express.json(), async (req, res) => {
    const { filter, sort, limit } = req.body as { filter: Document; sort: Sort; limit: number };
    res.json(await registries.find(filter, { sort, limit }).toArray());
  });
  const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
    process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
  });
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    void client.close().then(() => process.exit(0));
  });
}

main().catch((e: Error) => {
  process.stderr.write(`baseline: ${e.message}\n`);
  process.exit(1);
});
