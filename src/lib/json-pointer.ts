/** RFC 6901 JSON Pointer helpers, used to name the offending part of a request in errors. */
export function pointer(...segments: Array<string | number>): string {
  return segments.map((s) => '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

