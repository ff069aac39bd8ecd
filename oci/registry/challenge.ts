/**
 * WWW-Authenticate parsing (RFC 7235 challenges): `Basic realm="x"` and
 * `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`.
 * Several challenges may share one header (comma separated) or come in
 * several headers; scheme names are case-insensitive, parameter names are
 * lower-cased, quoted values are unescaped.
 */

export interface Challenge {
  /** Lower-case scheme: "basic", "bearer", ... */
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const SPACE = /[ \t]*/y;

function match(re: RegExp, text: string, pos: number): string | undefined {
  re.lastIndex = pos;
  const m = re.exec(text);
  return m ? m[0] : undefined;
}

/** Parse one or more WWW-Authenticate header values. Malformed tails are ignored. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) parseInto(value, out);
  return out;
}

function parseInto(text: string, out: Challenge[]): void {
  let pos = 0;
  let current: Challenge | undefined;
  const skipSpace = () => {
    pos += (match(SPACE, text, pos) ?? '').length;
  };
  while (pos < text.length) {
    skipSpace();
    if (text[pos] === ',') {
      pos++;
      continue;
    }
    const token = match(TOKEN, text, pos);
    if (token === undefined) return;
    const afterToken = pos + token.length;
    pos = afterToken;
    skipSpace();
    if (text[pos] === '=' && current !== undefined && text[pos + 1] !== '=') {
      pos++;
      skipSpace();
      let value: string;
      if (text[pos] === '"') {
        const parsed = readQuoted(text, pos);
        if (parsed === undefined) return;
        value = parsed.value;
        pos = parsed.end;
      } else {
        value = match(TOKEN, text, pos) ?? '';
        pos += value.length;
      }
      current.params[token.toLowerCase()] = value;
    } else {
      // A token not followed by "=" starts a new challenge (token68 forms are ignored).
      current = { scheme: token.toLowerCase(), params: {} };
      out.push(current);
      pos = afterToken;
    }
  }
}

function readQuoted(text: string, start: number): { value: string; end: number } | undefined {
  let value = '';
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) {
      value += text[++i];
    } else if (c === '"') {
      return { value, end: i + 1 };
    } else {
      value += c;
    }
  }
  return undefined;
}
