/**
 * Splits raw text on added-token strings (`[CLS]`, `[SEP]`, `<|endoftext|>` …) before any
 * normalisation, as HF does first of all (REFERENCE §9.1 step 1; transformers' slow tokenizer
 * splits with its added-token trie the same way): at each position the longest added token
 * starting there wins, scanning left to right. Matching is exact (case-sensitive).
 */

export type Segment = { kind: 'text'; text: string } | { kind: 'token'; id: number; content: string };

export interface AddedToken {
  content: string;
  id: number;
}

export class AddedTokenSplitter {
  /** First UTF-16 unit → candidate tokens, longest first. */
  readonly #byFirst = new Map<number, AddedToken[]>();
  readonly #contents = new Map<string, number>();

  constructor(tokens: Iterable<AddedToken>) {
    for (const t of tokens) {
      if (t.content.length === 0) continue;
      this.#contents.set(t.content, t.id);
      const first = t.content.charCodeAt(0);
      const list = this.#byFirst.get(first) ?? [];
      list.push(t);
      this.#byFirst.set(first, list);
    }
    for (const list of this.#byFirst.values()) list.sort((a, b) => b.content.length - a.content.length);
  }

  get size(): number {
    return this.#contents.size;
  }

  has(content: string): boolean {
    return this.#contents.has(content);
  }

  split(text: string): Segment[] {
    const out: Segment[] = [];
    if (this.#byFirst.size === 0) {
      if (text.length > 0) out.push({ kind: 'text', text });
      return out;
    }
    let last = 0;
    let i = 0;
    while (i < text.length) {
      const candidates = this.#byFirst.get(text.charCodeAt(i));
      const match = candidates?.find((c) => text.startsWith(c.content, i));
      if (match) {
        if (i > last) out.push({ kind: 'text', text: text.slice(last, i) });
        out.push({ kind: 'token', id: match.id, content: match.content });
        i += match.content.length;
        last = i;
      } else {
        i++;
      }
    }
    if (last < text.length) out.push({ kind: 'text', text: text.slice(last) });
    return out;
  }
}
