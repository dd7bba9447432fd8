/** Small readers of the parsed OpenAI JSON the translation modules share. */

/** A plain JSON object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The reasoning text of a Chat Completions message or delta: `reasoning_content` (DeepSeek, vLLM)
 * or `reasoning` (OpenRouter, Ollama); '' when there is none.
 */
export function reasoningOf(o: Record<string, unknown>): string {
  const r = o['reasoning_content'];
  if (typeof r === 'string') return r;
  return typeof o['reasoning'] === 'string' ? o['reasoning'] : '';
}
