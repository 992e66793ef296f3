/**
 * The little TOML the pull configuration files need (TOML 1.0): basic strings with their escapes, and
 * comments that stay comments whatever text an entry's name holds.
 */

const ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r' };

/** A TOML basic string: `"..."` with `"`, `\` and control characters escaped. */
export function tomlString(s: string): string {
  return `"${s.replace(/["\\\u0000-\u001f\u007f]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

/** An array of basic strings: `["a", "b"]`. */
export function tomlArray(items: readonly string[]): string {
  return `[${items.map(tomlString).join(', ')}]`;
}

/** Text for a `#` comment: on one line, without the control characters TOML refuses in comments. */
export function commentText(s: string): string {
  return s.replace(/[\u0000-\u0008\u000a-\u001f\u007f\u0085\u2028\u2029]/g, ' ');
}
