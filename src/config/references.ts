/**
 * The one parser of the `${…}` reference syntax of ccload.yaml: `${NAME}`, `${NAME:-default}`,
 * `${file:PATH}`, and `$${` for a literal `${`. Expansion (loader), scope checks (loader), the
 * "is this exactly one reference" test (write-back) and redaction (pages, API) all read a string
 * through `parseReferences`, so they cannot disagree about what a reference is.
 *
 * Pure: no environment, no file system. `interpolate.ts` does the reading.
 */

/** One piece of a string: literal text or a reference. Offsets index the original string. */
export type Segment =
  | { readonly kind: 'text'; readonly text: string; readonly start: number; readonly end: number }
  | {
      readonly kind: 'env';
      readonly name: string;
      /** The text after `:-`; undefined for `${NAME}`. */
      readonly fallback: string | undefined;
      readonly start: number;
      readonly end: number;
    }
  | { readonly kind: 'file'; readonly path: string; readonly start: number; readonly end: number }
  | {
      readonly kind: 'invalid';
      readonly raw: string;
      readonly message: string;
      readonly start: number;
      readonly end: number;
    };

/** A reference segment (not literal text). */
export type ReferenceSegment = Exclude<Segment, { kind: 'text' }>;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Splits `text` into literal text and references. Adjacent literal text is merged, `$${` becomes
 * `${` in it. A `${` without a closing `}` or with a bad body is an `invalid` segment carrying the
 * message to show. Never throws.
 */
export function parseReferences(text: string): Segment[] {
  const out: Segment[] = [];
  let buf = '';
  let bufStart = 0;
  const flush = (end: number) => {
    if (buf !== '') out.push({ kind: 'text', text: buf, start: bufStart, end });
    buf = '';
  };
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      if (buf === '') bufStart = i;
      buf += '${';
      i += 3;
      continue;
    }
    if (!text.startsWith('${', i)) {
      if (buf === '') bufStart = i;
      buf += text[i];
      i += 1;
      continue;
    }
    flush(i);
    const close = text.indexOf('}', i + 2);
    if (close < 0) {
      const raw = text.slice(i);
      out.push({
        kind: 'invalid',
        raw,
        message: `unterminated reference "${raw}": expected \${NAME}, \${NAME:-default} or \${file:PATH}`,
        start: i,
        end: text.length,
      });
      i = text.length;
      break;
    }
    const body = text.slice(i + 2, close);
    const end = close + 1;
    if (body.startsWith('file:')) {
      const path = body.slice(5);
      out.push(
        path
          ? { kind: 'file', path, start: i, end }
          : {
              kind: 'invalid',
              raw: text.slice(i, end),
              message: 'empty file reference: expected ${file:PATH}',
              start: i,
              end,
            },
      );
    } else {
      const sep = body.indexOf(':-');
      const name = sep >= 0 ? body.slice(0, sep) : body;
      if (NAME.test(name)) {
        out.push({ kind: 'env', name, fallback: sep >= 0 ? body.slice(sep + 2) : undefined, start: i, end });
      } else {
        out.push({
          kind: 'invalid',
          raw: text.slice(i, end),
          message: `bad reference "\${${body}}": a variable name is letters, digits and _ (not starting with a digit)`,
          start: i,
          end,
        });
      }
    }
    i = end;
  }
  flush(text.length);
  return out;
}

/** True when `text` holds a `${` that is not the `$${` escape (a reference, or a broken one). */
export function hasReference(text: string): boolean {
  if (!text.includes('${')) return false;
  return parseReferences(text).some((s) => s.kind !== 'text');
}

/** True when `text` is exactly one valid reference and nothing else. */
export function isSingleReference(text: string): boolean {
  const segs = parseReferences(text);
  return segs.length === 1 && (segs[0]!.kind === 'env' || segs[0]!.kind === 'file');
}

/**
 * True when a secret's text holds something that is itself the secret rather than a pointer to it:
 * literal text anywhere (`sk-…`, `${UNSET:-}sk-…`, `sk-${X}`) or a non-empty `${NAME:-default}`.
 */
export function holdsLiteral(text: string): boolean {
  return parseReferences(text).some(
    (s) => s.kind === 'text' || (s.kind === 'env' && s.fallback !== undefined && s.fallback !== ''),
  );
}

/** A reference written back as source text (`${NAME}`, `${NAME:-x}`, `${file:P}`). */
export function formatReference(s: ReferenceSegment, fallback: (value: string) => string = (v) => v): string {
  switch (s.kind) {
    case 'env':
      return s.fallback === undefined
        ? `\${${s.name}}`
        : `\${${s.name}:-${s.fallback === '' ? '' : fallback(s.fallback)}}`;
    case 'file':
      return `\${file:${s.path}}`;
    case 'invalid':
      return s.raw;
  }
}

/** Literal text written back as source text (`${` escaped again as `$${`). */
export function formatText(text: string): string {
  return text.split('${').join('$${');
}
