/**
 * Which config paths hold secrets (the `x-secret` marks of the schema) and which may hold `${…}`
 * references (secrets, plus the `x-reference` marks), and the views that must never show a secret:
 * the fingerprint of a key, a URL with its userinfo and query masked, and the redacted YAML text.
 */
import { isMap, isScalar, isSeq, type Node, parseDocument } from 'yaml';
import { formatReference, holdsLiteral, parseReferences } from './references.js';
import { configJsonSchema } from './schema.js';
import { fingerprint, maskUrl } from './url-mask.js';

export { fingerprint, maskUrl, URL_MASK } from './url-mask.js';

/** A path segment pattern: a key, or `*` for any list index / record key. */
type Pattern = readonly string[];

type JsonSchema = {
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  'x-secret'?: boolean;
  'x-reference'?: boolean;
};

type Mark = 'x-secret' | 'x-reference';

function collect(schema: JsonSchema, mark: Mark, prefix: string[], out: Pattern[]): void {
  if (schema[mark]) out.push(prefix);
  for (const [key, sub] of Object.entries(schema.properties ?? {})) collect(sub, mark, [...prefix, key], out);
  if (schema.items) collect(schema.items, mark, [...prefix, '*'], out);
  if (typeof schema.additionalProperties === 'object')
    collect(schema.additionalProperties, mark, [...prefix, '*'], out);
  for (const sub of schema.anyOf ?? []) collect(sub, mark, prefix, out);
}

const cached = new Map<Mark, Pattern[]>();

function patterns(mark: Mark): readonly Pattern[] {
  let out = cached.get(mark);
  if (!out) {
    out = [];
    collect(configJsonSchema() as JsonSchema, mark, [], out);
    cached.set(mark, out);
  }
  return out;
}

function matches(list: readonly Pattern[], path: readonly (string | number)[]): boolean {
  return list.some(
    (p) => p.length === path.length && p.every((seg, i) => seg === '*' || seg === String(path[i])),
  );
}

/** Path patterns of every secret field, e.g. `channels.*.api_key`. */
export function secretPatterns(): readonly Pattern[] {
  return patterns('x-secret');
}

/** True when the value at `path` (keys and indices) is a secret. */
export function isSecretPath(path: readonly (string | number)[]): boolean {
  return matches(secretPatterns(), path);
}

/**
 * True when the value at `path` may hold `${…}` references: a secret field, or a field the schema
 * marks `x-reference` (a channel's `url`, `server.database`). Everywhere else a `${` is an error.
 */
export function isReferencePath(path: readonly (string | number)[]): boolean {
  return matches(secretPatterns(), path) || matches(patterns('x-reference'), path);
}

/** A human list of the fields that may hold references, for error messages. */
export function referenceFields(): string {
  const show = (p: Pattern) =>
    p
      .map((s) => (s === '*' ? '[]' : `.${s}`))
      .join('')
      .replace(/^\./, '')
      .replace(/\.\[\]/g, '[]');
  const secret = secretPatterns().map(show);
  return [...secret, ...patterns('x-reference').map(show)].join(', ');
}

/**
 * A secret field's text as it may be shown. References stay visible (they name a variable or a
 * file, not a value), but a default (`${NAME:-default}`) is itself a secret and shows as its
 * fingerprint, and so does any literal text around them: `${UNSET:-}sk-…` is a literal secret.
 */
export function redactSecretText(value: string): string {
  const segs = parseReferences(value);
  const literal = segs.some((s) => s.kind === 'text');
  const shown = segs.map((s) => (s.kind === 'text' ? fingerprint(s.text) : formatReference(s, fingerprint)));
  return literal ? `${shown.join('')} (redacted literal)` : shown.join('');
}

/** True when a secret's text holds a literal: any text besides references, or a reference with a default value. */
export function holdsLiteralSecret(value: string): boolean {
  return value !== '' && holdsLiteral(value);
}

/** True when the value at `path` is a URL field: a non-secret field that may hold references. */
function isUrlPath(path: readonly (string | number)[]): boolean {
  return !isSecretPath(path) && isReferencePath(path);
}

/**
 * The config text with every literal secret replaced by its fingerprint and every URL's userinfo
 * and query values masked. `${...}` references stay visible (they name a variable, not a value).
 * Comments and layout are kept.
 */
export function redactYaml(text: string): string {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) return redactBrokenYaml(text);
  let changed = false;
  const visit = (node: Node | null | undefined, path: (string | number)[]): void => {
    if (!node) return;
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        visit(pair.value as Node | null, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        visit(item as Node, [...path, i]);
      });
    } else if (isScalar(node) && isSecretPath(path)) {
      const value = node.value;
      if (typeof value === 'string' && holdsLiteralSecret(value)) {
        node.value = redactSecretText(value);
        changed = true;
      } else if (typeof value === 'number' || typeof value === 'bigint') {
        node.value = '… (redacted literal)';
        changed = true;
      }
    } else if (isScalar(node) && typeof node.value === 'string' && isUrlPath(path)) {
      const masked = maskUrl(node.value);
      if (masked !== node.value) {
        node.value = masked;
        changed = true;
      }
    }
  };
  visit(doc.contents as Node | null, []);
  return changed ? doc.toString({ lineWidth: 0, flowCollectionPadding: false }) : text;
}

