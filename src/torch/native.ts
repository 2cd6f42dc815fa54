/**
 * The libtorch addon, loaded once. Its functions take and return opaque handles; everything
 * a user touches goes through `Tensor` (tensor.ts). Nothing here does math.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A tensor owned by JS: a number naming a slot of the native tensor table (tensor_table.h).
 * A disposed handle is refused by every op.
 */
export type NativeHandle = number & { readonly __brand: 'TensorHandle' };

type H = NativeHandle;
type Scalar = number | boolean;
type Opt<T> = T | undefined;

/** The caching CPU allocator's counters (native/src/cpu_allocator.cc). */
export interface AllocatorStats {
  /** Bytes in large blocks handed out and not yet freed. */
  liveBytes: number;
  /** Bytes in large blocks freed and kept for reuse. */
  cachedBytes: number;
  /** Large blocks mapped, live or cached. */
  blocks: number;
  /** Large requests served from the cache. */
  hits: number;
  /** Large requests that mapped a new block. */
  misses: number;
}

/** Every native function, with the argument order of ops.cc / addon.cc. */
export interface NativeTorch {
  // runtime
  version(): string;
  libtorchRoot(): string;
  compiledWithCuda(): boolean;
  cudaDeviceCount(): number;
  /** Per CUDA device, from the CUDA driver; throws where the driver cannot be loaded. */
  cudaDeviceProperties(): { name: string; totalMemory: number }[];
  parallelInfo(): string;
  getNumThreads(): number;
  setNumThreads(n: number): void;
  blasNumThreads(): number;
  manualSeed(seed: number | bigint): void;
  getRngState(device?: string): H;
  setRngState(state: H, device?: string): boolean;
  isGradEnabled(): boolean;
  /** Throws a non-std C++ exception (tests the wrapper's last-resort handler). */
  throwNonStdExceptionForTest(): boolean;
  setGradEnabled(enabled: boolean): void;
  /** Sets this thread's inference mode; returns the previous setting. */
  setInferenceMode(on: boolean): boolean;
  liveTensors(): number;
  reportedBytes(): number;
  heapBytes(): number;
  allocatorStats(): AllocatorStats | null;
  emptyCache(): void;
  dispose(h: H): boolean;
  isDisposed(h: H): boolean;
  reportExternal(h: H): void;
  fromBuffer(bytes: ArrayBufferView | ArrayBuffer, shape: number[], dtype: number): H;
  toBuffer(h: H): ArrayBuffer;
  dataView(h: H): ArrayBuffer;
  // creation
  empty(shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  // torch.distributed (distributed_ops.cc): one default process group per JS environment
  distIsAvailable(): boolean;
  distInit(method: 'tcp' | 'file', where: string, port: number, rank: number, worldSize: number, timeoutMs: number, device: string): void;
  distIsInitialized(): boolean;
  /** [rank, worldSize] */
  distInfo(): [number, number];
  distAllReduce(h: H, op: string): void;
  distAllGather(h: H): H[];
  distBroadcast(h: H, src: number): void;
  distBarrier(): void;
  distStoreAdd(key: string, delta: number): number;
  distDestroy(): boolean;
  zeros(shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  ones(shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  full(shape: number[], value: number | boolean, dtype: Opt<number>, device: Opt<string>): H;
  arange(start: number, end: number, step: number, dtype: Opt<number>, device: Opt<string>): H;
  randn(shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  rand(shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  randint(low: number, high: number, shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  randperm(n: number, dtype: Opt<number>, device: Opt<string>): H;
  eye(n: number, dtype: Opt<number>, device: Opt<string>): H;
  zerosLike(h: H): H;
  onesLike(h: H): H;
  // metadata and conversion
  shape(h: H): number[];
  dtype(h: H): number;
  device(h: H): string;
  numel(h: H): number;
  isContiguous(h: H): boolean;
  requiresGrad(h: H): boolean;
  isLeaf(h: H): boolean;
  item(h: H): number | boolean;
  to(h: H, dtype: Opt<number>, device: Opt<string>, nonBlocking: boolean, copy: boolean): H;
  clone(h: H): H;
  detach(h: H): H;
  contiguous(h: H): H;
  // elementwise
  add(a: H, b: H, alpha?: number): H;
  addScalar(a: H, b: Scalar, alpha?: number): H;
  sub(a: H, b: H, alpha?: number): H;
  subScalar(a: H, b: Scalar, alpha?: number): H;
  mul(a: H, b: H): H;
  mulScalar(a: H, b: Scalar): H;
  div(a: H, b: H): H;
  divScalar(a: H, b: Scalar): H;
  pow(a: H, b: H): H;
  powScalar(a: H, b: Scalar): H;
  eq(a: H, b: H): H;
  eqScalar(a: H, b: Scalar): H;
  ne(a: H, b: H): H;
  neScalar(a: H, b: Scalar): H;
  lt(a: H, b: H): H;
  ltScalar(a: H, b: Scalar): H;
  le(a: H, b: H): H;
  leScalar(a: H, b: Scalar): H;
  gt(a: H, b: H): H;
  gtScalar(a: H, b: Scalar): H;
  ge(a: H, b: H): H;
  geScalar(a: H, b: Scalar): H;
  maximum(a: H, b: H): H;
  maximumScalar(a: H, b: Scalar): H;
  minimum(a: H, b: H): H;
  minimumScalar(a: H, b: Scalar): H;
  logicalAnd(a: H, b: H): H;
  logicalOr(a: H, b: H): H;
  logicalNot(a: H): H;
  neg(a: H): H;
  abs(a: H): H;
  sign(a: H): H;
  sqrt(a: H): H;
  rsqrt(a: H): H;
  square(a: H): H;
  reciprocal(a: H): H;
  exp(a: H): H;
  log(a: H): H;
  log1p(a: H): H;
  erf(a: H): H;
  tanh(a: H): H;
  sigmoid(a: H): H;
  silu(a: H): H;
  relu(a: H): H;
  cos(a: H): H;
  sin(a: H): H;
  gelu(a: H, approximate: 'none' | 'tanh'): H;
  clamp(a: H, min: Opt<number>, max: Opt<number>): H;
  where(cond: H, a: H | Scalar, b: H | Scalar, aIsTensor: boolean, bIsTensor: boolean): H;
  maskedFill(a: H, mask: H, value: H): H;
  maskedFillScalar(a: H, mask: H, value: Scalar): H;
  tril(a: H, diagonal: number): H;
  triu(a: H, diagonal: number): H;
  // reductions
  sum(a: H, dims: Opt<number[]>, keepdim: boolean, dtype: Opt<number>): H;
  mean(a: H, dims: Opt<number[]>, keepdim: boolean, dtype: Opt<number>): H;
  amax(a: H): H;
  amin(a: H): H;
  maxDim(a: H, dim: number, keepdim: boolean): [H, H];
  minDim(a: H, dim: number, keepdim: boolean): [H, H];
  argmax(a: H, dim: Opt<number>, keepdim: boolean): H;
  argmin(a: H, dim: Opt<number>, keepdim: boolean): H;
  norm(a: H, p: number, dims: Opt<number[]>, keepdim: boolean): H;
  logsumexp(a: H, dims: number[], keepdim: boolean): H;
  cumsum(a: H, dim: number, dtype: Opt<number>): H;
  all(a: H): H;
  any(a: H): H;
  softmax(a: H, dim: number, dtype: Opt<number>): H;
  logSoftmax(a: H, dim: number, dtype: Opt<number>): H;
  topk(a: H, k: number, dim: number, largest: boolean, sorted: boolean): [H, H];
  sort(a: H, dim: number, descending: boolean, stable: boolean): [H, H];
  argsort(a: H, dim: number, descending: boolean, stable: boolean): H;
  // linear algebra and nn
  matmul(a: H, b: H): H;
  mm(a: H, b: H): H;
  mmOut(out: H, a: H, b: H): boolean;
  dropoutLinear(x: H, weight: H, p: number): H;
  topkHeapOffer(block: H, scores: H, indices: H, sizes: H, q0: number, c0: number): boolean;
  bmm(a: H, b: H): H;
  linear(x: H, weight: H, bias: Opt<H>): H;
  layerNorm(x: H, normalizedShape: number[], weight: Opt<H>, bias: Opt<H>, eps: number): H;
  embedding(weight: H, indices: H, paddingIdx: number): H;
  rmsNorm(x: H, weight: H, eps: number): H;
  rotaryEmbedding(x: H, cos: H, sin: H): H;
  dropout(x: H, p: number, train: boolean): H;
  crossEntropy(input: H, target: H, weight: Opt<H>, reduction: string, ignoreIndex: number, labelSmoothing: number): H;
  scaledDotProductAttention(q: H, k: H, v: H, mask: Opt<H>, dropoutP: number, isCausal: boolean, scale: Opt<number>, enableGqa: boolean): H;
  siluMul(gate: H, up: H): H;
  // indexing, joining, shapes
  indexSelect(a: H, dim: number, index: H): H;
  gather(a: H, dim: number, index: H): H;
  cat(list: H[], dim: number): H;
  stack(list: H[], dim: number): H;
  split(a: H, sizes: number | number[], dim: number): H[];
  chunk(a: H, chunks: number, dim: number): H[];
  narrow(a: H, dim: number, start: number, length: number): H;
  slice(a: H, dim: number, start: Opt<number>, end: Opt<number>, step: number): H;
  select(a: H, dim: number, index: number): H;
  reshape(a: H, shape: number[]): H;
  view(a: H, shape: number[]): H;
  transpose(a: H, d0: number, d1: number): H;
  permute(a: H, dims: number[]): H;
  unsqueeze(a: H, dim: number): H;
  squeeze(a: H, dim: Opt<number>): H;
  expand(a: H, shape: number[]): H;
  flatten(a: H, start: number, end: number): H;
  repeat(a: H, repeats: number[]): H;
  repeatInterleave(a: H, repeats: number, dim: Opt<number>): H;
  // in place
  add_(a: H, b: H, alpha?: number): void;
  addScalar_(a: H, b: Scalar, alpha?: number): void;
  sub_(a: H, b: H, alpha?: number): void;
  subScalar_(a: H, b: Scalar, alpha?: number): void;
  mul_(a: H, b: H): void;
  mulScalar_(a: H, b: Scalar): void;
  div_(a: H, b: H): void;
  divScalar_(a: H, b: Scalar): void;
  addcmul_(a: H, t1: H, t2: H, value: number): void;
  addcdiv_(a: H, t1: H, t2: H, value: number): void;
  copy_(a: H, src: H): void;
  zero_(a: H): void;
  fill_(a: H, value: number | boolean): void;
  sqrt_(a: H): void;
  clamp_(a: H, min: Opt<number>, max: Opt<number>): void;
  maskedFill_(a: H, mask: H, value: H): void;
  maskedFillScalar_(a: H, mask: H, value: Scalar): void;
  requiresGrad_(a: H, flag: boolean): void;
  uniform_(a: H, from: number, to: number): void;
  normal_(a: H, mean: number, std: number): void;
  // autograd
  backward(a: H, gradient: Opt<H>, retainGraph: Opt<boolean>, createGraph: boolean): void;
  grad(a: H): H | undefined;
  setGrad(a: H, grad: Opt<H>): void;
}

function addonPath(): string {
  if (process.env.EMBTUNE_ADDON) return resolve(process.env.EMBTUNE_ADDON);
  // dist/src/torch/native.js → <package root>/native/build/Release
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'native', 'build', 'Release', 'embtune_torch.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error(
    'embtune: the libtorch addon is not built (native/build/Release/embtune_torch.node is missing). ' +
      'Run `npm install` (or `npm run build:native`); it needs libtorch: `apt-get install -y libtorch-dev` on Debian/Ubuntu, or set LIBTORCH.',
  );
}

function load(): NativeTorch {
  const path = addonPath();
  try {
    return createRequire(import.meta.url)(path) as NativeTorch;
  } catch (err) {
    throw new Error(`embtune: cannot load the libtorch addon at ${path}: ${(err as Error).message}. Rebuild it with \`npm run build:native\`.`);
  }
}

export const native: NativeTorch = load();
