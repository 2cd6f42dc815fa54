/** Tensor creation: `torch.zeros`, `torch.tensor`, … and the random generator's seed. */
import { native } from './native.js';
import { Tensor, type Device } from './tensor.js';
import { type DType, dtypeCode, dtypeOfTypedArray, isFloatingPoint } from './dtype.js';

export interface TensorOptions {
  dtype?: DType;
  device?: Device | string;
  requiresGrad?: boolean;
}

function code(dtype: DType | undefined): number | undefined {
  return dtype === undefined ? undefined : dtypeCode(dtype);
}

function finish(t: Tensor, opts: TensorOptions): Tensor {
  if (opts.requiresGrad) t.requires_grad_(true);
  return t;
}

export function empty(shape: number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.empty(shape, code(opts.dtype), opts.device)), opts);
}
export function zeros(shape: number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.zeros(shape, code(opts.dtype), opts.device)), opts);
}
export function ones(shape: number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.ones(shape, code(opts.dtype), opts.device)), opts);
}
export function full(shape: number[], value: number | boolean, opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.full(shape, value, code(opts.dtype), opts.device)), opts);
}
export function zeros_like(t: Tensor): Tensor {
  return new Tensor(native.zerosLike(t.handle));
}
export function ones_like(t: Tensor): Tensor {
  return new Tensor(native.onesLike(t.handle));
}
export function eye(n: number, opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.eye(n, code(opts.dtype), opts.device)), opts);
}
/** `torch.arange(end)` or `torch.arange(start, end, step)`; int64 unless a dtype is given. */
export function arange(startOrEnd: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  const [start, stop] = end === undefined ? [0, startOrEnd] : [startOrEnd, end];
  return finish(new Tensor(native.arange(start, stop, step, code(opts.dtype), opts.device)), opts);
}
/** Standard normal samples from libtorch's generator (seed it with `manualSeed`). */
export function randn(shape: number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.randn(shape, code(opts.dtype), opts.device)), opts);
}
/** Uniform samples in [0, 1). */
export function rand(shape: number[], opts: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.rand(shape, code(opts.dtype), opts.device)), opts);
}
export function randint(low: number, high: number, shape: number[], opts: TensorOptions = {}): Tensor {
  return new Tensor(native.randint(low, high, shape, code(opts.dtype), opts.device));
}
export function randperm(n: number, opts: TensorOptions = {}): Tensor {
  return new Tensor(native.randperm(n, code(opts.dtype), opts.device));
}
/** Seeds libtorch's default generators (CPU and every CUDA device), as `torch.manual_seed`. */
export function manualSeed(seed: number | bigint): void {
  native.manualSeed(seed);
}

/**
 * `torch.get_rng_state()`: the CPU generator's state (a uint8 tensor), for `setRngState`; with a
 * CUDA `device`, that device's generator (`torch.cuda.get_rng_state(device)`), which GPU dropout draws from.
 */
export function getRngState(device: Device | string = 'cpu'): Tensor {
  return new Tensor(device === 'cpu' ? native.getRngState() : native.getRngState(device));
}
/** `torch.set_rng_state(state)`: the generator of `device` (default the CPU's) continues from a state `getRngState(device)` gave. */
export function setRngState(state: Tensor, device: Device | string = 'cpu'): void {
  if (device === 'cpu') native.setRngState(state.handle);
  else native.setRngState(state.handle, device);
}

/** A tensor over a COPY of `data`, with the given shape (default: 1-D). */
export function fromTypedArray(data: ArrayBufferView, shape?: number[], opts: TensorOptions = {}): Tensor {
  const dtype = opts.dtype ?? dtypeOfTypedArray(data);
  let t = new Tensor(native.fromBuffer(data, shape ?? [data.byteLength / bytesPer(dtype)], dtypeCode(dtype)));
  if (opts.device !== undefined && opts.device !== 'cpu') t = t.to({ device: opts.device });
  return finish(t, opts);
}

function bytesPer(dtype: DType): number {
  switch (dtype) {
    case 'float64':
    case 'int64':
      return 8;
    case 'float32':
    case 'int32':
      return 4;
    case 'bfloat16':
    case 'float16':
    case 'int16':
      return 2;
    default:
      return 1;
  }
}

type Nested = number | boolean | Nested[];

function shapeOf(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as Nested;
    if (cur === undefined) break;
  }
  return shape;
}

/**
 * `torch.tensor(data)`: from a number, boolean or nested array (copied). Booleans give bool;
 * numbers give float32 unless `dtype` says otherwise — JS cannot tell `1` from `1.0`, so
 * where PyTorch would infer int64 from Python ints, pass `{ dtype: 'int64' }` (token ids, targets).
 */
export function tensor(data: Nested | ArrayBufferView, opts: TensorOptions = {}): Tensor {
  if (ArrayBuffer.isView(data)) return fromTypedArray(data, undefined, opts);
  const shape = shapeOf(data);
  const flat: (number | boolean)[] = Array.isArray(data) ? (data as unknown[]).flat(Infinity as 1) as (number | boolean)[] : [data];
  const expected = shape.reduce((a, b) => a * b, 1);
  if (flat.length !== expected) throw new Error(`tensor(): ragged nested array (shape [${shape.join(', ')}] needs ${expected} values, got ${flat.length})`);
  const allBool = flat.length > 0 && flat.every((v) => typeof v === 'boolean');
  const dtype: DType = opts.dtype ?? (allBool ? 'bool' : 'float32');
  const numbers = flat.map(Number);
  let array: ArrayBufferView;
  if (dtype === 'bool' || dtype === 'uint8') array = Uint8Array.from(numbers);
  else if (dtype === 'int8') array = Int8Array.from(numbers);
  else if (dtype === 'int16') array = Int16Array.from(numbers);
  else if (dtype === 'int32') array = Int32Array.from(numbers);
  else if (dtype === 'int64') array = BigInt64Array.from(numbers, (v) => BigInt(Math.trunc(v)));
  else if (dtype === 'float64') array = Float64Array.from(numbers);
  else array = Float32Array.from(numbers);
  const kind: DType = isFloatingPoint(dtype) && dtype !== 'float64' ? 'float32' : dtype;
  let t = fromTypedArray(array, shape, { dtype: kind, device: opts.device });
  if (kind !== dtype) {
    const cast = t.to(dtype);
    t.dispose();
    t = cast;
  }
  return finish(t, opts);
}
