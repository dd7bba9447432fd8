/**
 * Model-name globs: `*` matches any run of characters, `?` one character, everything else is
 * literal. Used by `channels[].models` and `pricing` keys.
 */

/** A compiled matcher for one pattern; exact names compare without a regex. */
export function compileGlob(pattern: string): (name: string) => boolean {
  if (!/[*?]/.test(pattern)) return (name) => name === pattern;
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  const re = new RegExp(`^${source}$`);
  return (name) => re.test(name);
}

/** True when the pattern contains a wildcard. */
export function isGlob(pattern: string): boolean {
  return /[*?]/.test(pattern);
}
