/**
 * The `$regex` dialect of filters: RE2's syntax and semantics (as Go's regexp, which FerretDB v1 runs), matched
 * by re2js, a linear-time engine in pure JavaScript, so no pattern can backtrack. Patterns RE2 cannot compile
 * (backreferences, lookaround, possessive quantifiers, ...) and patterns whose compiled program is too large are
 * refused with the reason. `$options` i, m, s are RE2's flags; x (PCRE's extended mode) is applied by stripping
 * whitespace and comments from the pattern first. Pure: no I/O.
 */
import { RE2JS } from 're2js';

/** Longest accepted pattern, in characters (the filter schema says the same). */
export const MAX_REGEX_LENGTH = 256;
/**
 * Largest compiled program accepted, in instructions (x{250} is 252; ordinary patterns are a few dozen). Compiling
 * takes up to about 10 µs per instruction, so the 16 patterns a filter may hold compile in tens of milliseconds.
 */
export const MAX_REGEX_PROGRAM = 256;
/**
 * The most work one match may take, as instructions × characters of the text. RE2 runs in time linear in both,
 * but its constant varies: measured here from a few ns per unit (a cached DFA) to about 250 ns (a pattern like
 * a.{120}b over random text, whose DFA keeps being rebuilt), so one match takes at most about 130 ms. A
 * 256-instruction pattern can search 2,000 characters (a URL), a 16-instruction one a 32 KB CA certificate.
 */
export const MAX_MATCH_COST = 1 << 19;
/** Most `$regex` operators in one filter (each is compiled and run for every entry a query looks at). */
export const MAX_REGEXES_PER_FILTER = 16;

export interface CompiledRegex {
  /** True when the pattern matches somewhere in `text`. */
  test(text: string): boolean;
  /** Instructions of the compiled program: the cost of matching one character. */
  readonly size: number;
}

/** Thrown for a pattern outside the dialect; the message says why, for a 400 naming the pattern's path. */
export class RegexRefused extends Error {}

const FLAG_BITS: Record<string, number> = { i: RE2JS.CASE_INSENSITIVE, m: RE2JS.MULTILINE, s: RE2JS.DOTALL };

/** Patterns compiled lately (validation compiles a filter's patterns, then its evaluation needs them again). */
const recent = new Map<string, CompiledRegex>();
const RECENT_MAX = 256;

/** Compiles `source` with MongoDB-style `options` (i, m, s, x), or throws RegexRefused saying why. */
export function compileRegex(source: string, options = ''): CompiledRegex {
  const key = `${options}\u0000${source}`;
  let re = recent.get(key);
  if (!re) {
    re = compile(source, options);
    if (recent.size >= RECENT_MAX) recent.clear();
    recent.set(key, re);
  }
  return re;
}

function compile(source: string, options: string): CompiledRegex {
  if (source.length > MAX_REGEX_LENGTH) throw new RegexRefused(`is longer than ${MAX_REGEX_LENGTH} characters`);
  const pattern = options.includes('x') ? stripExtended(source) : source;
  const estimate = estimatedSize(pattern);
  if (estimate > 4 * MAX_REGEX_PROGRAM) throw tooLarge(estimate);
  let flags = 0;
  for (const o of options) flags |= FLAG_BITS[o] ?? 0;
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern, flags);
  } catch (e) {
    throw new RegexRefused(`is not in the accepted dialect (RE2 syntax: no backreferences, lookaround or possessive quantifiers): ${(e as Error).message}`);
  }
  const size = re.programSize();
  if (size > MAX_REGEX_PROGRAM) throw tooLarge(size);
  return { test: (text) => re.test(text), size };
}

/** Why `source` (with `options`) is refused, or null when it is accepted. */
export function regexProblem(source: string, options = ''): string | null {
  try {
    compileRegex(source, options);
    return null;
  } catch (e) {
    if (e instanceof RegexRefused) return e.message;
    throw e;
  }
}

function tooLarge(size: number): RegexRefused {
  const about = Number.isFinite(size) ? `about ${size}` : 'far more';
  return new RegexRefused(`compiles to ${about} instructions, more than the ${MAX_REGEX_PROGRAM} accepted; use smaller repetition counts`);
}

/**
 * An upper estimate of the compiled program's size, computed without compiling: counted repetitions multiply
 * what they repeat ((a{10}){10} is about 100). It keeps a pattern that would take long to compile from being
 * compiled at all; the exact size is checked after compiling.
 */
function estimatedSize(p: string): number {
  const stack: number[] = [0];
  let last = 0;
  let i = 0;
  const add = (n: number) => {
    stack[stack.length - 1]! += n;
    last = n;
  };
  while (i < p.length) {
    const c = p[i]!;
    if (c === '\\') {
      const m = /^\\(?:[pP]\{[^}]*\}|x\{[^}]*\}|Q[^]*?(?:\\E|$)|[^])/.exec(p.slice(i));
      const len = m ? m[0].length : 1;
      add(p[i + 1] === 'Q' ? len : 1);
      i += len;
    } else if (c === '[') {
      const m = /^\[\^?\]?(?:\[:[^\]]*:\]|\\.|[^\]])*\]?/.exec(p.slice(i));
      add(1);
      i += m![0].length;
    } else if (c === '(') {
      stack.push(0);
      i += 1;
    } else if (c === ')') {
      const inner = stack.length > 1 ? stack.pop()! : 0;
      add(inner + 1);
      i += 1;
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(i));
      if (m) {
        const times = Math.max(Number(m[1]), m[3] ? Number(m[3]) : m[2] ? Number(m[1]) + 1 : Number(m[1]));
        stack[stack.length - 1]! += last * (times - 1) + times;
        last *= times;
        i += m[0].length;
      } else {
        add(1);
        i += 1;
      }
    } else {
      add(1);
      i += 1;
    }
    if (stack[stack.length - 1]! > 1e7) return Infinity;
  }
  return stack.reduce((a, b) => a + b, 0);
}

/** PCRE extended mode: unescaped whitespace outside classes and `#` to the end of the line are dropped. */
export function stripExtended(p: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '\\') {
      out += c + (p[i + 1] ?? '');
      i++;
    } else if (inClass) {
      if (c === ']') inClass = false;
      out += c;
    } else if (c === '[') {
      inClass = true;
      out += c;
    } else if (/\s/.test(c)) {
      continue;
    } else if (c === '#') {
      while (i < p.length && p[i] !== '\n') i++;
    } else out += c;
  }
  return out;
}
