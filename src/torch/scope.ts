/**
 * Explicit ownership of native memory. Every tensor made while a `tidy` scope is open belongs
 * to that scope and is freed when it closes, unless the scope's function returns it or it was
 * passed to `keep`. Tensors made outside any scope live until `dispose()` (or, as a backstop
 * only, until the garbage collector finalizes them).
 */

export const TENSOR = Symbol.for('embtune.tensor');

/** What a scope needs of a tensor. */
export interface Owned {
  readonly [TENSOR]: true;
  dispose(): void;
  /** Called when the tensor leaves every scope alive (kept or returned to top level). */
  onUnscoped(): void;
}

const scopes: Set<Owned>[] = [];

/** Puts a new tensor in the innermost open scope; false when no scope is open. */
export function track(t: Owned): boolean {
  const scope = scopes[scopes.length - 1];
  scope?.add(t);
  return scope !== undefined;
}

/** Takes `t` out of every open scope, so that it outlives them (dispose it yourself). */
export function keep<T extends Owned>(t: T): T {
  for (let i = scopes.length - 1; i >= 0; i--) {
    if (scopes[i]!.delete(t)) {
      t.onUnscoped();
      break;
    }
  }
  return t;
}

function isOwned(value: unknown): value is Owned {
  return typeof value === 'object' && value !== null && (value as Partial<Owned>)[TENSOR] === true;
}

/** The tensors inside a returned value: itself, or inside arrays, plain objects and Maps. */
function collectReturned(value: unknown, into: Set<Owned>, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (isOwned(value)) {
    into.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collectReturned(v, into, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectReturned(v, into, depth + 1);
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) for (const v of Object.values(value)) collectReturned(v, into, depth + 1);
  }
}

/**
 * Runs `fn` in a scope: tensors it makes are freed when it returns, except those in its result
 * (which move to the enclosing scope). If `fn` throws, everything it made is freed.
 * `fn` must be synchronous: an async function would let unrelated work land in the scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Owned>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw err;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    throw new Error('tidy() takes a synchronous function; await outside it and tidy each synchronous step');
  }
  const returned = new Set<Owned>();
  collectReturned(result, returned);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (!returned.has(t)) t.dispose();
    else if (parent) parent.add(t);
    else t.onUnscoped();
  }
  return result;
}

/** Frees every tensor in `value` (a tensor, or arrays/objects holding tensors). */
export function dispose(value: unknown): void {
  const found = new Set<Owned>();
  collectReturned(value, found);
  for (const t of found) t.dispose();
}
