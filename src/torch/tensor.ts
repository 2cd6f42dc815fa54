/**
 * `Tensor`: a PyTorch tensor from TypeScript. Method names and arguments follow PyTorch
 * (`unsqueeze`, `masked_fill`, `log_softmax`, `keepdim`), so model code can be read line by
 * line beside the reference Python; only embtune's own plumbing is camelCase (`toTypedArray`,
 * `requiresGrad`). Every op runs in libtorch; a bad shape or dtype throws an Error that names
 * the op and its arguments' shapes.
 *
 * Memory: a Tensor owns native memory. Free it with `dispose()`, or make it inside `tidy()`.
 * Copies and views between JS and libtorch:
 *   - `fromTypedArray`/`tensor` COPY the JS data (the JS buffer may be reused or transferred).
 *   - `toTypedArray`/`tolist`/`item` COPY out.
 *   - `dataView` is ZERO-COPY: a typed array over the tensor's own storage (contiguous CPU
 *     tensors only); it keeps the storage alive until the array itself is collected, and it sees
 *     later in-place writes to the tensor.
 */
import { native, type NativeHandle } from './native.js';
import { type DType, type TypedArrayOf, dtypeCode, dtypeFromCode, typedArrayFor } from './dtype.js';
import { TENSOR, track, type Owned } from './scope.js';

export type Device = 'cpu' | `cuda` | `cuda:${number}`;
export type Scalar = number | boolean;
export type Operand = Tensor | Scalar;

/**
 * Frees the native tensor of a Tensor collected without dispose() — a backstop only, and only
 * for tensors outside scopes (a scope always frees its own). Registering every short-lived
 * tensor would cost V8 bookkeeping that grows with the op count. The same tensors have their
 * bytes reported to V8 as external memory, so that the GC runs when they pile up.
 */
const backstop = new FinalizationRegistry<NativeHandle>((handle) => native.dispose(handle));

function dims(dim: number | number[] | undefined): number[] | undefined {
  return dim === undefined ? undefined : Array.isArray(dim) ? dim : [dim];
}

export class Tensor implements Owned {
  readonly [TENSOR] = true as const;
  /** @internal the native handle; use the methods instead. */
  readonly handle: NativeHandle;
  #shape: number[] | undefined;

  /** @internal tensors are made by ops and creation functions, not by `new`. */
  constructor(handle: NativeHandle) {
    this.handle = handle;
    if (!track(this)) this.onUnscoped();
  }

  /** @internal */
  onUnscoped(): void {
    backstop.register(this, this.handle, this);
    native.reportExternal(this.handle);
  }

