/**
 * One flush of the attempt log as plain data, and the statements that write it: the single place
 * where attempt INSERTs and their rollup upserts are built, used by both write paths of the
 * `LogWriter` (log-writer.ts):
 *   - a `Database` given directly (tests, memory and remote databases): the writer builds the
 *     statements on its own thread and runs them with `client.batch`;
 *   - the daemon's write thread (write-thread.ts): the writer posts only the `AttemptBatch` and the
 *     thread builds the statements and runs them on a raw connection (raw-writer.ts).
 *
 * The column values travel as ONE flat array, `ATTEMPT_WIDTH` values per row: measured for a
 * 500-row flush, V8's serializer (what `postMessage` uses) needs ≈180 µs + ≈420 µs to clone it,
 * against ≈235 µs + ≈500 µs for an array of row arrays. Built with `push`, not preallocated: a
 * holey array clones more than twice as slowly.
 */
import type { InStatement, InValue } from '@libsql/client';
import { ATTEMPT_COLUMNS, ATTEMPT_WIDTH } from './attempt.js';
import { rollupStatements } from './rollup.js';

/** One flush of attempt rows as plain, cloneable data. */
export interface AttemptBatch {
  /** `attemptToRow` of each record, concatenated: `ATTEMPT_WIDTH` values per row. */
  readonly values: InValue[];
  /** Rows per multi-row INSERT statement. */
  readonly rowsPerStatement: number;
  /** Also fold the rows into the rollup tables (`rollupStatements`), in the same transaction. */
  readonly rollups: boolean;
}

const INSERT_HEAD = `INSERT INTO attempts (${ATTEMPT_COLUMNS.join(', ')}) VALUES `;
const ROW_PLACEHOLDERS = `(${ATTEMPT_COLUMNS.map(() => '?').join(', ')})`;

/** The INSERT of `rows` rows, one text per row count (kept: a connection caches its statement). */
const insertSqlByRows = new Map<number, string>();
function insertSql(rows: number): string {
  let sql = insertSqlByRows.get(rows);
  if (sql === undefined) {
    sql = INSERT_HEAD + Array.from({ length: rows }, () => ROW_PLACEHOLDERS).join(', ');
    // Row counts are bounded by a writer's `rowsPerStatement`; the bound only guards odd callers.
    if (insertSqlByRows.size >= 1024) insertSqlByRows.clear();
    insertSqlByRows.set(rows, sql);
  }
  return sql;
}

/** What `attemptStatements` may be told. */
export interface AttemptStatementsHooks {
  /**
   * Called when building the rollups threw (a bug): the rows are then written without them, so
   * one bad flush cannot block the attempt log.
   */
  readonly onRollupError?: (err: unknown) => void;
  /** The rollup builder (default `rollupStatements`); tests pass one that throws. */
  readonly rollup?: (values: readonly InValue[]) => InStatement[];
}

/**
 * The statements of one batch, to run in one transaction: multi-row INSERTs of
 * `rowsPerStatement` rows, then (when `rollups`) the rollup upserts of the same values.
 */
export function attemptStatements(batch: AttemptBatch, hooks: AttemptStatementsHooks = {}): InStatement[] {
  const { values } = batch;
  if (values.length % ATTEMPT_WIDTH !== 0)
    throw new RangeError(`attempt values: ${values.length} is not a multiple of ${ATTEMPT_WIDTH}`);
  const rows = values.length / ATTEMPT_WIDTH;
  const per = Math.max(1, Math.floor(batch.rowsPerStatement));
  const stmts: InStatement[] = [];
  for (let i = 0; i < rows; i += per) {
    const end = Math.min(rows, i + per);
    stmts.push({ sql: insertSql(end - i), args: values.slice(i * ATTEMPT_WIDTH, end * ATTEMPT_WIDTH) });
  }
  if (batch.rollups) {
    try {
      stmts.push(...(hooks.rollup ?? rollupStatements)(values));
    } catch (err) {
      hooks.onRollupError?.(err);
    }
  }
  return stmts;
}
