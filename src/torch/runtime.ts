/** What libtorch this is and where it runs: version, devices, threads. */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { native, type AllocatorStats } from './native.js';

export function libtorchVersion(): string {
  return native.version();
}

/** The libtorch folder the addon was built against. */
export function libtorchPath(): string {
  return native.libtorchRoot();
}

export const cuda = {
  isAvailable(): boolean {
    return native.cudaDeviceCount() > 0;
  },
  deviceCount(): number {
    return native.cudaDeviceCount();
  },
  compiled(): boolean {
    return native.compiledWithCuda();
  },
};

/** libtorch's description of its parallel backend (at::get_parallel_info). */
export function parallelInfo(): string {
  return native.parallelInfo();
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/**
 * OpenBLAS's thread pool size, or undefined when the BLAS is not OpenBLAS. One for the whole
 * process, where libtorch's intra-op count (`getNumThreads`) is per thread under OpenMP.
 */
export function blasNumThreads(): number | undefined {
  const n = native.blasNumThreads();
  return n > 0 ? n : undefined;
}

/** Threads for libtorch's intra-op parallelism (and OpenBLAS's, which libtorch does not govern). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`setNumThreads(): n must be a positive integer, got ${n}`);
  native.setNumThreads(n);
}

/** The positive integer `value` holds (default: EMBTUNE_NUM_THREADS, the count a user sets), else undefined. */
export function threadsFromEnv(value = process.env.EMBTUNE_NUM_THREADS): number | undefined {
  const n = Number(value);
  return value !== undefined && Number.isInteger(n) && n > 0 ? n : undefined;
}

/** The default: EMBTUNE_NUM_THREADS, else the cores this process may use. */
export function defaultNumThreads(): number {
  return threadsFromEnv() ?? availableParallelism();
}

/** Whether this CPU computes bfloat16 natively (AVX512_BF16 / AMX); bf16 works everywhere, but slowly without. */
export function cpuHasBf16(): boolean {
  try {
    const flags = readFileSync('/proc/cpuinfo', 'utf8');
    return /\b(avx512_bf16|amx_bf16)\b/.test(flags);
  } catch {
    return false;
  }
}

/**
 * The BLAS library libtorch's matrix products run on, read from this process's mappings.
 * Debian's libtorch takes whatever provides libblas.so.3: the reference BLAS is ~30× slower
 * than OpenBLAS (`apt-get install libopenblas0-pthread`).
 */
export function blasLibrary(): { path: string; kind: 'openblas' | 'mkl' | 'reference' | 'unknown' } {
  let maps = '';
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return { path: 'unknown', kind: 'unknown' };
  }
  const paths = [...new Set(maps.split('\n').map((l) => l.split(/\s+/)[5] ?? '').filter((p) => /lib(open)?blas|libmkl/.test(p)))];
  const find = (re: RegExp) => paths.find((p) => re.test(p));
  const openblas = find(/openblas/);
  if (openblas) return { path: openblas, kind: 'openblas' };
  const mkl = find(/mkl/);
  if (mkl) return { path: mkl, kind: 'mkl' };
  const reference = find(/\/blas\/libblas\.so/);
  if (reference) return { path: reference, kind: 'reference' };
  return { path: paths[0] ?? 'built into libtorch', kind: 'unknown' };
}

/** Live native tensors owned by JS handles (for leak checks). */
export function liveTensors(): number {
  return native.liveTensors();
}

/** Bytes of native tensors currently reported to V8 as external memory (those outside scopes). */
export function externalBytes(): number {
  return native.reportedBytes();
}

/**
 * Bytes the C allocator has handed out and not had back (tensors, autograd's saved values, libtorch's
 * own state), or undefined where the C library cannot tell (glibc ≥ 2.33 can). Unlike RSS it leaves
 * out free memory the allocator keeps for reuse.
 */
export function heapBytes(): number | undefined {
  const n = native.heapBytes();
  return n < 0 ? undefined : n;
}

/**
 * The caching CPU allocator's counters (tensors of 1 MiB or more are mapped once and reused, like
 * PyTorch's CUDA caching allocator), or undefined when EMBTUNE_ALLOCATOR=malloc turned it off.
 */
export function allocatorStats(): AllocatorStats | undefined {
  return native.allocatorStats() ?? undefined;
}

/** Gives the CPU allocator's cached free blocks back to the system (`torch.cuda.empty_cache()` for the CPU). */
export function emptyCache(): void {
  native.emptyCache();
}

let configured = false;
/**
 * Applies the default thread count once, when the engine is first loaded — by the main thread
 * only. The setting is process-wide (libtorch's and OpenBLAS's pools): a worker thread loading
 * the engine later must not undo what another thread chose (the server's model worker sets
 * `--threads` itself; a reset to the default from another thread made it compute with the wrong
 * count, and OpenBLAS round differently, whenever that thread loaded last).
 */
export function configureDefaults(): void {
  if (configured || !isMainThread) return;
  configured = true;
  setNumThreads(defaultNumThreads());
}
