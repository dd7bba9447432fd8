/**
 * `${NAME}`, `${NAME:-default}` and `${file:PATH}` references inside ccload.yaml string values.
 * Interpolation runs on the loaded copy only; the YAML document keeps the reference, so write-back
 * never bakes a secret into the file. `$${` is a literal `${`.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

/** The result of expanding one string. */
export interface Expansion {
  readonly value: string;
  /** True when the string held at least one reference (so it is not a literal secret). */
  readonly referenced: boolean;
  /** Problems, one per bad reference: unset variable, unreadable file, syntax. */
  readonly errors: readonly string[];
}

const REF = /\$\$\{|\$\{([^}]*)\}?/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Expands every reference in `text`. `env` is the environment to read; `baseDir` resolves relative
 * `${file:...}` paths (the config file's folder).
 */
export function expand(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  baseDir: string,
): Expansion {
  if (!text.includes('${')) return { value: text, referenced: false, errors: [] };
  const errors: string[] = [];
  let referenced = false;
  const value = text.replace(REF, (match: string, body: string | undefined) => {
    if (match === '$${') return '${';
    if (!match.endsWith('}')) {
      errors.push(`unterminated reference "${match}": expected \${NAME}, \${NAME:-default} or \${file:PATH}`);
      return match;
    }
    referenced = true;
    const ref = body ?? '';
    if (ref.startsWith('file:')) {
      const path = ref.slice(5);
      if (!path) {
        errors.push('empty file reference: expected ${file:PATH}');
        return '';
      }
      const full = isAbsolute(path) ? path : resolve(baseDir, path);
      try {
        return readFileSync(full, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'error';
        errors.push(`cannot read ${full} for \${file:${path}}: ${code}`);
        return '';
      }
    }
    const sep = ref.indexOf(':-');
    const name = sep >= 0 ? ref.slice(0, sep) : ref;
    if (!NAME.test(name)) {
      errors.push(
        `bad reference "\${${ref}}": a variable name is letters, digits and _ (not starting with a digit)`,
      );
      return '';
    }
    const set = env[name];
    if (set !== undefined && (set !== '' || sep < 0)) return set;
    if (sep >= 0) return ref.slice(sep + 2);
    errors.push(`environment variable ${name} is not set (write \${${name}:-} to allow it to be empty)`);
    return '';
  });
  return { value, referenced, errors };
}
