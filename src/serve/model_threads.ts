/**
 * How many libtorch threads the model worker runs when `--threads` is not given. Not in
 * options.ts: it reads the engine's EMBTUNE_NUM_THREADS rule, and the tokenizer worker, which
 * imports options.ts, must load no module of the engine (test/serve/tokenizer_worker.test.ts).
 */
import { availableParallelism } from 'node:os';
import { threadsFromEnv } from '../torch/index.js';

/** Threads the server keeps busy beside the model worker's: the HTTP thread and the tokenizer worker. */
const SERVER_THREADS_BESIDE_MODEL = 2;

/**
 * The model worker's libtorch threads when `--threads` is not given: EMBTUNE_NUM_THREADS, else
 * the cores less the two the server keeps busy beside it, at least one. Giving libtorch every core
 * (the engine's default for batch jobs) makes its OpenMP team wait for a core behind the HTTP and
 * tokenizer threads at every parallel op: on 2 cores (bench/serve, qwen3-tiny, --threads 2) it
 * served 173 requests/s batched and 116 one at a time, against about 1,200 and 240 with one thread.
 */
export function defaultServeThreads(fromEnv = process.env.EMBTUNE_NUM_THREADS, cores = availableParallelism()): number {
  return threadsFromEnv(fromEnv) ?? Math.max(1, cores - SERVER_THREADS_BESIDE_MODEL);
}
