/**
 * `npm run schema`: writes schema/ccload.schema.json from the zod schema. The file is generated,
 * never edited by hand; a test fails when it is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configJsonSchema } from './schema.js';

/** The exact text of the committed schema file. */
export function schemaFileText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

/** Absolute path of schema/ccload.schema.json, from src/ or dist/src/. */
export function schemaFilePath(): string {
  const here = fileURLToPath(import.meta.url);
  const root = here.includes('/dist/src/') ? here.split('/dist/src/')[0]! : here.split('/src/')[0]!;
  return `${root}/schema/ccload.schema.json`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(schemaFilePath(), schemaFileText());
  console.log(`wrote ${schemaFilePath()}`);
}
