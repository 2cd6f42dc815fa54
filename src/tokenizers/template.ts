/**
 * Reads which special tokens a `tokenizer.json` post-processor puts around a single sequence.
 * embtune adds them itself (rather than letting the post-processor run) so that truncation can
 * keep them: the content is cut, the template is not (see `batch.ts`).
 *
 * Qwen3-Embedding: `Sequence[ByteLevel, TemplateProcessing($A <|endoftext|>)]` → suffix [151643]
 * (REFERENCE §9.1 step 5, fixtures README §3). Base Qwen3 / Qwen3-Reranker: `ByteLevel` → none.
 * BERT: `TemplateProcessing([CLS] $A [SEP])` or `BertProcessing` → [101] … [102] (§9.2 step 4).
 */
import { isObject, type JsonObject } from './json.js';
import type { SpecialTokenTemplate } from './tokenizer.js';

type Template = { prefix: number[]; suffix: number[] };

export function readPostProcessor(processor: unknown, file: string): SpecialTokenTemplate {
  return read(processor, file);
}

function read(processor: unknown, file: string): Template {
  if (processor === null || processor === undefined) return { prefix: [], suffix: [] };
  if (!isObject(processor)) throw new Error(`${file}: post_processor must be an object`);
  switch (processor.type) {
    case 'ByteLevel':
      // Only fixes offsets; adds no token.
      return { prefix: [], suffix: [] };
    case 'TemplateProcessing':
      return readTemplateProcessing(processor, file);
    case 'BertProcessing':
    case 'RobertaProcessing': {
      const cls = pairId(processor.cls, file, 'cls');
      const sep = pairId(processor.sep, file, 'sep');
      return { prefix: [cls], suffix: [sep] };
    }
    case 'Sequence': {
      // Each processor wraps the output of the one before it.
      const list = processor.processors;
      if (!Array.isArray(list)) throw new Error(`${file}: post_processor Sequence needs a processors list`);
      const out: Template = { prefix: [], suffix: [] };
      for (const p of list) {
        const inner = read(p, file);
        out.prefix = [...inner.prefix, ...out.prefix];
        out.suffix = [...out.suffix, ...inner.suffix];
      }
      return out;
    }
    default:
      throw new Error(`${file}: post_processor type ${JSON.stringify(processor.type)} is not supported`);
  }
}

function pairId(value: unknown, file: string, what: string): number {
  // Serialised as [token, id].
  if (Array.isArray(value) && typeof value[1] === 'number') return value[1];
  throw new Error(`${file}: post_processor ${what} must be [token, id]`);
}

function readTemplateProcessing(processor: JsonObject, file: string): Template {
  const single = processor.single;
  const specials = processor.special_tokens;
  if (!Array.isArray(single)) throw new Error(`${file}: TemplateProcessing needs a "single" template`);
  const out: Template = { prefix: [], suffix: [] };
  let seenSequence = false;
  for (const piece of single) {
    if (isObject(piece) && isObject(piece.Sequence)) {
      if (seenSequence) throw new Error(`${file}: TemplateProcessing single template has two sequences`);
      seenSequence = true;
    } else if (isObject(piece) && isObject(piece.SpecialToken) && typeof piece.SpecialToken.id === 'string') {
      const name = piece.SpecialToken.id;
      const entry = isObject(specials) ? specials[name] : undefined;
      const ids = isObject(entry) ? entry.ids : undefined;
      if (!Array.isArray(ids) || !ids.every((x): x is number => typeof x === 'number')) {
        throw new Error(`${file}: TemplateProcessing special token ${JSON.stringify(name)} has no ids in special_tokens`);
      }
      (seenSequence ? out.suffix : out.prefix).push(...ids);
    } else {
      throw new Error(`${file}: TemplateProcessing piece ${JSON.stringify(piece)} is not understood`);
    }
  }
  if (!seenSequence) throw new Error(`${file}: TemplateProcessing single template has no $A sequence`);
  return out;
}
