/**
 * WWW-Authenticate parsing (RFC 9110 section 11.6.1) for the schemes registries use: `Basic realm="..."` and
 * `Bearer realm="...",service="...",scope="..."`, with quoted strings, escaped quotes, commas inside quotes
 * and several challenges in one header.
 */

export interface Challenge {
  /** Lower-cased scheme: `basic`, `bearer`, ... */
  scheme: string;
  /** Parameters, names lower-cased; a null-prototype object (a registry's `constructor=` or `__proto__=` is just a name). */
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const SPACE = /[ \t]*/y;

/** All challenges of one or more WWW-Authenticate header values; unparseable text is skipped. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) parseOne(value, out);
  return out;
}

function parseOne(input: string, out: Challenge[]): void {
  let i = 0;
  let current: Challenge | null = null;
  const skipSpace = (): void => {
    SPACE.lastIndex = i;
    SPACE.exec(input);
    i = SPACE.lastIndex;
  };
  const token = (): string | null => {
    TOKEN.lastIndex = i;
    const m = TOKEN.exec(input);
    if (!m) return null;
    i = TOKEN.lastIndex;
    return m[0];
  };
  while (i < input.length) {
    skipSpace();
    if (input[i] === ',') {
      i++;
      continue;
    }
    const start = i;
    const name = token();
    if (name === null) {
      i++; // stray character: skip it
      continue;
    }
    skipSpace();
    if (input[i] === '=' && current) {
      // auth-param name=value (token68 after a scheme is also "=", but registries never send token68)
      i++;
      skipSpace();
      let value: string;
      if (input[i] === '"') {
        i++;
        let text = '';
        while (i < input.length && input[i] !== '"') {
          if (input[i] === '\\' && i + 1 < input.length) i++;
          text += input[i];
          i++;
        }
        i++; // closing quote
        value = text;
      } else {
        value = token() ?? '';
      }
      current.params[name.toLowerCase()] = value;
      continue;
    }
    if (start !== i && input[i] !== '=') {
      current = { scheme: name.toLowerCase(), params: Object.create(null) as Record<string, string> };
      out.push(current);
    }
  }
}

/** The challenge a probe answers: Bearer first, then Basic; null when neither is offered. */
export function pickChallenge(challenges: readonly Challenge[]): Challenge | null {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic') ?? null;
}

/** How the scheme is spelled in results. */
export function schemeName(challenge: Challenge): string {
  return challenge.scheme === 'bearer' ? 'Bearer' : challenge.scheme === 'basic' ? 'Basic' : challenge.scheme;
}
