/** Fixture paths and readers shared by the tokenizer tests (fixtures/README.md §3, §5, §6, §8, §10). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from '../helpers.js';

export const QWEN_TOKENIZER = join(FIXTURES, 'tokenizers/qwen3-embedding');
export const BERT_TOKENIZER = join(FIXTURES, 'tokenizers/bert-base-chinese');
export const QWEN_MODEL = join(FIXTURES, 'models/qwen3-tiny');
export const QWEN_MERGED_MODEL = join(FIXTURES, 'models/qwen3-tiny-lora-merged');
export const BERT_MODEL = join(FIXTURES, 'models/bert-tiny');
export const GOLDEN_COUNT = 312;

export interface QwenGolden {
  id: string;
  text: string;
  ids: number[];
  ids_embedding: number[];
  decoded: string;
}

export interface BertGolden {
  id: string;
  text: string;
  ids: number[];
  n_unk: number;
}

export function readJsonl<T>(path: string): T[] {
  return readFileSync(path, 'utf8').split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as T);
}

export const qwenGoldens = (): QwenGolden[] => readJsonl<QwenGolden>(join(FIXTURES, 'tokenizers/qwen3_ids.jsonl'));
export const bertGoldens = (): BertGolden[] => readJsonl<BertGolden>(join(FIXTURES, 'tokenizers/bert_ids.jsonl'));

export function readGoldenJson<T>(name: string): T {
  return JSON.parse(readFileSync(join(FIXTURES, 'goldens', name), 'utf8')) as T;
}

/**
 * The 2-D I64 tensors `names` of a safetensors golden, as rows of numbers (the format of
 * REFERENCE §8: u64 LE header length, JSON header, data; offsets relative to the data).
 */
export function readInt64Rows(file: string, names: string[]): { rows: Map<string, number[][]>; metadata: Record<string, string> } {
  const buf = readFileSync(join(FIXTURES, 'goldens', file));
  const headerLength = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  const dataStart = 8 + headerLength;
  const rows = new Map<string, number[][]>();
  for (const name of names) {
    const entry = header[name] as { dtype: string; shape: number[]; data_offsets: [number, number] } | undefined;
    if (!entry || entry.dtype !== 'I64' || entry.shape.length !== 2) throw new Error(`${file}: no 2-D I64 tensor ${name}`);
    const [n, l] = entry.shape as [number, number];
    const out: number[][] = [];
    for (let i = 0; i < n; i++) {
      const row: number[] = [];
      for (let j = 0; j < l; j++) row.push(Number(buf.readBigInt64LE(dataStart + entry.data_offsets[0] + 8 * (i * l + j))));
      out.push(row);
    }
    rows.set(name, out);
  }
  return { rows, metadata: (header.__metadata__ ?? {}) as Record<string, string> };
}
