/**
 * The retrieval-augmented prompt: the retrieved passages, numbered, go into the user message ahead
 * of the question, and a system message tells the model to answer from them and cite them by
 * number. This is the common "stuff" layout of RAG pipelines (LangChain's `create_stuff_documents_chain`,
 * LlamaIndex's `text_qa_template`): passages as context, question last, so the answer begins
 * right after the question. The question's own language is asked for, because the passages and
 * the question may be Chinese while the instructions are English.
 *
 *   system: You answer questions using only the numbered passages … cite them like [1] …
 *   user:   Passages:
 *           [1] (id a12) 稻瘟病是……
 *           [2] (id a7) ……
 *
 *           Question: 水稻稻瘟病怎么防治？
 */
import type { ChatMessage } from '../generate/types.js';

export const RAG_SYSTEM_PROMPT =
  'You answer questions using only the numbered passages the user gives. Cite the passages you use by their number, like [1] or [2][3]. ' +
  'If the passages do not contain the answer, say that you do not know. Answer in the language of the question.';

export interface PromptPassage {
  id: string;
  text: string;
}

export interface PromptOptions {
  /** Replaces RAG_SYSTEM_PROMPT. */
  systemPrompt?: string;
  /** Each passage is cut to this many characters (default 1200), so the prompt stays bounded. */
  maxPassageChars?: number;
}

/** The passages block of the user message. */
export function passagesBlock(passages: readonly PromptPassage[], maxChars = 1200): string {
  return passages
    .map((p, i) => {
      const text = p.text.length > maxChars ? `${p.text.slice(0, maxChars)}…` : p.text;
      return `[${i + 1}] (id ${p.id}) ${text.replace(/\s*\n\s*/g, ' ')}`;
    })
    .join('\n');
}

/**
 * The chat messages for a question and its passages. `history` (earlier turns of a chat, already
 * in OpenAI shape) goes between the system message and the new user message.
 */
export function ragMessages(question: string, passages: readonly PromptPassage[], opts: PromptOptions = {}, history: readonly ChatMessage[] = []): ChatMessage[] {
  const context = passages.length > 0 ? `Passages:\n${passagesBlock(passages, opts.maxPassageChars)}` : 'Passages: (none were found)';
  return [
    { role: 'system', content: opts.systemPrompt ?? RAG_SYSTEM_PROMPT },
    ...history,
    { role: 'user', content: `${context}\n\nQuestion: ${question}` },
  ];
}
