/** How the worker threads refuse a job: the HTTP status and TEI error type the client gets. */
import type { JobError } from './protocol.js';

export class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/** A refusal as it crosses to the HTTP thread; any other error is the input's fault (422). */
export function jobError(err: unknown): JobError {
  if (err instanceof Refusal) return { status: err.status, type: err.type, message: err.message };
  return { status: 422, type: 'validation', message: `Input validation error: ${(err as Error).message}` };
}
