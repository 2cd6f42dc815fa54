/**
 * Error bodies in the dialect of the route (REFERENCE §15): TEI's `{error, error_type}` on the
 * TEI, Cohere and Jina routes, OpenAI's `{error: {message, type, param, code}}` on the OpenAI
 * routes. Every framework error (bad JSON, schema, body size, media type) becomes a 4xx with a
 * message that says what is wrong; anything else is a 500 that says only "internal error" — no
 * stack trace ever reaches a client.
 */
import type { FastifyError } from 'fastify';
import { ServeError } from './model_worker.js';

export type Dialect = 'tei' | 'openai';

export interface ErrorBody {
  status: number;
  body: unknown;
}

function openaiType(status: number): string {
  if (status === 429) return 'rate_limit_error';
  if (status === 401) return 'authentication_error';
  if (status >= 500 || status === 424) return 'server_error';
  return 'invalid_request_error';
}

export function errorBody(dialect: Dialect, err: ServeError): ErrorBody {
  if (dialect === 'openai') {
    return { status: err.status, body: { error: { message: err.message, type: openaiType(err.status), param: err.param ?? null, code: err.type } } };
  }
  return { status: err.status, body: { error: err.message, error_type: err.type } };
}

interface AjvError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
  parentSchema?: { description?: string };
}

/** One sentence from ajv's errors: where, and what the field must be. */
function validationMessage(errors: AjvError[]): { message: string; param: string } {
  // A union (`input`, `documents`) fails in every branch; its description says what is allowed.
  const union = errors.find((e) => e.keyword === 'anyOf');
  const first = union ?? errors[0]!;
  const path = first.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const where = path === '' ? 'the body' : `\`${path}\``;
  let what = union?.parentSchema?.description ?? first.message ?? 'is invalid';
  if (first.keyword === 'required') what = `needs the field \`${String(first.params.missingProperty)}\``;
  if (first.keyword === 'enum') what = `must be one of ${(first.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  if (first.keyword === 'additionalProperties') what = `has an unknown field \`${String(first.params.additionalProperty)}\``;
  return { message: `Input validation error: ${where} ${what}`, param: path };
}

/** What a client gets for an error thrown while serving a request. */
export function toServeError(err: unknown): ServeError {
  if (err instanceof ServeError) return err;
  const e = err as FastifyError & { validation?: AjvError[] };
  if (e.validation) {
    const { message, param } = validationMessage(e.validation);
    return new ServeError(422, 'validation', message, param || undefined);
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ServeError(413, 'payload_too_large', `the request body is larger than the server's --payload-limit`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ServeError(415, 'validation', 'the body must be JSON: send `Content-Type: application/json`');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ServeError(400, 'validation', 'the body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ServeError(400, 'validation', 'the Content-Length header does not match the body');
  }
  if (err instanceof SyntaxError || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new ServeError(400, 'validation', `malformed JSON body: ${e.message}`);
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) return new ServeError(status, 'validation', e.message);
  return new ServeError(500, 'backend', 'internal error');
}
