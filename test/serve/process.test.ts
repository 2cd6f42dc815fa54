// The script contract of `embtune serve` as a process: flags from the environment
// (EMBTUNE_<FLAG>), the start banner, GET /health without a key, 429 with Retry-After at once past
// --max-concurrent-requests while the others complete with 200, a client that disconnects frees
// its slot, SIGTERM drains in-flight requests and exits 0, and the model worker thread runs at a
// lower priority than the HTTP thread (--worker-nice).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { CLI, ENV, QWEN, call, post } from './serve_fixture.js';

const KEY = 'k-process';
const AUTH = { authorization: `Bearer ${KEY}` };

/** Texts long enough that one request keeps the model busy for a while. */
/** Nice value of each thread of a process (Linux /proc; field 19 of stat). */
function threadNice(pid: number): Map<number, number> {
  return new Map(readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return [Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])];
  }));
}

const HEAVY = { inputs: Array.from({ length: 32 }, (_, i) => `${i} ` + 'many words in a long passage '.repeat(20)) };

test('embtune serve: env flags, banner, /health, 429 + Retry-After past the limit, disconnects free slots, SIGTERM drains and exits 0', async () => {
  const child = spawn(process.execPath, [CLI, 'serve', '--model', QWEN, '--max-concurrent-requests', '2'], {
    env: { ...ENV, EMBTUNE_PORT: '0', EMBTUNE_API_KEY: KEY, EMBTUNE_HOST: '127.0.0.1', EMBTUNE_THREADS: '1', EMBTUNE_WORKER_NICE: '7' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = once(child, 'exit');
  try {
    const deadline = Date.now() + 60_000;
    while (!/listening on (http:\/\/\S+)/.test(stdout)) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `the server did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const base = /listening on (http:\/\/\S+)/.exec(stdout)![1]!;
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(stdout, /embedding: qwen3-tiny/);
    assert.match(stdout, /max-concurrent-requests 2/);
    assert.match(stdout, /API key required/);
    // The model and tokenizer workers yield the CPU to the HTTP thread: they alone run at nice 7.
    assert.match(stdout, /model and tokenizer workers nice 7/);
    const nice = threadNice(child.pid!);
    assert.equal(nice.get(child.pid!), 0, 'the HTTP (main) thread keeps its priority');
    assert.equal([...nice.values()].filter((n) => n === 7).length, 2, `two threads at nice 7: ${[...nice.values()]}`);
    assert.equal((await call(base, 'GET', '/health')).status, 200);
    assert.equal((await post(base, '/embed', { inputs: 'a' })).status, 401);

    // Eight at once, two permits: the others are refused at once, never queued.
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 8 }, () => post(base, '/embed', HEAVY, AUTH).then((r) => ({ r, ms: Date.now() - started }))));
    const ok = answers.filter((a) => a.r.status === 200);
    const refused = answers.filter((a) => a.r.status === 429);
    assert.equal(ok.length + refused.length, 8, `only 200s and 429s: ${answers.map((a) => a.r.status)}`);
    assert.ok(ok.length >= 2, `the first two complete (${ok.length})`);
    assert.ok(refused.length >= 1, 'requests past the limit are refused');
    for (const { r, ms } of refused) {
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(r.body.error_type, 'overloaded');
      assert.ok(ms < Math.min(...ok.map((a) => a.ms)), 'a 429 comes before the admitted requests finish (no waiting)');
    }
    for (const { r } of ok) assert.equal(r.body.length, 32);

    // Clients that go away free their permits: afterwards two requests run at once again.
    for (let i = 0; i < 4; i++) {
      const controller = new AbortController();
      const pending = fetch(base + '/embed', { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify(HEAVY), signal: controller.signal }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 30));
      controller.abort();
      await pending;
    }
    let inFlight = Infinity;
    for (let i = 0; i < 100 && inFlight > 0; i++) {
      const metrics = await call(base, 'GET', '/metrics', undefined, AUTH);
      inFlight = Number(/^embtune_requests_in_flight (\d+)/m.exec(metrics.text)?.[1]);
      if (inFlight > 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(inFlight, 0, 'no permit is held after the clients left');
    const two = await Promise.all([post(base, '/embed', { inputs: 'x' }, AUTH), post(base, '/embed', { inputs: 'y' }, AUTH)]);
    assert.deepEqual(two.map((r) => r.status), [200, 200]);

    // SIGTERM with a request in flight: it completes, then the process exits 0.
    const inflight = post(base, '/embed', HEAVY, AUTH);
    await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGTERM');
    const last = await inflight;
    assert.equal(last.status, 200, last.text);
    const [code] = await exited;
    assert.equal(code, 0, stderr);
    assert.match(stderr, /SIGTERM: finishing/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
