/**
 * Webhook subscriptions (SPEC 16), role admin: POST/GET /webhooks, GET/DELETE /webhooks/:id,
 * POST /webhooks/:id/enable (a failing or disabled one resumes), GET /webhooks/:id/deliveries. The secret appears only in the 201 of POST.
 */
import { Router } from 'express';
import { subscriptionView, type WebhookService } from '../../events/service';
import type { Access } from '../auth';
import { InputError } from '../../errors';
import { single } from '../../lib/query-params';
import { jsonBody } from '../body';

export function webhookRoutes(deps: { webhooks: WebhookService; can: Access['can']; bodyLimit: number }): Router {
  const r = Router();
  const { webhooks, can } = deps;
  r.post('/webhooks', can('webhooks'), jsonBody(deps.bodyLimit), async (req, res) => {
    const created = await webhooks.create(req.body);
    res.status(201).location(`/webhooks/${created.id}`).json(created);
  });
  r.get('/webhooks', can('webhooks'), async (_req, res) => {
    res.json({ webhooks: await webhooks.list() });
  });
  r.get('/webhooks/:id', can('webhooks'), async (req, res) => {
    res.json(subscriptionView(await webhooks.get(String(req.params.id))));
  });
  r.post('/webhooks/:id/enable', can('webhooks'), async (req, res) => {
    const unknown = Object.keys(req.query).filter((k) => k !== 'from');
    if (unknown.length > 0) throw new InputError(`Unknown query parameters: ${unknown.join(', ')}.`, unknown.map((p) => ({ path: p, message: 'unknown query parameter; use from=now or nothing' })));
    res.json(subscriptionView(await webhooks.enable(String(req.params.id), single(req.query as Record<string, unknown>, 'from'))));
  });
  r.delete('/webhooks/:id', can('webhooks'), async (req, res) => {
    await webhooks.remove(String(req.params.id));
    res.status(204).end();
  });
  r.get('/webhooks/:id/deliveries', can('webhooks'), async (req, res) => {
    res.json({ deliveries: await webhooks.deliveries(String(req.params.id)) });
  });
  return r;
}
