/**
 * Code blocks of the README, for the tests that run them as documented: a README change that breaks
 * an example breaks its test.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from './cli.ts';

/**
 * The first fenced block of `language` under the README heading `heading` (the whole heading line,
 * e.g. `## From Python`), before the next heading of any level, whose code contains `containing`.
 */
export function readmeBlock(heading: string, language: string, containing = ''): string {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n${heading}\n`);
  if (start === -1) throw new Error(`README.md has no heading "${heading}"`);
  const rest = readme.slice(start + heading.length + 2);
  const section = rest.slice(0, nextHeading(rest));
  const fence = new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\`$`, 'gm');
  for (const match of section.matchAll(fence)) if (match[1]!.includes(containing)) return match[1]!;
  throw new Error(`README.md has no ${language} block containing "${containing}" under "${heading}"`);
}

/** Where the next heading starts: a `#` line outside code blocks (a shell comment in a block is none). */
function nextHeading(text: string): number | undefined {
  let offset = 0;
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    else if (!fenced && /^#{1,6} /.test(line)) return offset;
    offset += line.length + 1;
  }
  return undefined;
}
