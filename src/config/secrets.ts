/**
 * Which config paths hold secrets, read from the `x-secret` marks of the schema, and the views
 * that must never show one: the fingerprint of a key and the redacted YAML text.
 */
import { isMap, isScalar, isSeq, type Node, parseDocument } from 'yaml';
import { configJsonSchema } from './schema.js';

/** A path segment pattern: a key, or `*` for any list index / record key. */
type Pattern = readonly string[];

type JsonSchema = {
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  'x-secret'?: boolean;
};

function collect(schema: JsonSchema, prefix: string[], out: Pattern[]): void {
  if (schema['x-secret']) out.push(prefix);
  for (const [key, sub] of Object.entries(schema.properties ?? {})) collect(sub, [...prefix, key], out);
  if (schema.items) collect(schema.items, [...prefix, '*'], out);
  if (typeof schema.additionalProperties === 'object')
    collect(schema.additionalProperties, [...prefix, '*'], out);
  for (const sub of schema.anyOf ?? []) collect(sub, prefix, out);
}

let cached: Pattern[] | undefined;

/** Path patterns of every secret field, e.g. `channels.*.api_key`. */
export function secretPatterns(): readonly Pattern[] {
  if (!cached) {
    cached = [];
    collect(configJsonSchema() as JsonSchema, [], cached);
  }
  return cached;
}

/** True when the value at `path` (keys and indices) is a secret. */
export function isSecretPath(path: readonly (string | number)[]): boolean {
  return secretPatterns().some(
    (p) => p.length === path.length && p.every((seg, i) => seg === '*' || seg === String(path[i])),
  );
}

/** How a secret may be shown: `…` and its last 4 characters (nothing of a short one). */
export function fingerprint(secret: string): string {
  return secret.length >= 8 ? `…${secret.slice(-4)}` : '…';
}

/**
 * A `${…}` reference as it may be shown: the variable or file it names stays visible, but a
 * default value (`${NAME:-default}`) on a secret is itself a secret and shows as its fingerprint.
 */
export function redactReference(value: string): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}/g, (_m, name: string, def: string) =>
    def === '' ? `\${${name}:-}` : `\${${name}:-${fingerprint(def)}}`,
  );
}

/** True when a secret's text holds a literal: no reference at all, or a reference with a default value. */
export function holdsLiteralSecret(value: string): boolean {
  if (value === '') return false;
  if (!value.includes('${')) return true;
  return /\$\{[A-Za-z_][A-Za-z0-9_]*:-[^}]+\}/.test(value);
}

/**
 * The config text with every literal secret replaced by its fingerprint. `${...}` references stay
 * visible (they name a variable, not a value). Comments and layout are kept.
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
      if (typeof value === 'string' && value !== '' && !value.includes('${')) {
        node.value = `${fingerprint(value)} (redacted literal)`;
        changed = true;
      } else if (typeof value === 'string' && holdsLiteralSecret(value)) {
        node.value = redactReference(value);
        changed = true;
      } else if (typeof value === 'number') {
        node.value = '… (redacted literal)';
        changed = true;
      }
    }
  };
  visit(doc.contents as Node | null, []);
  return changed ? doc.toString({ lineWidth: 0, flowCollectionPadding: false }) : text;
}

/**
 * Line-based redaction for a file that does not parse (it is shown with its error): any value of a
 * secret-looking key, or any list item under `keys:`, that is not a reference is masked.
 */
function redactBrokenYaml(text: string): string {
  const lines = text.split('\n');
  let inKeys = -1;
  return lines
    .map((line) => {
      const indent = line.search(/\S/);
      if (inKeys >= 0 && indent >= 0 && indent <= inKeys && !/^\s*-/.test(line)) inKeys = -1;
      const m = /^(\s*(?:-\s+)?(api_key|token|password|database_token)\s*:\s*)(\S.*)$/.exec(line);
      if (m && !m[3]!.includes('${')) return `${m[1]}… (redacted literal)`;
      if (m) return `${m[1]}${redactReference(m[3]!)}`;
      if (/^\s*(?:-\s+)?keys\s*:\s*$/.test(line)) inKeys = indent;
      const flow = /^(\s*(?:-\s+)?keys\s*:\s*)\[(.*)\](.*)$/.exec(line);
      if (flow) {
        const items = flow[2]!.split(',').map((raw) => {
          const v = raw.trim().replace(/^["']|["']$/g, '');
          return v.includes('${') ? ` "${redactReference(v)}"` : ' "… (redacted literal)"';
        });
        return `${flow[1]}[${items.join(',').trim()}]${flow[3]}`;
      }
      const item = /^(\s*-\s+)(\S.*)$/.exec(line);
      if (inKeys >= 0 && item && !item[2]!.includes('${')) return `${item[1]}… (redacted literal)`;
      if (inKeys >= 0 && item) return `${item[1]}${redactReference(item[2]!)}`;
      return line;
    })
    .join('\n');
}
