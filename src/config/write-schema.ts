/**
 * `npm run schema`: writes schema/ccload.schema.json from the zod schema, and the configuration
 * reference and error-code tables into README.md. All are generated, never edited by hand; a test
 * fails when any is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withConfigTable, withErrorTable } from './readme-tables.js';
import { configJsonSchema } from './schema.js';

/** The exact text of the committed schema file. */
export function schemaFileText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

/** The package root, from src/ or dist/src/. */
function packageRoot(): string {
  const here = fileURLToPath(import.meta.url);
  return here.includes('/dist/src/') ? here.split('/dist/src/')[0]! : here.split('/src/')[0]!;
}

/** Absolute path of schema/ccload.schema.json. */
export function schemaFilePath(): string {
  return `${packageRoot()}/schema/ccload.schema.json`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(schemaFilePath(), schemaFileText());
  const readme = `${packageRoot()}/README.md`;
  writeFileSync(readme, withErrorTable(withConfigTable(readFileSync(readme, 'utf8'))));
  console.log(`wrote ${schemaFilePath()} and the configuration reference and error codes in ${readme}`);
}
