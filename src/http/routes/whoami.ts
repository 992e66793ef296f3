/**
 * GET /whoami: who the caller is to this service: its role, the non-secret id of its key, and what the role
 * may do. The status page asks it first, to know whether a key is needed (401) and whether to show writers'
 * buttons such as "check now"; scripts can use it to check a key.
 */
import { Router } from 'express';
import { PERMISSIONS, principalOf, roleCan, type Access, type Permission } from '../auth';

export function whoamiRoutes(access: Access): Router {
  const r = Router();
  r.get('/whoami', access.can('read'), (_req, res) => {
    const who = principalOf(res)!;
    const permissions = Object.fromEntries((Object.keys(PERMISSIONS) as Permission[]).map((p) => [p, roleCan(who.role, p)]));
    res.json({ role: who.role, key_id: who.id, protected_mode: access.protectedMode, permissions });
  });
  return r;
}
