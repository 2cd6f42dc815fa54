/**
 * Training examples: one query, its positive, its hard negatives — read from the record shapes
 * ms-swift accepts for `--task_type embedding` (REFERENCE §3.1):
 *   ≤ 3.8 (the tutorial's): {query, response, rejected_response: [...]}, with the column aliases of
 *        ms-swift's AutoPreprocessor (query ← prompt|input|instruction|question|problem, response ←
 *        answer|output|targets|target|answer_key|answers|solution);
 *   ≥ 3.9: {messages, positive_messages, negative_messages} (a system message is prepended to the
 *        user text with one space, as `Qwen3EmbTemplate` does).
 */
export interface TrainExample {
  query: string;
  positive: string;
  negatives: string[];
}

/** Where a record came from, for error messages (`file:line`). */
export type RecordSource = string;

export class ExampleError extends Error {
  constructor(
    readonly source: RecordSource,
    reason: string,
  ) {
    super(`${source}: ${reason}`);
    this.name = 'ExampleError';
  }
}

const QUERY_ALIASES = ['query', 'prompt', 'input', 'instruction', 'question', 'problem'];
const RESPONSE_ALIASES = ['response', 'answer', 'output', 'targets', 'target', 'answer_key', 'answers', 'solution'];

/** The example a record describes; throws ExampleError naming the source and what is missing. */
export function exampleFromRecord(record: Record<string, unknown>, source: RecordSource): TrainExample {
  if ('messages' in record) return fromMessages(record, source);
  const query = firstString(record, QUERY_ALIASES);
  const positive = firstString(record, RESPONSE_ALIASES);
  if (query === undefined) throw new ExampleError(source, `no query: expected a string field among ${QUERY_ALIASES.join(', ')} (fields: ${fieldList(record)})`);
  if (positive === undefined) throw new ExampleError(source, `no positive: expected a string field among ${RESPONSE_ALIASES.join(', ')} (fields: ${fieldList(record)})`);
  return { query, positive, negatives: negativesOf(record.rejected_response, source, 'rejected_response') };
}

function fromMessages(record: Record<string, unknown>, source: RecordSource): TrainExample {
  const query = textOfMessages(record.messages, source, 'messages');
  const positives = record.positive_messages;
  if (!Array.isArray(positives) || positives.length === 0) {
    throw new ExampleError(source, "'positive_messages' must be a non-empty list of message lists (ms-swift ≥ 3.9 format)");
  }
  const positive = textOfMessages(positives[0], source, 'positive_messages[0]');
  const negativeLists = record.negative_messages ?? [];
  if (!Array.isArray(negativeLists)) throw new ExampleError(source, "'negative_messages' must be a list of message lists");
  const negatives = negativeLists.map((m, i) => textOfMessages(m, source, `negative_messages[${i}]`));
  return { query, positive, negatives };
}

/** The user text of a message list, with a system message prepended by one space (Qwen3EmbTemplate). */
function textOfMessages(messages: unknown, source: RecordSource, field: string): string {
  if (!Array.isArray(messages)) throw new ExampleError(source, `'${field}' must be a list of {role, content} messages`);
  let system: string | undefined;
  let user: string | undefined;
  for (const [i, m] of messages.entries()) {
    if (typeof m !== 'object' || m === null || typeof (m as { content?: unknown }).content !== 'string') {
      throw new ExampleError(source, `'${field}[${i}]' must be an object with a string 'content'`);
    }
    const { role, content } = m as { role?: unknown; content: string };
    if (role === 'system') system = content;
    else if (user === undefined) user = content;
  }
  if (user === undefined) throw new ExampleError(source, `'${field}' has no user/assistant message`);
  return system === undefined ? user : `${system} ${user}`;
}

function negativesOf(value: unknown, source: RecordSource, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value)) throw new ExampleError(source, `'${field}' must be a list of strings`);
  return value.map((v, i) => {
    if (typeof v !== 'string') throw new ExampleError(source, `'${field}[${i}]' must be a string, got ${JSON.stringify(v)?.slice(0, 40)}`);
    return v;
  });
}

function firstString(record: Record<string, unknown>, names: string[]): string | undefined {
  for (const name of names) {
    const v = record[name];
    if (typeof v === 'string') return v;
  }
  return undefined;
}

function fieldList(record: Record<string, unknown>): string {
  return Object.keys(record).slice(0, 10).join(', ') || 'none';
}
