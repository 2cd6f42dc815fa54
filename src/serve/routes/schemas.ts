/** JSON schemas shared by the routes (REFERENCE §15 request shapes). */

/** OpenAI `input` / TEI `inputs`: a text, texts, token ids, or lists of token ids. */
export const EMBED_INPUT = {
  description: 'must be a string, an array of strings, an array of token ids, or an array of arrays of token ids',
  anyOf: [
    { type: 'string' },
    { type: 'array', items: { type: 'string' } },
    { type: 'array', items: { type: 'integer', minimum: 0 } },
    { type: 'array', items: { type: 'array', items: { type: 'integer', minimum: 0 } } },
  ],
} as const;

export const TEXTS = {
  description: 'must be a string or an array of strings',
  anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
} as const;

/** TEI's `truncation_direction` (serde spells it `Left`/`Right`; lower case is accepted too). */
export const TRUNCATION_DIRECTION = { type: 'string', enum: ['Left', 'Right', 'left', 'right'] } as const;

export const PROMPT_NAME = { type: 'string' } as const;

export const DIMENSIONS = { type: 'integer', minimum: 1 } as const;

export type RawEmbedInput = string | string[] | number[] | number[][];

/** The inputs of a request as a list: one text, texts, one id list, or id lists. */
export function inputList(input: RawEmbedInput): (string | number[])[] {
  if (typeof input === 'string') return [input];
  if (input.length === 0) return [];
  if (typeof input[0] === 'number') return [input as number[]];
  return input as (string | number[])[];
}

export function side(direction: string | undefined): 'left' | 'right' {
  return direction?.toLowerCase() === 'left' ? 'left' : 'right';
}
