/**
 * Shared by the mining tests: the goldens of fixtures/mining (README §4) and a precomputed-table
 * encoder that returns the fixture's fixed vectors by exact text, as the generator's model stub
 * did (README §1 "Model stub").
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MiningEncoder, MiningOptions, OutputFormat, SamplingStrategy, Semantics } from '../../src/mine/index.js';
import { FIXTURES } from '../helpers.js';

export const MINING = join(FIXTURES, 'mining');
export const EDGE = join(MINING, 'edge');

export interface CaseIndexEntry {
  tag: 'v5.1.2' | 'v6.0.0';
  case: string;
  file: string;
  params: Record<string, unknown>;
  num_rows?: number | null;
  error: { type: string; message: string } | null;
  random?: boolean;
}

export interface NearBoundary {
  column: 'Positive' | 'Negative' | 'Difference';
  statistic: string;
}

export interface GoldenCase {
  case: string;
  tag: string;
  stdout: string;
  warnings: string[];
  output?: { columns: string[]; num_rows: number; rows: Record<string, unknown>[] };
  error?: { type: string; message: string };
  check?: { near_rounding_boundary: NearBoundary[] };
}

export interface RandomInvariants {
  deterministic_stdout_lines: string[];
  positive_column_prefixes: string[];
  rows: { prompt: string; positive: string; eligible_negatives: string[]; expected_num_negatives: number }[];
}

/** A folder of goldens: dataset, optional extra corpus, vectors and the case index. */
export interface MiningFolder {
  root: string;
  rows: Record<string, unknown>[];
  columns: string[];
  corpus: string[] | undefined;
  encoder: MiningEncoder;
  index: CaseIndexEntry[];
}

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

function readJsonl(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

interface EmbeddingsFile {
  dim: number;
  queries: { text: string; embedding: number[] }[];
  documents: { text: string; embedding: number[] }[];
}

/** Vectors looked up by exact text; a text the table lacks is an error naming it. */
export function tableEncoder(file: string): MiningEncoder {
  const table = readJson<EmbeddingsFile>(file);
  const lookup = (entries: EmbeddingsFile['queries'], what: string) => {
    const byText = new Map(entries.map((e) => [e.text, Float32Array.from(e.embedding)]));
    return async (texts: readonly string[]) =>
      texts.map((text) => {
        const vector = byText.get(text);
        if (!vector) throw new Error(`${file}: no ${what} embedding for ${JSON.stringify(text)}`);
        return vector;
      });
  };
  return { name: 'fixture-table', encodeQueries: lookup(table.queries, 'query'), encodeDocuments: lookup(table.documents, 'document') };
}

export function loadFolder(root: string): MiningFolder {
  const rows = readJsonl(join(root, 'dataset.jsonl'));
  const corpusFile = join(root, 'corpus.json');
  const corpus = existsSync(corpusFile) ? readJson<string[]>(corpusFile) : undefined;
  return { root, rows, columns: Object.keys(rows[0]!), corpus, encoder: tableEncoder(join(root, 'embeddings.json')), index: readJson<CaseIndexEntry[]>(join(root, 'cases_index.json')) };
}

export function loadCase<T = GoldenCase>(folder: MiningFolder, entry: CaseIndexEntry): T {
  return readJson<T>(join(folder.root, entry.file));
}

export function semanticsOf(tag: string): Semantics {
  if (tag === 'v6.0.0') return 'v6';
  if (tag === 'v5.1.2') return 'v5';
  throw new Error(`unknown sentence-transformers tag ${tag}`);
}

function numberOrNull(value: unknown, name: string): number | null {
  if (value === null || typeof value === 'number') return value;
  throw new Error(`param ${name}: expected a number or null, got ${JSON.stringify(value)}`);
}

/**
 * The case's keyword arguments as MiningOptions. An unknown parameter fails the test, so a
 * golden with a parameter this mapping does not know cannot pass silently.
 */
export function optionsFor(folder: MiningFolder, entry: CaseIndexEntry): MiningOptions {
  const options: MiningOptions = { semantics: semanticsOf(entry.tag) };
  for (const [key, value] of Object.entries(entry.params)) {
    switch (key) {
      case 'dataset':
        break;
      case 'corpus':
        if (value !== null) options.corpus = folder.corpus;
        break;
      case 'anchor_column_name':
        options.anchorColumnName = value as string;
        break;
      case 'positive_column_name':
        options.positiveColumnName = value as string;
        break;
      case 'num_negatives':
        options.numNegatives = value as number;
        break;
      case 'range_min':
        options.rangeMin = value as number;
        break;
      case 'range_max':
        options.rangeMax = numberOrNull(value, key);
        break;
      case 'max_score':
        options.maxScore = numberOrNull(value, key);
        break;
      case 'min_score':
        options.minScore = numberOrNull(value, key);
        break;
      case 'absolute_margin':
        options.absoluteMargin = numberOrNull(value, key);
        break;
      case 'relative_margin':
        options.relativeMargin = numberOrNull(value, key);
        break;
      case 'sampling_strategy':
        options.samplingStrategy = value as SamplingStrategy;
        break;
      case 'include_positives':
        options.includePositives = value as boolean;
        break;
      case 'output_format':
        options.outputFormat = value as OutputFormat;
        break;
      case 'output_scores':
        options.outputScores = value as boolean;
        break;
      case 'use_faiss':
        options.useFaiss = value as boolean;
        break;
      case 'faiss_batch_size':
        options.faissBatchSize = value as number;
        break;
      default:
        throw new Error(`${entry.tag}/${entry.case}: parameter ${key} is not mapped to MiningOptions`);
    }
  }
  return options;
}

/** Lines of a captured stdout (each ends with \n). */
export function stdoutLines(stdout: string): string[] {
  const lines = stdout.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export interface Captured {
  lines: string[];
  warnings: string[];
}

/** print/warn sinks that record into `captured`. */
export function capture(): { captured: Captured; sinks: Pick<MiningOptions, 'print' | 'warn'> } {
  const captured: Captured = { lines: [], warnings: [] };
  return { captured, sinks: { print: (line) => captured.lines.push(line), warn: (message) => captured.warnings.push(message) } };
}
