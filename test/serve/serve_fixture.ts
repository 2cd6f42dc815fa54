/** Shared by the serve tests: an in-process server on an ephemeral port, HTTP helpers, the CLI. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../src/serve/index.js';
import { DEFAULT_LIMITS, DEFAULT_WORKER_NICE, type ServeLimits, type ServeOptions } from '../../src/serve/options.js';
import { FIXTURES, ROOT } from '../helpers.js';

export const QWEN = join(FIXTURES, 'models/qwen3-tiny');
export const QWEN_LORA = join(FIXTURES, 'models/qwen3-tiny-lora');
export const BERT = join(FIXTURES, 'models/bert-tiny');
export const CLI = join(ROOT, 'dist/src/cli/main.js');
export const ENV = { ...process.env, EMBTUNE_NUM_THREADS: '1', HF_HUB_OFFLINE: '1' };

export interface TestServerOptions {
  model?: string;
  reranker?: string;
  adapters?: { name: string; dir: string }[];
  apiKeys?: string[];
  limits?: Partial<ServeLimits>;
}

export function serve(o: TestServerOptions): Promise<RunningServer> {
  const options: ServeOptions = {
    model: o.model ? { folder: o.model, id: o.model.split('/').pop()! } : undefined,
    reranker: o.reranker ? { folder: o.reranker, id: `${o.reranker.split('/').pop()!}-reranker` } : undefined,
    adapters: o.adapters ?? [],
    dtype: 'float32',
    device: 'cpu',
    threads: 1,
    workerNice: DEFAULT_WORKER_NICE,
    host: '127.0.0.1',
    port: 0,
    apiKeys: o.apiKeys ?? [],
    limits: { ...DEFAULT_LIMITS, ...o.limits },
  };
  return startServer(options, { version: 'test' });
}

export interface Answer {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of many shapes, asserted field by field
  text: string;
}

/** A request with a JSON body (or a raw string body), the answer parsed when it is JSON. */
export async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const raw = typeof body === 'string' ? body : body === undefined ? undefined : JSON.stringify(body);
  const res = await fetch(base + path, {
    method,
    headers: { ...(raw !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: raw,
  });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

export const post = (base: string, path: string, body: unknown, headers?: Record<string, string>) => call(base, 'POST', path, body, headers);

/** Runs `embtune …` as a child process (asynchronously, so several can run at once). */
export function embtune(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: ENV });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The float32 vectors of an OpenAI base64 embedding (little-endian). */
export function decodeBase64(text: string): Float32Array {
  const bytes = Buffer.from(text, 'base64');
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}
