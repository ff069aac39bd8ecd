/**
 * containerd's filter expressions, parsed and matched (pure code).
 *
 *   filter    := selector ("," selector)*          all selectors must match
 *   selector  := fieldpath [operator value]        no operator: field is present
 *   fieldpath := field ("." field)*
 *   field     := [A-Za-z0-9_]+ | "double-quoted"
 *   operator  := "==" | "!=" | "~="                 ~= is a regular expression search
 *   value     := "double-quoted" | [^\s,/|][^\s,]* | /re/ | |re|   (the last two only after ~=)
 *
 * Whitespace between tokens is ignored. Quoted strings take Go escapes
 * (\" \\ \n \t \xHH \uHHHH ...). Several filter strings match when ANY of
 * them matches; no strings, or an empty one, match everything.
 *
 * Semantics follow containerd: `==` needs the field present, `!=` compares
 * the value (an absent field reads as ""), `~=` tests the value (absent: "").
 */
import { invalidArgument } from '../../common/errors';
import type { Info } from './types';

/** Longest filter string accepted (containerd's CLI never sends more than a few hundred bytes). */
export const MAX_FILTER_LENGTH = 4096;

/** A field's value, or undefined when the object has no such field. */
export type FieldGetter = (path: readonly string[]) => string | undefined;

export interface Filter {
  match(get: FieldGetter): boolean;
}

type Op = 'present' | '==' | '!=' | '~=';

interface Selector {
  readonly path: readonly string[];
  readonly op: Op;
  readonly value: string;
  readonly re?: RegExp;
}

function matchSelector(s: Selector, get: FieldGetter): boolean {
  const value = get(s.path);
  switch (s.op) {
    case 'present':
      return value !== undefined;
    case '==':
      return value !== undefined && value === s.value;
    case '!=':
      return (value ?? '') !== s.value;
    case '~=':
      return s.re !== undefined && s.re.test(value ?? '');
  }
}

const SIMPLE_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

class Parser {
  private pos = 0;

  constructor(private readonly input: string) {}

  parse(): Selector[] {
    const selectors = [this.selector()];
    for (;;) {
      this.skipSpace();
      if (this.pos >= this.input.length) return selectors;
      if (this.input[this.pos] !== ',') this.fail('expected "," or end of input');
      this.pos++;
      selectors.push(this.selector());
    }
  }

  private fail(msg: string): never {
    throw invalidArgument(`filter ${JSON.stringify(this.input)} at ${this.pos}: ${msg}`, { filter: this.input, offset: this.pos });
  }

  private skipSpace(): void {
    while (this.pos < this.input.length && /\s/.test(this.input[this.pos] as string)) this.pos++;
  }

  private selector(): Selector {
    const path = [this.field()];
    for (;;) {
      this.skipSpace();
      if (this.input[this.pos] !== '.') break;
      this.pos++;
      path.push(this.field());
    }
    this.skipSpace();
    if (this.pos >= this.input.length || this.input[this.pos] === ',') return { path, op: 'present', value: '' };
    const op = this.input.slice(this.pos, this.pos + 2);
    if (op !== '==' && op !== '!=' && op !== '~=') this.fail('expected an operator (==, != or ~=)');
    this.pos += 2;
    const value = this.value(op === '~=');
    if (op !== '~=') return { path, op, value };
    try {
      return { path, op, value, re: new RegExp(value) };
    } catch (err) {
      throw invalidArgument(`filter ${JSON.stringify(this.input)}: bad regular expression ${JSON.stringify(value)}`, { filter: this.input }, err);
    }
  }

  private field(): string {
    this.skipSpace();
    if (this.input[this.pos] === '"') return this.quoted('"');
    const m = /^[A-Za-z0-9_]+/.exec(this.input.slice(this.pos));
    if (m === null) this.fail('expected a field name');
    this.pos += m[0].length;
    return m[0];
  }

  private value(regex: boolean): string {
    this.skipSpace();
    const ch = this.input[this.pos];
    if (ch === '"') return this.quoted('"');
    if (ch === '/' || ch === '|') {
      // containerd reads these as quotes, allowed only around regular expressions.
      if (!regex) this.fail(`a value starting with ${ch} must be double-quoted`);
      return this.quoted(ch);
    }
    const m = /^[^\s,]+/.exec(this.input.slice(this.pos));
    if (m === null) this.fail('expected a value');
    this.pos += m[0].length;
    return m[0];
  }

  /** A string quoted with `q`; '"' takes Go escapes, '/' and '|' (regexes) only unescape the quote itself. */
  private quoted(q: string): string {
    this.pos++;
    let out = '';
    for (;;) {
      if (this.pos >= this.input.length) this.fail('unterminated quoted string');
      const c = this.input[this.pos++] as string;
      if (c === q) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.input[this.pos++];
      if (e === undefined) this.fail('unterminated escape');
      if (e === q) out += q;
      else if (q !== '"') out += `\\${e}`;
      else if (SIMPLE_ESCAPES[e] !== undefined) out += SIMPLE_ESCAPES[e];
      else if (e === 'x' || e === 'u' || e === 'U' || /[0-7]/.test(e)) out += this.numericEscape(e);
      else this.fail(`unknown escape \\${e}`);
    }
  }

  private numericEscape(e: string): string {
    const [digits, base] = e === 'x' ? [2, 16] : e === 'u' ? [4, 16] : e === 'U' ? [8, 16] : [3, 8];
    const start = e === 'x' || e === 'u' || e === 'U' ? this.pos : this.pos - 1;
    const text = this.input.slice(start, start + digits);
    const pattern = base === 16 ? /^[0-9A-Fa-f]+$/ : /^[0-7]+$/;
    if (text.length !== digits || !pattern.test(text)) this.fail(`bad escape \\${e}`);
    this.pos = start + digits;
    const code = parseInt(text, base);
    if (code > 0x10ffff) this.fail('escape out of range');
    return String.fromCodePoint(code);
  }
}

/** Parse filter strings; InvalidArgument on a syntax error. */
export function parseFilters(exprs: readonly string[]): Filter {
  const alternatives: Selector[][] = [];
  for (const expr of exprs) {
    if (expr.length > MAX_FILTER_LENGTH) throw invalidArgument(`filter longer than ${MAX_FILTER_LENGTH} characters`);
    if (expr.trim() === '') return { match: () => true };
    alternatives.push(new Parser(expr).parse());
  }
  if (alternatives.length === 0) return { match: () => true };
  return { match: (get) => alternatives.some((sels) => sels.every((s) => matchSelector(s, get))) };
}

/** The fields of a snapshot a filter can name: name, parent, kind, labels.<key>. */
export function snapshotFields(info: Info): FieldGetter {
  return (path) => {
    switch (path[0]) {
      case 'name':
        return info.name;
      case 'parent':
        return info.parent ?? '';
      case 'kind':
        return info.kind;
      case 'labels':
        return Object.prototype.hasOwnProperty.call(info.labels, path.slice(1).join('.')) ? info.labels[path.slice(1).join('.')] : undefined;
      default:
        return undefined;
    }
  };
}
