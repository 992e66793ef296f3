/**
 * GET /whoami: who the caller is to this service: its role, the non-secret id of its key, and what the role
 * may do. The status page asks it first, to know whether a key is needed (401) and whether to show writers'
 * buttons such as "check now"; scripts can use it to check a key.
 */
import { Router } from 'express';
import { PERMISSIONS, principalOf, roleCan, type Access, type Permission } from '../auth';
import { type ApiPaths, json, op } from '../api-doc';

export function whoamiRoutes(access: Access): Router {
  const r = Router();
  r.get('/whoami', access.can('read'), (_req, res) => {
    const who = principalOf(res)!;
    const permissions = Object.fromEntries((Object.keys(PERMISSIONS) as Permission[]).map((p) => [p, roleCan(who.role, p)]));
    res.json({ role: who.role, key_id: who.id, protected_mode: access.protectedMode, permissions });
  });
  return r;
}

/** Who the caller is. (OpenAPI; assembled by src/openapi.ts) */
export const whoamiApi: ApiPaths = {
  '/whoami': {
    get: op('read', 'The caller’s role and what it may do (the status page asks this first)', {
      operationId: 'whoami',
      responses: {
        '200': json(
          {
            type: 'object',
            required: ['role', 'key_id', 'protected_mode', 'permissions'],
            properties: {
              role: { enum: ['reader', 'writer', 'admin', 'puller'] },
              key_id: { type: 'string', description: 'Non-secret id of the key (first 16 hex digits of its SHA-256), or `loopback` in protected mode.' },
              protected_mode: { type: 'boolean', description: 'No API keys configured: loopback clients only, served as admin.' },
              permissions: { type: 'object', additionalProperties: { type: 'boolean' }, description: 'Each permission (read, write, probe, delete, webhooks, pull_credentials) and whether the role has it.' },
            },
          },
          'Who the caller is.',
        ),
      },
    }),
  },
};
