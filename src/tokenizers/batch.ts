/**
 * Special tokens, truncation and padding — the parts of HF's `__call__` / `encode` that do not
 * depend on the tokenization algorithm, as pure functions over id arrays.
 */
import type { BatchEncoding, PaddingSide, SpecialTokenTemplate, TokenIds } from './tokenizer.js';

export function checkLength(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
}

/**
 * `prefix + content + suffix`, with the content cut to its first tokens so that the whole fits
 * in `maxLength` when one is given. HF's `truncation=True` (side right) reserves room for the
 * specials the post-processor adds, so Qwen3-Embedding's appended `<|endoftext|>` stays last and
 * BERT's `[CLS] … [SEP]` stays around the content.
 */
export function applyTemplate(content: readonly number[], template: SpecialTokenTemplate | undefined, maxLength?: number): TokenIds {
  const prefix = template?.prefix ?? [];
  const suffix = template?.suffix ?? [];
  let keep = content.length;
  if (maxLength !== undefined) {
    checkLength('maxLength', maxLength);
    const specials = prefix.length + suffix.length;
    if (maxLength < specials) {
      throw new RangeError(`maxLength ${maxLength} leaves no room for the ${specials} special tokens this tokenizer adds`);
    }
    keep = Math.min(keep, maxLength - specials);
  }
  const out = new Array<number>(prefix.length + keep + suffix.length);
  let k = 0;
  for (const id of prefix) out[k++] = id;
  for (let i = 0; i < keep; i++) out[k++] = content[i]!;
  for (const id of suffix) out[k++] = id;
  return out;
}

/**
 * Pads rows to `length` (rows already as long or longer are left alone) on `side` with `padId`;
 * the attention mask is 1 on the original tokens and 0 on the padding. `length` undefined:
 * no padding, every mask all ones.
 */
export function padRows(rows: readonly TokenIds[], padId: number, side: PaddingSide, length?: number): BatchEncoding {
  const inputIds: TokenIds[] = [];
  const attentionMask: number[][] = [];
  for (const row of rows) {
    const pads = length === undefined ? 0 : Math.max(0, length - row.length);
    const ids = new Array<number>(row.length + pads);
    const mask = new Array<number>(row.length + pads);
    const start = side === 'left' ? pads : 0;
    for (let i = 0; i < ids.length; i++) {
      const real = i >= start && i < start + row.length;
      ids[i] = real ? row[i - start]! : padId;
      mask[i] = real ? 1 : 0;
    }
    inputIds.push(ids);
    attentionMask.push(mask);
  }
  return { inputIds, attentionMask };
}
