/**
 * Editing the config text (pure): the plan, then scalar values in place through the CST, then what
 * is structural through the Document merged back line by line, then a check that the new text holds
 * exactly the edited data.
 */
import { isDeepStrictEqual } from 'node:util';
import { parseDocument } from 'yaml';
import { maskUrl, URL_MASK } from '../url-mask.js';
import { type ChannelEdit, describeEdit } from './channel-edit.js';
import { type EditRefusal, expectedData, plan, refuse } from './edit-plan.js';
import { applyScalarOps } from './scalar-edit.js';
import { applyStructural } from './structural-edit.js';

/** The result of `editConfigText`. */
export type TextEditResult =
  | {
      readonly ok: true;
      readonly text: string;
      /** False when the edit changes nothing (e.g. disabling a disabled channel). */
      readonly changed: boolean;
      /** True when the minimal line merge failed and yaml's whole-file rendering was used. */
      readonly normalised: boolean;
    }
  | { readonly ok: false; readonly error: EditRefusal; readonly message: string };

/**
 * Applies `edit` to the config text and returns the new text, or why it was refused. Pure: no
 * file access, no validation by the loader (see `applyEdit`). Everything the edit does not touch
 * keeps its exact bytes.
 */
export function editConfigText(text: string, edit: ChannelEdit): TextEditResult {
  const { body, restore } = splitEncoding(text);
  const doc = parseDocument(body, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    return refuse('unparsable', `the file is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  }
  const fields = edit.action === 'add' ? edit.channel : edit.action === 'update' ? edit.changes : undefined;
  // The channel's URLs (`url`, and the outbound `proxy`) are shown masked: a masked copy sent back
  // would write `…` as a password.
  for (const key of ['url', 'proxy'] as const) {
    const url = fields?.[key];
    if (typeof url === 'string' && url.includes(URL_MASK)) {
      return refuse(
        'bad_request',
        `${key}: "${maskUrl(url)}" still holds a masked part (…): pages and the API show a URL's userinfo and query masked; give the full URL, or a \${…} reference for its secret part`,
      );
    }
  }
  const planned = plan(doc, edit);
  if ('ok' in planned) return planned;
  const before = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  const expected = expectedData(before, planned);
  if (isDeepStrictEqual(before, expected)) return { ok: true, text, changed: false, normalised: false };

  // Phase 1: scalar values in place, through the CST (byte-exact).
  const { text: afterScalars, rest } = applyScalarOps(body, planned);
  // Phase 2: what is left is structural: edit the Document and merge its rendering into the text.
  let out = afterScalars;
  let normalised = false;
  if (rest) {
    const merged = applyStructural(afterScalars, rest);
    out = merged.text;
    normalised = merged.normalised;
  }
  // The result must be exactly the edited data; anything else is a bug, never a silent write.
  const check = parseDocument(out, { uniqueKeys: true });
  if (check.errors.length > 0 || !isDeepStrictEqual(check.toJS({ maxAliasCount: 1000 }), expected)) {
    throw new Error(`write-back produced text that does not hold the edited data (${describeEdit(edit)})`);
  }
  return { ok: true, text: restore(out), changed: true, normalised };
}

/** Strips a BOM and CRLF line ends for editing; `restore` puts them back. */
export function splitEncoding(text: string): { body: string; restore: (s: string) => string } {
  const bom = text.startsWith('\uFEFF') ? '\uFEFF' : '';
  const noBom = bom ? text.slice(1) : text;
  const crlf = /\r\n/.test(noBom) && !/(^|[^\r])\n/.test(noBom);
  const body = crlf ? noBom.replace(/\r\n/g, '\n') : noBom;
  return { body, restore: (s) => bom + (crlf ? s.replace(/\n/g, '\r\n') : s) };
}