  // ------------------------------------------------------------------ lifetime
  dispose(): void {
    if (native.dispose(this.handle)) backstop.unregister(this);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  get isDisposed(): boolean {
    return native.isDisposed(this.handle);
  }

  // ------------------------------------------------------------------ metadata
  get shape(): number[] {
    this.#shape ??= native.shape(this.handle);
    return [...this.#shape];
  }
  size(dim?: number): number | number[] {
    const shape = this.shape;
    if (dim === undefined) return shape;
    const d = dim < 0 ? dim + shape.length : dim;
    if (d < 0 || d >= shape.length) throw new Error(`size(): dim ${dim} is out of range for a tensor of shape [${shape.join(', ')}]`);
    return shape[d]!;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get dtype(): DType {
    return dtypeFromCode(native.dtype(this.handle));
  }
  get device(): string {
    return native.device(this.handle);
  }
  numel(): number {
    return native.numel(this.handle);
  }
  is_contiguous(): boolean {
    return native.isContiguous(this.handle);
  }
  toString(): string {
    return this.isDisposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ------------------------------------------------------------------ data out
  /** A copy of the elements, in row-major order, as the dtype's typed array. */
  toTypedArray<D extends DType = DType>(): TypedArrayOf[D] {
    return typedArrayFor(this.dtype as D, native.toBuffer(this.handle));
  }
  /** A zero-copy typed array over the storage of a contiguous CPU tensor (see the file header). */
  dataView<D extends DType = DType>(): TypedArrayOf[D] {
    return typedArrayFor(this.dtype as D, native.dataView(this.handle));
  }
  item(): number;
  item(): number | boolean;
  item(): number | boolean {
    return native.item(this.handle);
  }
  /** Nested arrays of numbers (int64 as numbers, bool as booleans, half types decoded). */
  tolist(): unknown {
    const flat = this.dtype === 'bfloat16' || this.dtype === 'float16' ? this.to('float32').toTypedArray() : this.toTypedArray();
    const values: (number | boolean)[] = Array.from(flat as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v));
    const asBool = this.dtype === 'bool';
    const build = (shape: number[], offset: number): unknown => {
      if (shape.length === 0) return asBool ? values[offset] !== 0 : values[offset];
      const [n, ...rest] = shape;
      const stride = rest.reduce((a, b) => a * b, 1);
      return Array.from({ length: n! }, (_, i) => build(rest, offset + i * stride));
    };
    return build(this.shape, 0);
  }

  // ------------------------------------------------------------------ conversion
  to(target: DType | Device | { dtype?: DType; device?: Device | string; copy?: boolean }): Tensor {
    const opts = typeof target === 'string' ? (isDeviceName(target) ? { device: target } : { dtype: target as DType }) : target;
    return new Tensor(native.to(this.handle, opts.dtype === undefined ? undefined : dtypeCode(opts.dtype), opts.device, false, opts.copy ?? false));
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  bfloat16(): Tensor {
    return this.to('bfloat16');
  }
  half(): Tensor {
    return this.to('float16');
  }
  long(): Tensor {
    return this.to('int64');
  }
  int(): Tensor {
    return this.to('int32');
  }
  bool(): Tensor {
    return this.to('bool');
  }
  cpu(): Tensor {
    return this.to({ device: 'cpu' });
  }
  cuda(index = 0): Tensor {
    return this.to({ device: `cuda:${index}` });
  }
  clone(): Tensor {
    return new Tensor(native.clone(this.handle));
  }
  detach(): Tensor {
    return new Tensor(native.detach(this.handle));
  }
  contiguous(): Tensor {
    return new Tensor(native.contiguous(this.handle));
  }

  // ------------------------------------------------------------------ autograd
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  requires_grad_(flag = true): this {
    native.requiresGrad_(this.handle, flag);
    return this;
  }
  /** The accumulated gradient (a new Tensor sharing its storage), or undefined. */
  get grad(): Tensor | undefined {
    const g = native.grad(this.handle);
    return g === undefined ? undefined : new Tensor(g);
  }
  set grad(value: Tensor | undefined) {
    native.setGrad(this.handle, value?.handle);
  }
  backward(gradient?: Tensor, options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward(this.handle, gradient?.handle, options.retainGraph, options.createGraph ?? false);
  }

  // ------------------------------------------------------------------ elementwise
  add(other: Operand, alpha?: number): Tensor {
    return new Tensor(other instanceof Tensor ? native.add(this.handle, other.handle, alpha) : native.addScalar(this.handle, other, alpha));
  }
  sub(other: Operand, alpha?: number): Tensor {
    return new Tensor(other instanceof Tensor ? native.sub(this.handle, other.handle, alpha) : native.subScalar(this.handle, other, alpha));
  }
  mul(other: Operand): Tensor {
    return new Tensor(other instanceof Tensor ? native.mul(this.handle, other.handle) : native.mulScalar(this.handle, other));
  }
  div(other: Operand): Tensor {
    return new Tensor(other instanceof Tensor ? native.div(this.handle, other.handle) : native.divScalar(this.handle, other));
  }
  pow(exponent: Operand): Tensor {
    return new Tensor(exponent instanceof Tensor ? native.pow(this.handle, exponent.handle) : native.powScalar(this.handle, exponent));
  }
  eq(other: Operand): Tensor {
    return new Tensor(other instanceof Tensor ? native.eq(this.handle, other.handle) : native.eqScalar(this.handle, other));
  }
  ne(other: Operand): Tensor {
    return new Tensor(other instanceof Tensor ? native.ne(this.handle, other.handle) : native.neScalar(this.handle, other));
  }
  lt(other: Operand): Tensor {
    return new Tensor(other instanceof Tensor ? native.lt(this.handle, other.handle) : native.ltScalar(this.handle, other));
  }
  le(other: Operand): Tensor {
    return new Tensor(other instanceof Tensor ? native.le(this.handle, other.handle) : native.leScalar(this.handle, other));
  }
  gt(other: Operand): Tensor {
    return new Tensor(other instanceof Tensor ? native.gt(this.handle, other.handle) : native.gtScalar(this.handle, other));
  }
  ge(other: Operand): Tensor {
    return new Tensor(other instanceof Tensor ? native.ge(this.handle, other.handle) : native.geScalar(this.handle, other));
  }
  maximum(other: Operand): Tensor {
    return new Tensor(other instanceof Tensor ? native.maximum(this.handle, other.handle) : native.maximumScalar(this.handle, other));
  }
  minimum(other: Operand): Tensor {
    return new Tensor(other instanceof Tensor ? native.minimum(this.handle, other.handle) : native.minimumScalar(this.handle, other));
  }
  logical_and(other: Tensor): Tensor {
    return new Tensor(native.logicalAnd(this.handle, other.handle));
  }
  logical_or(other: Tensor): Tensor {
    return new Tensor(native.logicalOr(this.handle, other.handle));
  }
  logical_not(): Tensor {
    return new Tensor(native.logicalNot(this.handle));
  }
  neg(): Tensor {
    return new Tensor(native.neg(this.handle));
  }
  abs(): Tensor {
    return new Tensor(native.abs(this.handle));
  }
  sign(): Tensor {
    return new Tensor(native.sign(this.handle));
  }
  sqrt(): Tensor {
    return new Tensor(native.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return new Tensor(native.rsqrt(this.handle));
  }
  square(): Tensor {
    return new Tensor(native.square(this.handle));
  }
  reciprocal(): Tensor {
    return new Tensor(native.reciprocal(this.handle));
  }
  exp(): Tensor {
    return new Tensor(native.exp(this.handle));
  }
  log(): Tensor {
    return new Tensor(native.log(this.handle));
  }
  log1p(): Tensor {
    return new Tensor(native.log1p(this.handle));
  }
  erf(): Tensor {
    return new Tensor(native.erf(this.handle));
  }
  tanh(): Tensor {
    return new Tensor(native.tanh(this.handle));
  }
  sigmoid(): Tensor {
    return new Tensor(native.sigmoid(this.handle));
  }
  relu(): Tensor {
    return new Tensor(native.relu(this.handle));
  }
  cos(): Tensor {
    return new Tensor(native.cos(this.handle));
  }
  sin(): Tensor {
    return new Tensor(native.sin(this.handle));
  }
  clamp(min?: number, max?: number): Tensor {
    if (min === undefined && max === undefined) throw new Error('clamp(): at least one of min or max must be given');
    return new Tensor(native.clamp(this.handle, min, max));
  }
  clamp_min(min: number): Tensor {
    return this.clamp(min, undefined);
  }
  clamp_max(max: number): Tensor {
    return this.clamp(undefined, max);
  }
  masked_fill(mask: Tensor, value: Operand): Tensor {
    return new Tensor(value instanceof Tensor ? native.maskedFill(this.handle, mask.handle, value.handle) : native.maskedFillScalar(this.handle, mask.handle, value));
  }
  tril(diagonal = 0): Tensor {
    return new Tensor(native.tril(this.handle, diagonal));
  }
  triu(diagonal = 0): Tensor {
    return new Tensor(native.triu(this.handle, diagonal));
  }

  // ------------------------------------------------------------------ reductions
  sum(dim?: number | number[], keepdim = false, dtype?: DType): Tensor {
    return new Tensor(native.sum(this.handle, dims(dim), keepdim, dtype && dtypeCode(dtype)));
  }
  mean(dim?: number | number[], keepdim = false, dtype?: DType): Tensor {
    return new Tensor(native.mean(this.handle, dims(dim), keepdim, dtype && dtypeCode(dtype)));
  }
  /** max() over everything, like `torch.max(x)`. */
  max(): Tensor;
  /** max over `dim`: [values, indices], like `torch.max(x, dim)`. */
  max(dim: number, keepdim?: boolean): [Tensor, Tensor];
  max(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    if (dim === undefined) return new Tensor(native.amax(this.handle));
    const [values, indices] = native.maxDim(this.handle, dim, keepdim);
    return [new Tensor(values), new Tensor(indices)];
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): [Tensor, Tensor];
  min(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    if (dim === undefined) return new Tensor(native.amin(this.handle));
    const [values, indices] = native.minDim(this.handle, dim, keepdim);
    return [new Tensor(values), new Tensor(indices)];
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmax(this.handle, dim, keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmin(this.handle, dim, keepdim));
  }
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    return new Tensor(native.norm(this.handle, p, dims(dim), keepdim));
  }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return new Tensor(native.logsumexp(this.handle, dims(dim)!, keepdim));
  }
  cumsum(dim: number, dtype?: DType): Tensor {
    return new Tensor(native.cumsum(this.handle, dim, dtype && dtypeCode(dtype)));
  }
  all(): Tensor {
    return new Tensor(native.all(this.handle));
  }
  any(): Tensor {
    return new Tensor(native.any(this.handle));
  }
  softmax(dim: number, dtype?: DType): Tensor {
    return new Tensor(native.softmax(this.handle, dim, dtype && dtypeCode(dtype)));
  }
  log_softmax(dim: number, dtype?: DType): Tensor {
    return new Tensor(native.logSoftmax(this.handle, dim, dtype && dtypeCode(dtype)));
  }
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] {
    const [values, indices] = native.topk(this.handle, k, dim, largest, sorted);
    return [new Tensor(values), new Tensor(indices)];
  }
  sort(dim = -1, descending = false, stable = false): [Tensor, Tensor] {
    const [values, indices] = native.sort(this.handle, dim, descending, stable);
    return [new Tensor(values), new Tensor(indices)];
  }
  argsort(dim = -1, descending = false, stable = false): Tensor {
    return new Tensor(native.argsort(this.handle, dim, descending, stable));
  }

  // ------------------------------------------------------------------ linear algebra
  matmul(other: Tensor): Tensor {
    return new Tensor(native.matmul(this.handle, other.handle));
  }
  mm(other: Tensor): Tensor {
    return new Tensor(native.mm(this.handle, other.handle));
  }
  bmm(other: Tensor): Tensor {
    return new Tensor(native.bmm(this.handle, other.handle));
  }

  // ------------------------------------------------------------------ indexing and shapes
  index_select(dim: number, index: Tensor): Tensor {
    return new Tensor(native.indexSelect(this.handle, dim, index.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(native.gather(this.handle, dim, index.handle));
  }
  split(splitSize: number | number[], dim = 0): Tensor[] {
    return native.split(this.handle, splitSize, dim).map((x) => new Tensor(x));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return native.chunk(this.handle, chunks, dim).map((x) => new Tensor(x));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(native.narrow(this.handle, dim, start, length));
  }
  /** `x[..., start:end:step]` along `dim` (a view). */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return new Tensor(native.slice(this.handle, dim, start, end, step));
  }
  /** `x[..., index]` along `dim`, removing that dimension (a view). */
  select(dim: number, index: number): Tensor {
    return new Tensor(native.select(this.handle, dim, index));
  }
  reshape(...shape: number[] | [number[]]): Tensor {
    return new Tensor(native.reshape(this.handle, flatShape(shape)));
  }
  view(...shape: number[] | [number[]]): Tensor {
    return new Tensor(native.view(this.handle, flatShape(shape)));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(native.transpose(this.handle, dim0, dim1));
  }
  /** The transpose of a matrix, `x.T` for 2-D tensors. */
  get T(): Tensor {
    return this.transpose(0, 1);
  }
  permute(...dimsOrder: number[] | [number[]]): Tensor {
    return new Tensor(native.permute(this.handle, flatShape(dimsOrder)));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(native.unsqueeze(this.handle, dim));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(native.squeeze(this.handle, dim));
  }
  expand(...shape: number[] | [number[]]): Tensor {
    return new Tensor(native.expand(this.handle, flatShape(shape)));
  }
  expand_as(other: Tensor): Tensor {
    return this.expand(other.shape);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(native.flatten(this.handle, startDim, endDim));
  }
  repeat(...repeats: number[] | [number[]]): Tensor {
    return new Tensor(native.repeat(this.handle, flatShape(repeats)));
  }
  repeat_interleave(repeats: number, dim?: number): Tensor {
    return new Tensor(native.repeatInterleave(this.handle, repeats, dim));
  }

  // ------------------------------------------------------------------ in place (return this)
  add_(other: Operand, alpha?: number): this {
    if (other instanceof Tensor) native.add_(this.handle, other.handle, alpha);
    else native.addScalar_(this.handle, other, alpha);
    return this;
  }
  sub_(other: Operand, alpha?: number): this {
    if (other instanceof Tensor) native.sub_(this.handle, other.handle, alpha);
    else native.subScalar_(this.handle, other, alpha);
    return this;
  }
  mul_(other: Operand): this {
    if (other instanceof Tensor) native.mul_(this.handle, other.handle);
    else native.mulScalar_(this.handle, other);
    return this;
  }
  div_(other: Operand): this {
    if (other instanceof Tensor) native.div_(this.handle, other.handle);
    else native.divScalar_(this.handle, other);
    return this;
  }
  addcmul_(tensor1: Tensor, tensor2: Tensor, value = 1): this {
    native.addcmul_(this.handle, tensor1.handle, tensor2.handle, value);
    return this;
  }
  addcdiv_(tensor1: Tensor, tensor2: Tensor, value = 1): this {
    native.addcdiv_(this.handle, tensor1.handle, tensor2.handle, value);
    return this;
  }
  copy_(src: Tensor): this {
    native.copy_(this.handle, src.handle);
    return this;
  }
  zero_(): this {
    native.zero_(this.handle);
    return this;
  }
  fill_(value: Scalar): this {
    native.fill_(this.handle, value);
    return this;
  }
  sqrt_(): this {
    native.sqrt_(this.handle);
    return this;
  }
  clamp_(min?: number, max?: number): this {
    native.clamp_(this.handle, min, max);
    return this;
  }
  masked_fill_(mask: Tensor, value: Operand): this {
    if (value instanceof Tensor) native.maskedFill_(this.handle, mask.handle, value.handle);
    else native.maskedFillScalar_(this.handle, mask.handle, value);
    return this;
  }
  uniform_(from = 0, to = 1): this {
    native.uniform_(this.handle, from, to);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    native.normal_(this.handle, mean, std);
    return this;
  }
}

function flatShape(args: number[] | [number[]]): number[] {
  return Array.isArray(args[0]) ? args[0] : (args as number[]);
}

export function isDeviceName(s: string): s is Device {
  return s === 'cpu' || s === 'cuda' || /^cuda:\d+$/.test(s);
}
