/**
 * What `JSON.parse` loses without a word: an integer literal past 2^53 (`9007199254740993`) is
 * rounded to the nearest double. The request body's text is scanned for such literals, so the
 * server refuses them (`InvalidRequestError` naming the field) instead of recording another number.
 */
import { InvalidRequestError } from './errors.ts';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

type Frame = { kind: 'object'; key: string | null } | { kind: 'array'; index: number };

/**
 * The path (`state.big`, `metrics.loss`, `state.list.2`) of the first integer literal of `text`
 * (valid JSON) whose magnitude is past `Number.MAX_SAFE_INTEGER`, or null when there is none.
 * Literals with a fraction or an exponent are doubles by their own writing and pass.
 */
export function unsafeIntegerPath(text: string): string | null {
  const stack: Frame[] = [];
  let i = 0;
  const pathOf = () =>
    stack.map((f) => (f.kind === 'object' ? (f.key ?? '') : String(f.index))).filter((p) => p !== '');
  while (i < text.length) {
    const c = text[i]!;
    if (c === '{') {
      stack.push({ kind: 'object', key: null });
      i++;
    } else if (c === '[') {
      stack.push({ kind: 'array', index: 0 });
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      i++;
    } else if (c === ',') {
      const top = stack.at(-1);
      if (top?.kind === 'array') top.index++;
      else if (top?.kind === 'object') top.key = null;
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack.at(-1);
      // A string where an object awaits its key is the key (a value string follows a ':').
      if (top?.kind === 'object' && top.key === null) top.key = JSON.parse(text.slice(i, j + 1)) as string;
      i = j + 1;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      const token = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400))![0];
      if (!/[.eE]/.test(token)) {
        const value = BigInt(token);
        if (value > MAX_SAFE || value < -MAX_SAFE) return pathOf().join('.');
      }
      i += token.length;
    } else {
      i++;
    }
  }
  return null;
}

/** `InvalidRequestError` for the first unsafe integer of the body `text`, or null. */
export function unsafeIntegerError(text: string): InvalidRequestError | null {
  const at = unsafeIntegerPath(text);
  if (at === null) return null;
  return new InvalidRequestError(
    at === '' ? 'body' : `body.${at}`,
    'is an integer past 2^53 (9007199254740991), which JSON numbers cannot hold exactly; ' +
      'send it as a string, or as a float if rounding is acceptable',
  );
}
