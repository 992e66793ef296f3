/**
 * The README and the pages of docs/ hold together: every relative link (and image) points at a file that exists,
 * every `#anchor` at a heading of its page (GitHub's anchors), every page of docs/ is linked from the README, and
 * every page opens, under its title, with a sentence saying what it is for.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.join(__dirname, '..', '..');
const pages = ['README.md', ...readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const text = (page: string) => readFileSync(path.join(root, page), 'utf8');

/** The page without its fenced code blocks (a `# comment` in a shell block is no heading, a link there no link). */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '');
}

/** The anchors GitHub gives the headings of a page: lower case, punctuation dropped, spaces as dashes, -N for repeats. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const [, heading] of prose(markdown).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = heading!.trim().toLowerCase().replace(/[^\p{L}\p{N}\p{M} _-]/gu, '').replace(/ /g, '-');
    let slug = base;
    for (let n = 1; out.has(slug); n++) slug = `${base}-${n}`;
    out.add(slug);
  }
  return out;
}

/** Relative link targets of a page (external links and mail addresses left out). */
function links(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)].map(([, target]) => target!).filter((t) => !/^[a-z]+:/i.test(t));
}

test.each(pages)('When the links of %s are followed, then every file and every anchor exists', (page) => {
  const broken: string[] = [];
  for (const target of links(text(page))) {
    const [file, anchor] = target.split('#') as [string, string | undefined];
    const resolved = file ? path.join(path.dirname(page), file) : page;
    if (!existsSync(path.join(root, resolved))) broken.push(`${target}: no file ${resolved}`);
    else if (anchor !== undefined && !anchors(text(resolved)).has(anchor)) broken.push(`${target}: no heading #${anchor} in ${resolved}`);
  }
  expect(broken).toEqual([]);
});

test('When the README is read, then it links every page of docs/', () => {
  const linked = new Set(links(text('README.md')).map((t) => t.split('#')[0]));
  expect(pages.filter((p) => p !== 'README.md' && !linked.has(p))).toEqual([]);
});

test.each(pages.filter((p) => p !== 'README.md'))('When %s is opened, then a sentence under its title says what it is for', (page) => {
  const [title, , first] = text(page).split('\n');
  expect(title).toMatch(/^# \S/);
  expect(first).toMatch(/^[A-Z"`]/);
});
