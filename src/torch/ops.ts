/** Free-function forms of the ops (`torch.cat`, `torch.where`, …) for those read better that way. */
import { native } from './native.js';
import { Tensor, type Operand } from './tensor.js';

export function cat(tensors: Tensor[], dim = 0): Tensor {
  return new Tensor(native.cat(tensors.map((t) => t.handle), dim));
}
export function stack(tensors: Tensor[], dim = 0): Tensor {
  return new Tensor(native.stack(tensors.map((t) => t.handle), dim));
}
/** `torch.where(condition, input, other)`: elements of `input` where true, else of `other`. */
export function where(condition: Tensor, input: Operand, other: Operand): Tensor {
  const a = input instanceof Tensor ? input.handle : input;
  const b = other instanceof Tensor ? other.handle : other;
  return new Tensor(native.where(condition.handle, a, b, input instanceof Tensor, other instanceof Tensor));
}
export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.matmul(b);
}
export function bmm(a: Tensor, b: Tensor): Tensor {
  return a.bmm(b);
}
export function maximum(a: Tensor, b: Operand): Tensor {
  return a.maximum(b);
}
export function minimum(a: Tensor, b: Operand): Tensor {
  return a.minimum(b);
}
export function tril(t: Tensor, diagonal = 0): Tensor {
  return t.tril(diagonal);
}
export function triu(t: Tensor, diagonal = 0): Tensor {
  return t.triu(diagonal);
}
export function topk(t: Tensor, k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] {
  return t.topk(k, dim, largest, sorted);
}
/** `torch.mm(a, b, out=out)`: the product written into `out` (right shape, contiguous), no new tensor. */
export function mm_out(out: Tensor, a: Tensor, b: Tensor): Tensor {
  native.mmOut(out.handle, a.handle, b.handle);
  return out;
}
