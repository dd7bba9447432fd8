/**
 * Phase 1 of a text edit: scalar values replaced in place through yaml's CST, byte-exact (only the
 * value changes; even the column of a trailing comment is kept).
 */
import { Composer, CST, isScalar, Parser, parse, type Scalar } from 'yaml';
import { channelMap } from './channel-nodes.js';
import type { FieldOp, OpValue, Plan } from './edit-plan.js';

/**
 * Applies the plan's scalar-over-scalar field ops byte-exactly with `CST.setScalarValue` and
 * returns the text and the plan of what is left. A value goes this way when the node in the file
 * is a plain or quoted scalar without an anchor (an anchored value may be shared by an alias,
 * which must keep the old value) and the new value is a string, number or boolean.
 */
export function applyScalarOps(text: string, p: Plan): { text: string; rest: Plan | undefined } {
  if (p.kind !== 'fields') return { text, rest: p };
  const tokens = [...new Parser().parse(text)];
  const doc = [...new Composer({ keepSourceTokens: true, uniqueKeys: true }).compose(tokens)][0]!;
  const map = channelMap(doc, p.index)!;
  const rest: FieldOp[] = [];
  let edited = false;
  for (const op of p.ops) {
    if ('remove' in op || !isPrimitive(op.value)) {
      rest.push(op);
      continue;
    }
    const node = map.get(op.key, true);
    if (
      !isScalar(node) ||
      node.anchor ||
      !node.srcToken ||
      !(node.type === 'PLAIN' || node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE')
    ) {
      rest.push(op);
      continue;
    }
    if (node.value === op.value) continue;
    setScalar(node.srcToken, op.value, node.type, map.flow === true);
    edited = true;
  }
  const out = edited ? tokens.map((t) => CST.stringify(t)).join('') : text;
  return { text: out, rest: rest.length > 0 ? { kind: 'fields', index: p.index, ops: rest } : undefined };
}

function isPrimitive(v: OpValue): v is string | number | boolean {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/**
 * Replaces a scalar token's value. Strings keep their quoting style when it can hold them; a plain
 * string that would read back as something else (a number, `true`, `a: b`, `x # y`) is
 * double-quoted. When a comment follows on the line, the padding before it is adjusted so the
 * comment stays in its column (aligned comments stay aligned).
 */
function setScalar(
  token: CST.Token,
  value: string | number | boolean,
  type: Scalar.Type,
  inFlow: boolean,
): void {
  const oldLength = 'source' in token && typeof token.source === 'string' ? token.source.length : 0;
  let source: string;
  let newType: Scalar.Type = 'PLAIN';
  if (typeof value === 'string') {
    source = value;
    newType = type === 'PLAIN' && !plainSafe(value, inFlow) ? 'QUOTE_DOUBLE' : type;
  } else {
    source = String(value);
  }
  CST.setScalarValue(token, source, { afterKey: true, inFlow, type: newType });
  const newLength = 'source' in token && typeof token.source === 'string' ? token.source.length : oldLength;
  const end = 'end' in token ? token.end : undefined;
  const space = end?.[0];
  if (space?.type === 'space' && end?.[1]?.type === 'comment' && newLength !== oldLength) {
    const width = Math.max(1, space.source.length - (newLength - oldLength));
    space.source = ' '.repeat(width);
  }
}

/** Whether `value` reads back as the same string when written as a plain scalar. */
function plainSafe(value: string, inFlow: boolean): boolean {
  if (value === '' || value !== value.trim() || /[\n\r\t]/.test(value)) return false;
  if (inFlow && /[,[\]{}]/.test(value)) return false;
  try {
    return parse(value) === value;
  } catch {
    return false;
  }
}
