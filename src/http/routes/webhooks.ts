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
import { json, op, problem, ref, type ApiPaths, type Json } from '../api-doc';

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

const webhookIdParam = { name: 'id', in: 'path', required: true, description: 'Webhook subscription id (UUID)', schema: { type: 'string' } };
/** A subscription as the API shows it; `withSecret` only in the answer to POST /webhooks. */
function webhookView(withSecret: boolean): Json {
  return {
    type: 'object',
    required: ['id', 'url', 'events', 'status', 'position', 'created_at', 'delivered', 'failed_attempts', 'last_error', ...(withSecret ? ['secret'] : [])],
    properties: {
      id: { type: 'string' },
      url: { type: 'string' },
      events: { type: 'array', items: { type: 'string' } },
      filter: ref('ContainerRegistryFilter'),
      status: { enum: ['active', 'failing', 'disabled'], description: '`failing`: no delivery succeeded for WEBHOOK_RETRY_FOR_S; `disabled`: the receiver answered 410. Both stop delivery until POST /webhooks/{id}/enable.' },
      status_reason: { type: 'string' },
      position: { type: 'integer', description: 'Every catalog change up to this revision was delivered.' },
      created_at: { type: 'string', format: 'date-time' },
      delivered: { type: 'integer' },
      failed_attempts: { type: 'integer' },
      last_error: { type: ['object', 'null'] },
      ...(withSecret ? { secret: { type: 'string', description: 'whsec_...: verify deliveries with it.' } } : {}),
    },
  };
}

/** Webhook subscriptions. (OpenAPI; assembled by src/openapi.ts) */
export const webhooksApi: ApiPaths = {
  '/webhooks': {
    post: op('webhooks', 'Subscribe a URL to catalog events (signed per Standard Webhooks); the secret is in this answer only', {
      operationId: 'createWebhook',
      requestBody: { required: true, content: { 'application/json': { schema: ref('WebhookSubscriptionRequest') } } },
      responses: {
        '201': json(webhookView(true), 'The subscription, with its secret (never shown again).', { Location: { description: 'URL of the subscription.', schema: { type: 'string' } } }),
        '400': problem('Invalid subscription (url, events, filter or secret named), or malformed JSON.'),
        '413': problem('Body too large.'),
        '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
      },
    }),
    get: op('webhooks', 'List webhook subscriptions', {
      operationId: 'listWebhooks',
      responses: { '200': json({ type: 'object', properties: { webhooks: { type: 'array', items: webhookView(false) } } }, 'Every subscription, oldest first.') },
    }),
  },
  '/webhooks/{id}': {
    parameters: [webhookIdParam],
    get: op('webhooks', 'One webhook subscription: status, position, delivery counts and the last error', {
      operationId: 'getWebhook',
      responses: { '200': json(webhookView(false), 'The subscription.'), '404': problem('No such subscription.') },
    }),
    delete: op('webhooks', 'Delete a webhook subscription (and its delivery log)', {
      operationId: 'deleteWebhook',
      responses: { '204': { description: 'Deleted.' }, '404': problem('No such subscription.') },
    }),
  },
  '/webhooks/{id}/enable': {
    parameters: [webhookIdParam],
    post: op('webhooks', 'Make a failing or disabled subscription active again; it resumes from its stored position (the events it missed come in order), or with from=now after the current revision', {
      operationId: 'enableWebhook',
      parameters: [{ name: 'from', in: 'query', required: false, description: '`now`: skip the events missed while the subscription was not active.', schema: { type: 'string', enum: ['now'] } }],
      responses: {
        '200': json(webhookView(false), 'The subscription, active.'),
        '400': problem('`from` is not `now`.'),
        '404': problem('No such subscription.'),
        '409': problem('The stored position is older than the retained history: some events can no longer be delivered (enable with from=now).'),
      },
    }),
  },
  '/webhooks/{id}/deliveries': {
    parameters: [webhookIdParam],
    get: op('webhooks', 'The last 100 delivery attempts of a subscription, newest first', {
      operationId: 'getWebhookDeliveries',
      responses: {
        '200': json(
          {
            type: 'object',
            properties: {
              deliveries: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    event_id: { type: 'string' },
                    type: { type: 'string' },
                    revision: { type: 'integer' },
                    attempt: { type: 'integer' },
                    http_status: { type: ['integer', 'null'] },
                    error: { type: ['string', 'null'] },
                    duration_ms: { type: 'integer' },
                    at: { type: 'string', format: 'date-time' },
                  },
                },
              },
            },
          },
          'Recent attempts.',
        ),
        '404': problem('No such subscription.'),
      },
    }),
  },
};
