/**
 * PUT bodies: parsed into a normalised set of operations (pure), and applied to a copy of an entry.
 * The caller validates the result as a whole before anything is written.
 */
import { InputError, type FieldError } from '../errors';
import { pointer } from '../lib/json-pointer';
import { readOnlyPaths, validateUpdate } from '../schemas';

export interface UpdateOps {
  set: Map<string, unknown>;
  unset: Set<string>;
  addToSet: string[];
  pull: string[];
  /** Where each path came from in the body, for error messages. */
  origin: Map<string, string>;
}

/** Paths a client may never write on update: the schema's readOnly ones, and the immutable id. */
const PROTECTED = [...readOnlyPaths, 'container_registry_id'];
const TAGS = 'container_registry_tags';

const covers = (parent: string, child: string) => child === parent || child.startsWith(parent + '.');

function tagList(arg: unknown): string[] {
  if (typeof arg === 'string') return [arg];
  const o = arg as { $each?: string[]; $in?: string[] };
  return o.$each ?? o.$in ?? [];
}

export function parseUpdate(body: unknown): UpdateOps {
  const u = validateUpdate(body) as Record<string, unknown>;
  const ops: UpdateOps = { set: new Map(), unset: new Set(), addToSet: [], pull: [], origin: new Map() };
  const isOperatorForm = Object.keys(u).every((k) => k.startsWith('$'));
  const setArg = (isOperatorForm ? u.$set : u) as Record<string, unknown> | undefined;
  for (const [p, v] of Object.entries(setArg ?? {})) {
    ops.set.set(p, v);
    ops.origin.set(p, isOperatorForm ? pointer('$set', p) : pointer(p));
  }
  for (const p of Object.keys((u.$unset as Record<string, unknown>) ?? {})) {
    ops.unset.add(p);
    ops.origin.set(p, pointer('$unset', p));
  }
  const add = (u.$addToSet as Record<string, unknown> | undefined)?.[TAGS];
  if (add !== undefined) ops.addToSet = tagList(add);
  const pull = (u.$pull as Record<string, unknown> | undefined)?.[TAGS];
  if (pull !== undefined) ops.pull = tagList(pull);

  const errors: FieldError[] = [];
  const written = [...ops.set.keys(), ...ops.unset];
  for (const p of written) {
    const ro = PROTECTED.find((r) => covers(r, p));
    if (ro) errors.push({ path: ops.origin.get(p)!, message: `${ro} is read-only` });
  }
  // A whole-object $set must not smuggle a read-only child in (e.g. container_registry_storage_info.observed).
  for (const [p, v] of ops.set) {
    for (const r of PROTECTED) {
      if (!r.startsWith(p + '.')) continue;
      const rest = r.slice(p.length + 1).split('.');
      let cur: unknown = v;
      for (const seg of rest) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined;
      if (cur !== undefined) errors.push({ path: ops.origin.get(p)! + pointer(...rest), message: `${r} is read-only` });
    }
  }
  const all = [...written, ...(ops.addToSet.length || add !== undefined ? [TAGS] : []), ...(pull !== undefined ? [TAGS] : [])];
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const a = all[i]!;
      const b = all[j]!;
      if (covers(a, b) || covers(b, a)) {
        errors.push({ path: ops.origin.get(b) ?? pointer(b), message: `conflicts with ${a}: a path may be changed by one operator only` });
      }
    }
  }
  if (errors.length > 0) throw new InputError(`The update is invalid: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`, errors);
  return ops;
}

function setPath(doc: Record<string, unknown>, path: string, value: unknown, origin: string): void {
  const segs = path.split('.');
  let cur: Record<string, unknown> = doc;
  for (let i = 0; i < segs.length - 1; i++) {
    const seg = segs[i]!;
    const next = Object.prototype.hasOwnProperty.call(cur, seg) ? cur[seg] : undefined;
    if (next === undefined) {
      cur[seg] = {};
    } else if (next === null || typeof next !== 'object' || Array.isArray(next)) {
      throw new InputError(`Cannot set ${path}: ${segs.slice(0, i + 1).join('.')} is not an object.`, [
        { path: origin, message: `${segs.slice(0, i + 1).join('.')} is not an object` },
      ]);
    }
    cur = cur[seg] as Record<string, unknown>;
  }
  cur[segs[segs.length - 1]!] = structuredClone(value);
}

function unsetPath(doc: Record<string, unknown>, path: string): void {
  const segs = path.split('.');
  let cur: unknown = doc;
  for (let i = 0; i < segs.length - 1; i++) {
    cur = cur && typeof cur === 'object' && !Array.isArray(cur) ? (cur as Record<string, unknown>)[segs[i]!] : undefined;
  }
  if (cur && typeof cur === 'object' && !Array.isArray(cur)) delete (cur as Record<string, unknown>)[segs[segs.length - 1]!];
}

/** A new document with the operations applied; `doc` is left untouched. */
export function applyUpdate(doc: Record<string, unknown>, ops: UpdateOps): Record<string, unknown> {
  const next = structuredClone(doc);
  for (const [p, v] of ops.set) setPath(next, p, v, ops.origin.get(p)!);
  for (const p of ops.unset) unsetPath(next, p);
  if (ops.addToSet.length > 0 || ops.pull.length > 0) {
    const current = next[TAGS];
    if (current !== undefined && !Array.isArray(current)) {
      throw new InputError(`${TAGS} is not an array.`, [{ path: pointer(TAGS), message: 'is not an array' }]);
    }
    let tags = [...((current as unknown[] | undefined) ?? [])];
    for (const t of ops.addToSet) if (!tags.includes(t)) tags.push(t);
    if (ops.pull.length > 0) tags = tags.filter((t) => !ops.pull.includes(t as string));
    next[TAGS] = tags;
  }
  return next;
}
