/**
 * Qwen3's thinking block in generated text: `<think>\n…\n</think>\n\n answer`. Split as the Qwen3
 * chat template splits an assistant turn's content when it re-renders history
 * (reasoning = the text between <think> and </think> with its newlines trimmed, content = the
 * text after </think> without leading newlines), so an answer can be shown or sent on
 * (`reasoning_content` beside `content`, as OpenAI-compatible servers return it) and later fed
 * back unchanged. With thinking off the block is empty; a text without </think> is all content,
 * unless it opened <think> and was cut off (then it is all reasoning).
 */
export const THINK_OPEN = '<think>';
export const THINK_CLOSE = '</think>';

export interface SplitAnswer {
  /** The thinking, or undefined when the text has no thinking block. */
  reasoning: string | undefined;
  content: string;
}

const trimNewlines = (s: string) => s.replace(/^\n+|\n+$/g, '');

export function splitThinking(text: string): SplitAnswer {
  const close = text.indexOf(THINK_CLOSE);
  if (close < 0) {
    const open = text.indexOf(THINK_OPEN);
    if (open >= 0 && text.slice(0, open).trim() === '') return { reasoning: trimNewlines(text.slice(open + THINK_OPEN.length)), content: '' };
    return { reasoning: undefined, content: text };
  }
  const before = text.slice(0, close);
  const open = before.lastIndexOf(THINK_OPEN);
  const reasoning = trimNewlines(open >= 0 ? before.slice(open + THINK_OPEN.length) : before);
  return { reasoning, content: text.slice(close + THINK_CLOSE.length).replace(/^\n+/, '') };
}

export type ThinkingDelta = { kind: 'reasoning' | 'content'; text: string };

/**
 * The same split on streamed deltas: each delta comes back as reasoning or content pieces, the
 * tags removed. A stream whose first non-blank text is not `<think>` is all content (Qwen3 opens
 * its thinking with the tag; `splitThinking` also accepts a lone `</think>`). Text that might be the start of a tag is held until it is known (tags are single
 * tokens in Qwen3's vocabulary, so this rarely waits). Leading newlines of each part are dropped,
 * as `splitThinking` drops them; trailing newlines of the reasoning are kept (they are only known
 * to be trailing once </think> arrives).
 */
export class ThinkingSplitter {
  #state: 'start' | 'reasoning' | 'content' = 'start';
  #pending = '';
  #atPartStart = true;

  push(delta: string): ThinkingDelta[] {
    this.#pending += delta;
    const out: ThinkingDelta[] = [];
    for (;;) {
      if (this.#state === 'start') {
        const lead = this.#pending.replace(/^\s+/, '');
        if (lead.startsWith(THINK_OPEN)) {
          this.#pending = lead.slice(THINK_OPEN.length);
          this.enter('reasoning');
          continue;
        }
        if (THINK_OPEN.startsWith(lead)) return out; // could still become <think>
        this.enter('content');
        continue;
      }
      const marker = this.#state === 'reasoning' ? THINK_CLOSE : undefined;
      const at = marker ? this.#pending.indexOf(marker) : -1;
      if (marker && at >= 0) {
        this.emit(out, this.#pending.slice(0, at));
        this.#pending = this.#pending.slice(at + marker.length);
        this.enter('content');
        continue;
      }
      const hold = marker ? heldPrefix(this.#pending, marker) : 0;
      this.emit(out, this.#pending.slice(0, this.#pending.length - hold));
      this.#pending = this.#pending.slice(this.#pending.length - hold);
      return out;
    }
  }

  /** What is still held when the stream ends. */
  finish(): ThinkingDelta[] {
    const out: ThinkingDelta[] = [];
    if (this.#state === 'start') this.enter('content');
    this.emit(out, this.#pending);
    this.#pending = '';
    return out;
  }

  private enter(state: 'reasoning' | 'content'): void {
    this.#state = state;
    this.#atPartStart = true;
  }

  private emit(out: ThinkingDelta[], text: string): void {
    if (this.#atPartStart) {
      text = text.replace(/^\n+/, '');
      if (text) this.#atPartStart = false;
    }
    if (text) out.push({ kind: this.#state === 'reasoning' ? 'reasoning' : 'content', text });
  }
}

/** The length of the longest tail of `text` that is a proper prefix of `marker`. */
function heldPrefix(text: string, marker: string): number {
  for (let k = Math.min(marker.length - 1, text.length); k > 0; k--) if (marker.startsWith(text.slice(text.length - k))) return k;
  return 0;
}
