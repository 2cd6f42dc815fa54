/**
 * Data types, named as in PyTorch, and the codes of c10::ScalarType they map to (stable
 * across libtorch 1.13 and 2.x). Half-precision values travel as their raw 16-bit patterns.
 */

export type DType = 'float32' | 'float64' | 'bfloat16' | 'float16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

const CODE_OF: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};

const DTYPE_OF = new Map<number, DType>(Object.entries(CODE_OF).map(([name, code]) => [code, name as DType]));

export const DTYPES: readonly DType[] = Object.keys(CODE_OF) as DType[];

export function dtypeCode(dtype: DType): number {
  const code = CODE_OF[dtype];
  if (code === undefined) throw new Error(`unknown dtype '${String(dtype)}'; expected one of ${DTYPES.join(', ')}`);
  return code;
}

export function dtypeFromCode(code: number): DType {
  const dtype = DTYPE_OF.get(code);
  if (dtype === undefined) throw new Error(`libtorch returned dtype code ${code}, which embtune does not support`);
  return dtype;
}

export function isFloatingPoint(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'bfloat16' || dtype === 'float16';
}

/** The typed array that holds a dtype's elements on the JS side. */
export interface TypedArrayOf {
  float32: Float32Array;
  float64: Float64Array;
  bfloat16: Uint16Array;
  float16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int16: Int16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

export type AnyTypedArray = TypedArrayOf[DType];

export function typedArrayFor<D extends DType>(dtype: D, buffer: ArrayBuffer): TypedArrayOf[D] {
  const view = (() => {
    switch (dtype) {
      case 'float32':
        return new Float32Array(buffer);
      case 'float64':
        return new Float64Array(buffer);
      case 'bfloat16':
      case 'float16':
        return new Uint16Array(buffer);
      case 'int64':
        return new BigInt64Array(buffer);
      case 'int32':
        return new Int32Array(buffer);
      case 'int16':
        return new Int16Array(buffer);
      case 'int8':
        return new Int8Array(buffer);
      case 'uint8':
      case 'bool':
        return new Uint8Array(buffer);
    }
  })();
  return view as TypedArrayOf[D];
}

/** The dtype a typed array holds when none is named (Uint16Array is ambiguous, so it needs one). */
export function dtypeOfTypedArray(array: ArrayBufferView): DType {
  if (array instanceof Float32Array) return 'float32';
  if (array instanceof Float64Array) return 'float64';
  if (array instanceof BigInt64Array) return 'int64';
  if (array instanceof Int32Array) return 'int32';
  if (array instanceof Int16Array) return 'int16';
  if (array instanceof Int8Array) return 'int8';
  if (array instanceof Uint8Array) return 'uint8';
  throw new Error(`cannot tell the dtype of a ${array.constructor.name}; pass { dtype } (Uint16Array holds 'bfloat16' or 'float16' bits)`);
}
