// The notice that a client went away (serve/context.ts ClientGone): it fires when the connection
// closes before the response is written, not when it closes after; listeners removed do not run;
// `signal` is a real AbortSignal that follows it (made before or after the close).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { ClientGone } from '../../src/serve/context.js';

/** A response that closes when told, finished or not. */
function response(): { res: ServerResponse; close: (finished: boolean) => void } {
  const emitter = new EventEmitter() as EventEmitter & { writableFinished: boolean };
  emitter.writableFinished = false;
  return {
    res: emitter as unknown as ServerResponse,
    close: (finished) => {
      emitter.writableFinished = finished;
      emitter.emit('close');
    },
  };
}

test('a connection closed before the response is written fires the listeners once, and later ones not at all', () => {
  const { res, close } = response();
  const gone = new ClientGone(res);
  const calls: string[] = [];
  gone.addEventListener('abort', () => calls.push('a'));
  const removed = () => calls.push('removed');
  gone.addEventListener('abort', removed);
  gone.removeEventListener('abort', removed);
  assert.equal(gone.aborted, false);
  close(false);
  assert.equal(gone.aborted, true);
  assert.deepEqual(calls, ['a']);
  gone.addEventListener('abort', () => calls.push('late'));
  assert.deepEqual(calls, ['a']);
});

test('a connection closed after the response was written is not a client that went away', () => {
  const { res, close } = response();
  const gone = new ClientGone(res);
  let fired = false;
  gone.addEventListener('abort', () => (fired = true));
  close(true);
  assert.equal(gone.aborted, false);
  assert.equal(fired, false);
  assert.equal(gone.signal.aborted, false);
});

test('signal is an AbortSignal that aborts with the notice, whether asked for before or after', () => {
  const before = response();
  const early = new ClientGone(before.res);
  const signal = early.signal;
  assert.ok(signal instanceof AbortSignal);
  assert.equal(signal.aborted, false);
  before.close(false);
  assert.equal(signal.aborted, true);

  const after = response();
  const late = new ClientGone(after.res);
  after.close(false);
  assert.equal(late.signal.aborted, true);
});