/** Last path segments of the secret fields: scalar ones (`api_key`) and list ones (`keys`). */
function secretKeyNames(): { scalar: Set<string>; list: Set<string>; url: Set<string> } {
  const scalar = new Set<string>();
  const list = new Set<string>();
  for (const p of secretPatterns()) {
    if (p.at(-1) === '*') list.add(p.at(-2)!);
    else scalar.add(p.at(-1)!);
  }
  const url = new Set<string>();
  for (const p of patterns('x-reference')) if (!isSecretPath(p)) url.add(p.at(-1)!);
  return { scalar, list, url };
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A secret value as written on one line (quotes kept), shown redacted. */
function redactWritten(raw: string): string {
  const m = /^(["'])(.*)\1(\s*(?:#.*)?)$/.exec(raw.trim());
  if (m) return isSingleRef(m[2]!) ? `${m[1]}${redactSecretText(m[2]!)}${m[1]}` : '… (redacted literal)';
  const plain = raw.replace(/\s+#.*$/, '').trim();
  return isSingleRef(plain) ? redactSecretText(plain) : '… (redacted literal)';
}

function isSingleRef(s: string): boolean {
  return s !== '' && !holdsLiteral(s);
}

/** A URL value as written on one line (quotes kept), masked. */
function maskWritten(raw: string): string {
  const m = /^(\s*)(["']?)(.*?)(\2)(\s*(?:#.*)?)$/.exec(raw)!;
  return `${m[1]}${m[2]}${maskUrl(m[3]!)}${m[4]}${m[5]}`;
}

/**
 * Line-based redaction for a file that does not parse (it is shown with its error). Values of
 * secret keys (and items of secret lists) that are not exactly references are masked, and so is
 * every line that continues one — block scalars (`api_key: |`), a value on the next line, a
 * multi-line quoted or plain scalar, a multi-line flow list: any line indented deeper than the
 * key. URL values have their userinfo and query masked. Flow mappings on one line are covered too.
 */
function redactBrokenYaml(text: string): string {
  const names = secretKeyNames();
  const keyAlt = (set: Set<string>) => [...set].map(escapeRe).join('|');
  const scalarKey = new RegExp(`^(\\s*(?:-\\s+)?)(["']?)(${keyAlt(names.scalar)})\\2(\\s*:)(.*)$`);
  const listKey = new RegExp(`^(\\s*(?:-\\s+)?)(["']?)(${keyAlt(names.list)})\\2(\\s*:)(.*)$`);
  const urlKey = new RegExp(`^(\\s*(?:-\\s+)?)(["']?)(${keyAlt(names.url)})\\2(\\s*:)(.*)$`);
  const flowPair = new RegExp(
    `([{,]\\s*)(["']?)(${keyAlt(new Set([...names.scalar, ...names.list]))})\\2(\\s*:\\s*)(\\[[^\\]]*\\]|[^,}]*)`,
    'g',
  );
  // Lines deeper than `indent` (or list items at `indent` when `items`) continue a secret value.
  let within: { indent: number; items: boolean } | undefined;
  return text
    .split('\n')
    .map((line) => {
      const indent = line.search(/\S/);
      if (within && indent < 0) return line;
      if (
        within &&
        (indent > within.indent || (within.items && indent === within.indent && /^\s*-(\s|$)/.test(line)))
      ) {
        const item = /^(\s*-\s+)(.*)$/.exec(line);
        return item ? `${item[1]}${redactWritten(item[2]!)}` : `${line.slice(0, indent)}… (redacted)`;
      }
      within = undefined;
      const s = scalarKey.exec(line);
      if (s) {
        within = { indent: s[1]!.length, items: false };
        const value = s[5]!;
        return value.trim() === '' ? line : `${s[1]}${s[2]}${s[3]}${s[2]}${s[4]} ${redactWritten(value)}`;
      }
      const l = listKey.exec(line);
      if (l) {
        within = { indent: l[1]!.length, items: true };
        const value = l[5]!.trim();
        if (value === '') return line;
        const flow = /^\[(.*)\](\s*(?:#.*)?)$/.exec(value);
        const items = flow
          ? flow[1]!
              .split(',')
              .filter((x) => x.trim() !== '')
              .map((x) => redactWritten(x))
              .join(', ')
          : '… (redacted literal)';
        return `${l[1]}${l[2]}${l[3]}${l[2]}${l[4]} ${flow ? `[${items}]` : items}`;
      }
      const u = urlKey.exec(line);
      if (u) {
        within = { indent: u[1]!.length, items: false };
        return `${u[1]}${u[2]}${u[3]}${u[2]}${u[4]}${maskWritten(u[5]!)}`;
      }
      if (line.includes('{')) {
        return line.replace(
          flowPair,
          (_m, lead: string, q: string, key: string, colon: string, value: string) => {
            const shown = value.startsWith('[')
              ? `[${value
                  .slice(1, -1)
                  .split(',')
                  .filter((x) => x.trim() !== '')
                  .map((x) => redactWritten(x))
                  .join(', ')}]`
              : value.trim() === ''
                ? value
                : redactWritten(value);
            return `${lead}${q}${key}${q}${colon}${shown}`;
          },
        );
      }
      return line;
    })
    .join('\n');
}
