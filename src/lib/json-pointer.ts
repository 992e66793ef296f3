/** RFC 6901 JSON Pointer helpers, used to name the offending part of a request in errors. */
export function pointer(...segments: Array<string | number>): string {
  return segments.map((s) => '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

/** Pointer of a Mongo-style dotted path (`a.b.c` → `/a/b/c`); used for update paths given as keys. */
export function dottedToPointer(prefix: string, dotted: string): string {
  return prefix + pointer(dotted);
}
