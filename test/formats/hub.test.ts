// resolveModel against a local stand-in for the Hugging Face hub: two node:http servers, one
// playing huggingface.co (the /api listing, HEAD/GET on /resolve) and one playing its CDN on
// another port, serving the tiny BERT fixture the way the hub serves a repo.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HubError, matchesAny, parseModelRef, resolveModel, type DownloadProgress } from '../../src/formats/hub.js';

// The fixture path is worked out here rather than through test/helpers.ts, which loads libtorch:
// these tests need no engine.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SHARED = process.env.EMBTUNE_SHARED ?? resolve(ROOT, '..', 'shared');
const FIXTURE = join(SHARED, 'fixtures', 'models', 'bert-tiny');
const FIXTURE_FILES = ['config.json', 'model.safetensors', 'tokenizer_config.json', 'vocab.txt'];

const REPO = 'acme/bert-tiny';
const COMMIT = createHash('sha1').update('embtune test commit').digest('hex');
const REVISIONS: Record<string, string> = { main: COMMIT, v1: COMMIT, [COMMIT]: COMMIT };

/** What the repo holds: the fixture, plus a subfolder file and files the default filter must skip. */
const REPO_FILES = new Map<string, Buffer>([
  ...FIXTURE_FILES.map((f): [string, Buffer] => [f, readFileSync(join(FIXTURE, f))]),
  ['1_Pooling/config.json', Buffer.from('{"word_embedding_dimension": 32, "pooling_mode_mean_tokens": true}\n')],
  ['pytorch_model.bin', Buffer.from('not really a pickle, and never to be downloaded')],
  ['README.md', Buffer.from('# bert-tiny\n')],
]);
const isLfs = (file: string) => /\.(safetensors|bin)$/.test(file);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** A git blob id, which the hub gives as the ETag of a file kept in git. */
const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const etagOf = (file: string) => (isLfs(file) ? sha256(REPO_FILES.get(file)!) : gitSha1(REPO_FILES.get(file)!));
/** The files the default allow patterns select. */
const WANTED = [...FIXTURE_FILES, '1_Pooling/config.json'];

interface Seen {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  range: string | undefined;
  auth: string | undefined;
}

interface FakeHubOptions {
  /** Demand this bearer token: none sent → 401, a wrong one → 403 (gated). */
  token?: string;
  /** The CDN sends the LFS file with one byte flipped. */
  corruptLfs?: boolean;
  /** The CDN answers every GET with the whole file, as a server without Range support does. */
  ignoreRange?: boolean;
  /** The CDN sends this many bytes of a full GET, calls `onStall`, and sends no more. */
  stallAfter?: number;
  onStall?: () => void;
}

class FakeHub {
  readonly seen: Seen[] = [];
  private constructor(
    private readonly hub: Server,
    private readonly cdn: Server,
    readonly endpoint: string,
    private readonly cdnBase: string,
    private readonly opts: FakeHubOptions,
  ) {}

  static async start(opts: FakeHubOptions = {}): Promise<FakeHub> {
    let self: FakeHub | undefined;
    const hub = createServer((req, res) => self!.serveHub(req, res));
    const cdn = createServer((req, res) => self!.serveCdn(req, res));
    const endpoint = `http://127.0.0.1:${await listen(hub)}`;
    const cdnBase = `http://127.0.0.1:${await listen(cdn)}`;
    self = new FakeHub(hub, cdn, endpoint, cdnBase, opts);
    return self;
  }

  close(): Promise<void> {
    this.hub.closeAllConnections();
    this.cdn.closeAllConnections();
    return Promise.all([new Promise((r) => this.hub.close(r)), new Promise((r) => this.cdn.close(r))]).then(() => undefined);
  }

  requests(server?: 'hub' | 'cdn'): Seen[] {
    return this.seen.filter((s) => server === undefined || s.server === server);
  }

  private record(server: Seen['server'], req: IncomingMessage): void {
    this.seen.push({ server, method: req.method!, path: decodeURIComponent(req.url!), range: req.headers.range, auth: req.headers.authorization });
  }

  private serveHub(req: IncomingMessage, res: ServerResponse): void {
    this.record('hub', req);
    const auth = req.headers.authorization;
    if (this.opts.token !== undefined && auth !== `Bearer ${this.opts.token}`) {
      if (auth === undefined) return fail(res, 401, 'RepoNotFound', 'Invalid username or password.');
      return fail(res, 403, 'GatedRepo', `Access to model ${REPO} is restricted and you are not in the authorized list`);
    }
    const url = new URL(req.url!, this.endpoint);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(url.pathname);
    if (api) {
      const [repo, revision] = [api[1]!, decodeURIComponent(api[2]!)];
      if (repo !== REPO) return fail(res, 404, 'RepoNotFound', 'Repository not found');
      if (!REVISIONS[revision]) return fail(res, 404, 'RevisionNotFound', 'Invalid rev id');
      const body = JSON.stringify({ id: REPO, sha: REVISIONS[revision], siblings: [...REPO_FILES.keys()].map((rfilename) => ({ rfilename })) });
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(body);
    }
    const resolveMatch = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (!resolveMatch) return fail(res, 404, undefined, 'Not found');
    const [repo, revision, file] = [resolveMatch[1]!, decodeURIComponent(resolveMatch[2]!), decodeURIComponent(resolveMatch[3]!)];
    if (repo !== REPO) return fail(res, 404, 'RepoNotFound', 'Repository not found');
    const commit = REVISIONS[revision];
    if (!commit) return fail(res, 404, 'RevisionNotFound', 'Invalid rev id');
    const content = REPO_FILES.get(file);
    if (!content) return fail(res, 404, 'EntryNotFound', 'Entry not found');
    if (isLfs(file)) {
      // As the hub does: the ETag is the LFS pointer's, X-Linked-Etag the content's sha256.
      const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(content)}\nsize ${content.length}\n`);
      res.writeHead(302, {
        location: `${this.cdnBase}/cdn/${sha256(content)}`,
        'x-repo-commit': commit,
        'x-linked-etag': `"${sha256(content)}"`,
        'x-linked-size': String(content.length),
        etag: `"${gitSha1(pointer)}"`,
        'content-length': '0',
      });
      return void res.end();
    }
    serveBytes(req, res, content, { 'x-repo-commit': commit, etag: `"${gitSha1(content)}"` }, false);
  }

  private serveCdn(req: IncomingMessage, res: ServerResponse): void {
    this.record('cdn', req);
    const match = /^\/cdn\/([0-9a-f]{64})$/.exec(req.url!);
    const content = match ? [...REPO_FILES.values()].find((b) => sha256(b) === match[1]) : undefined;
    if (!content) return fail(res, 404, undefined, 'NoSuchKey');
    if (this.opts.stallAfter !== undefined && req.headers.range === undefined) {
      res.writeHead(200, { 'content-length': String(content.length) });
      res.write(content.subarray(0, this.opts.stallAfter), () => this.opts.onStall?.());
      return;
    }
    let body = content;
    if (this.opts.corruptLfs) {
      body = Buffer.from(content);
      body[body.length >> 1]! ^= 0xff;
    }
    serveBytes(req, res, body, {}, this.opts.ignoreRange ?? false);
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((done) => server.listen(0, '127.0.0.1', () => done((server.address() as { port: number }).port)));
}

function fail(res: ServerResponse, status: number, code: string | undefined, message: string): void {
  res.writeHead(status, { ...(code ? { 'x-error-code': code } : {}), 'x-error-message': message, 'content-type': 'text/plain' });
  res.end(message);
}

/** A body with `Range: bytes=N-` honoured (unless told to ignore it), as the hub and its CDN do. */
function serveBytes(req: IncomingMessage, res: ServerResponse, body: Buffer, headers: Record<string, string>, ignoreRange: boolean): void {
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range && !ignoreRange) {
    const start = Number(range[1]);
    const end = range[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
    if (start >= body.length) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${body.length}` });
      return void res.end();
    }
    res.writeHead(206, { ...headers, 'accept-ranges': 'bytes', 'content-range': `bytes ${start}-${end}/${body.length}`, 'content-length': String(end - start + 1) });
    return void res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
  }
  res.writeHead(200, { ...headers, 'accept-ranges': 'bytes', 'content-length': String(body.length) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

const temps: string[] = [];
function tempHome(): string {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-hub-'));
  temps.push(dir);
  return dir;
}
after(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A clean environment: nothing from the real process (no stray HF_TOKEN, no real cache). */
function envFor(hub: FakeHub | undefined, home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { HOME: home, HF_HOME: join(home, 'hf'), ...(hub ? { HF_ENDPOINT: hub.endpoint } : {}), ...extra };
}

const repoDir = (home: string) => join(home, 'hf', 'hub', 'models--acme--bert-tiny');

async function withHub(opts: FakeHubOptions, body: (hub: FakeHub) => Promise<void>): Promise<void> {
  const hub = await FakeHub.start(opts);
  try {
    await body(hub);
  } finally {
    await hub.close();
  }
}

/** An address nothing listens on: a port just given back by the OS. */
async function deadEndpoint(): Promise<string> {
  const server = createServer();
  const port = await listen(server);
  await new Promise((r) => server.close(r));
  return `http://127.0.0.1:${port}`;
}

async function rejectsWith(promise: Promise<unknown>, code: string, message: RegExp): Promise<HubError> {
  const error = await promise.then(
    () => assert.fail('expected a HubError'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof HubError, `expected a HubError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  assert.match(error.message, message);
  return error;
}

test('first download lays out blobs, relative snapshot links and refs/main as huggingface_hub does', async () => {
  await withHub({}, async (hub) => {
    const home = tempHome();
    const progress: DownloadProgress[] = [];
    const folder = await resolveModel(REPO, { env: envFor(hub, home), onProgress: (p) => progress.push(p) });
    const dir = repoDir(home);
    assert.equal(folder, join(dir, 'snapshots', COMMIT));
    assert.equal(readFileSync(join(dir, 'refs', 'main'), 'utf8'), COMMIT);

    // blobs/ holds exactly one file per wanted file, named by etag: sha256 for LFS, git sha1 otherwise.
    assert.deepEqual(readdirSync(join(dir, 'blobs')).sort(), WANTED.map(etagOf).sort());
    assert.equal(etagOf('model.safetensors'), sha256(readFileSync(join(FIXTURE, 'model.safetensors'))));
    for (const file of WANTED) {
      const link = join(folder, ...file.split('/'));
      const depth = file.split('/').length + 1;
      assert.equal(readlinkSync(link), [...Array(depth).fill('..'), 'blobs', etagOf(file)].join('/'), `${file} link`);
      assert.ok(readFileSync(link).equals(REPO_FILES.get(file)!), `${file} bytes`);
    }
    for (const file of FIXTURE_FILES) assert.ok(readFileSync(join(folder, file)).equals(readFileSync(join(FIXTURE, file))), `${file} identical to the fixture`);

    // Pickled weights and files no model needs were not fetched at all.
    assert.ok(!existsSync(join(folder, 'pytorch_model.bin')));
    assert.ok(!existsSync(join(folder, 'README.md')));
    assert.ok(!hub.seen.some((s) => s.path.includes('pytorch_model.bin') || s.path.includes('README.md')));
    // The LFS file came from the CDN, the git files from the endpoint.
    assert.deepEqual(hub.requests('cdn').map((s) => s.method), ['GET']);
    assert.equal(hub.requests('hub').filter((s) => s.method === 'GET' && s.path.includes('/resolve/')).length, WANTED.length - 1);

    const done = progress.filter((p) => p.status === 'done');
    assert.deepEqual(done.map((p) => p.file).sort(), [...WANTED].sort());
    const total = WANTED.reduce((n, f) => n + REPO_FILES.get(f)!.length, 0);
    const last = progress.at(-1)!;
    assert.deepEqual([last.overallBytes, last.overallTotal, last.fileIndex, last.fileCount], [total, total, WANTED.length, WANTED.length]);
    assert.ok(progress.every((p) => p.bytes <= p.total && p.overallBytes <= p.overallTotal && p.bytesPerSecond >= 0));
  });
});

test('a second resolve downloads nothing: its one request is the revision listing', async () => {
  await withHub({}, async (hub) => {
    const home = tempHome();
    const env = envFor(hub, home);
    const first = await resolveModel(REPO, { env });
    hub.seen.length = 0;
    assert.equal(await resolveModel(REPO, { env }), first);
    // The one request asks where main is now; no HEAD, no file GET, nothing from the CDN.
    assert.deepEqual(hub.seen.map((s) => `${s.server} ${s.method} ${s.path}`), [`hub GET /api/models/${REPO}/revision/main`]);

    // A tag at the same commit shares the snapshot and gets its own ref, again without downloads.
    hub.seen.length = 0;
    assert.equal(await resolveModel(`${REPO}@v1`, { env }), first);
    assert.equal(readFileSync(join(repoDir(home), 'refs', 'v1'), 'utf8'), COMMIT);
    assert.deepEqual(hub.seen.map((s) => s.path), [`/api/models/${REPO}/revision/v1`]);
  });
});

test('a partial .incomplete blob is resumed with a Range request and the result is whole', async () => {
  await withHub({}, async (hub) => {
    const home = tempHome();
    const content = REPO_FILES.get('model.safetensors')!;
    const etag = sha256(content);
    const blobs = join(repoDir(home), 'blobs');
    mkdirSync(blobs, { recursive: true });
    const already = 1_000_000;
    writeFileSync(join(blobs, `${etag}.incomplete`), content.subarray(0, already));

    const progress: DownloadProgress[] = [];
    const folder = await resolveModel(REPO, { env: envFor(hub, home), onProgress: (p) => progress.push(p) });
    assert.deepEqual(hub.requests('cdn').map((s) => s.range), [`bytes=${already}-`]);
    assert.ok(readFileSync(join(folder, 'model.safetensors')).equals(content));
    assert.ok(!existsSync(join(blobs, `${etag}.incomplete`)));
    // The bar starts where the earlier run stopped.
    const first = progress.find((p) => p.file === 'model.safetensors')!;
    assert.ok(first.bytes >= already, `first report at ${first.bytes}`);
  });
});

test('a server that ignores Range gets the whole file again and the partial bytes are not kept twice', async () => {
  await withHub({ ignoreRange: true }, async (hub) => {
    const home = tempHome();
    const content = REPO_FILES.get('model.safetensors')!;
    const blobs = join(repoDir(home), 'blobs');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(join(blobs, `${sha256(content)}.incomplete`), content.subarray(0, 4096));

    const folder = await resolveModel(REPO, { env: envFor(hub, home) });
    assert.deepEqual(hub.requests('cdn').map((s) => s.range), ['bytes=4096-']);
    assert.ok(readFileSync(join(folder, 'model.safetensors')).equals(content));
  });
});

test('wrong bytes for an LFS file are a checksum error and leave nothing in blobs or the snapshot', async () => {
  await withHub({ corruptLfs: true }, async (hub) => {
    const home = tempHome();
    const etag = sha256(REPO_FILES.get('model.safetensors')!);
    await rejectsWith(resolveModel(REPO, { env: envFor(hub, home) }), 'checksum', new RegExp(`Checksum mismatch .*model\\.safetensors.*sha256 ${etag}`));
    const dir = repoDir(home);
    assert.deepEqual(readdirSync(join(dir, 'blobs')).filter((f) => f.startsWith(etag)), []);
    assert.ok(!existsSync(join(dir, 'snapshots', COMMIT, 'model.safetensors')));
    // No ref either: offline, main must not lead to a snapshot without its weights.
    assert.ok(!existsSync(join(dir, 'refs', 'main')));
  });
});

test('a partial file holding wrong bytes is caught by the checksum after the resume, and the next run starts clean', async () => {
  await withHub({}, async (hub) => {
    const home = tempHome();
    const content = REPO_FILES.get('model.safetensors')!;
    const partial = join(repoDir(home), 'blobs', `${sha256(content)}.incomplete`);
    mkdirSync(dirname(partial), { recursive: true });
    writeFileSync(partial, Buffer.alloc(5000, 0x41));
    await rejectsWith(resolveModel(REPO, { env: envFor(hub, home) }), 'checksum', /Checksum mismatch/);
    assert.ok(!existsSync(partial));
    const folder = await resolveModel(REPO, { env: envFor(hub, home) });
    assert.ok(readFileSync(join(folder, 'model.safetensors')).equals(content));
  });
});

test('HF_HUB_OFFLINE=1 resolves from the cache without a request, and says where it looked when the model is absent', async () => {
  await withHub({}, async (hub) => {
    const home = tempHome();
    const online = await resolveModel(REPO, { env: envFor(hub, home) });
    hub.seen.length = 0;
    const offlineEnv = envFor(undefined, home, { HF_HUB_OFFLINE: '1', HF_ENDPOINT: await deadEndpoint() });
    assert.equal(await resolveModel(REPO, { env: offlineEnv }), online);
    assert.equal(await resolveModel(`${REPO}@${COMMIT}`, { env: offlineEnv }), online);
    assert.equal(hub.seen.length, 0);

    const empty = tempHome();
    const error = await rejectsWith(
      resolveModel(REPO, { env: envFor(undefined, empty, { HF_HUB_OFFLINE: '1' }) }),
      'offline',
      /HF_HUB_OFFLINE is set and acme\/bert-tiny@main is not in the cache/,
    );
    assert.ok(error.message.includes(join(repoDir(empty), 'refs', 'main')), error.message);
    await rejectsWith(resolveModel(`${REPO}@v1`, { env: envFor(undefined, home, { HF_HUB_OFFLINE: 'true' }) }), 'offline', /refs\/v1/);
  });
});

test('HF_TOKEN goes as a bearer token to the endpoint and never to the CDN host it redirects to', async () => {
  await withHub({ token: 'hf_secret' }, async (hub) => {
    const home = tempHome();
    const folder = await resolveModel(REPO, { env: envFor(hub, home, { HF_TOKEN: 'hf_secret' }) });
    assert.ok(readFileSync(join(folder, 'model.safetensors')).equals(REPO_FILES.get('model.safetensors')!));
    assert.ok(hub.requests('hub').length > 0);
    assert.ok(hub.requests('hub').every((s) => s.auth === 'Bearer hf_secret'));
    assert.ok(hub.requests('cdn').length > 0);
    assert.ok(hub.requests('cdn').every((s) => s.auth === undefined));
  });
});

test('401 asks for HF_TOKEN, 403 points at the gated repo page, 404 tells repo from revision', async () => {
  await withHub({ token: 'hf_secret' }, async (hub) => {
    const home = tempHome();
    await rejectsWith(resolveModel(REPO, { env: envFor(hub, home) }), 'unauthorized', /401 Unauthorized for acme\/bert-tiny: .*private or gated.*set HF_TOKEN/);
    await rejectsWith(
      resolveModel(REPO, { env: envFor(hub, home, { HF_TOKEN: 'hf_wrong' }) }),
      'forbidden',
      new RegExp(`403 Forbidden for acme/bert-tiny: the repo is gated.*restricted.*${hub.endpoint}/acme/bert-tiny`),
    );
    assert.ok(!existsSync(repoDir(home)), 'nothing cached after a refusal');
  });
  await withHub({}, async (hub) => {
    const home = tempHome();
    await rejectsWith(resolveModel('acme/no-such-model', { env: envFor(hub, home) }), 'repo_not_found', /Repo acme\/no-such-model not found at .*check the id/);
    await rejectsWith(resolveModel(`${REPO}@no-such-branch`, { env: envFor(hub, home) }), 'revision_not_found', /Revision 'no-such-branch' not found in acme\/bert-tiny/);
  });
});

test('an unreachable endpoint names HF_ENDPOINT and suggests HF_HUB_OFFLINE or a local folder, unless the cache has the model', async () => {
  const home = tempHome();
  const endpoint = await deadEndpoint();
  const error = await rejectsWith(resolveModel(REPO, { env: envFor(undefined, home, { HF_ENDPOINT: endpoint }) }), 'network', /Cannot reach the hub/);
  assert.ok(error.message.includes(`${endpoint} (HF_ENDPOINT)`), error.message);
  assert.match(error.message, /ECONNREFUSED.*HF_HUB_OFFLINE=1.*local model folder/);

  // With the model cached, a dead network is not an error: the cached snapshot answers.
  await withHub({}, async (hub) => {
    const online = await resolveModel(REPO, { env: envFor(hub, home) });
    assert.equal(await resolveModel(REPO, { env: envFor(undefined, home, { HF_ENDPOINT: endpoint }) }), online);
  });
});

test('a local folder is returned as it is, without touching the network or the cache', async () => {
  const home = tempHome();
  const env = envFor(undefined, home, { HF_ENDPOINT: await deadEndpoint() });
  assert.equal(await resolveModel(FIXTURE, { env }), FIXTURE);
  assert.equal(await resolveModel(relative(process.cwd(), FIXTURE) || '.', { env }), FIXTURE);
  mkdirSync(join(home, 'models', 'mine'), { recursive: true });
  assert.equal(await resolveModel('~/models/mine', { env }), join(home, 'models', 'mine'));
  assert.ok(!existsSync(join(home, 'hf')));
  await rejectsWith(resolveModel('./no/such/folder', { env }), 'bad_ref', /no folder at/);
  await rejectsWith(resolveModel(join(FIXTURE, 'config.json'), { env }), 'bad_ref', /is a file/);
});

test('model refs: org/name with an optional @revision, defaulting to main; malformed ids are refused', async () => {
  assert.deepEqual(await parseModelRef('Qwen/Qwen3-Embedding-0.6B'), { kind: 'hub', repoId: 'Qwen/Qwen3-Embedding-0.6B', revision: 'main' });
  assert.deepEqual(await parseModelRef(`acme/bert-tiny@${COMMIT}`), { kind: 'hub', repoId: REPO, revision: COMMIT });
  assert.deepEqual(await parseModelRef('acme/bert-tiny@refs/pr/1'), { kind: 'hub', repoId: REPO, revision: 'refs/pr/1' });
  for (const bad of ['acme/-x', 'acme/x--y', 'acme/x.git', 'acme/bert-tiny@', 'acme/bert-tiny@../x', '']) {
    await assert.rejects(parseModelRef(bad), (e: unknown) => e instanceof HubError && e.code === 'bad_ref', bad);
  }
});

test('allow patterns follow fnmatch: * crosses folders, a trailing / means the folder, pickles are not in the defaults', async () => {
  assert.ok(matchesAny('1_Pooling/config.json', ['*.json']));
  assert.ok(matchesAny('1_Pooling/config.json', ['1_Pooling/']));
  assert.ok(matchesAny('model-00001-of-00002.safetensors', ['model-0000[0-9]-of-*.safetensors']));
  assert.ok(!matchesAny('model.safetensors', ['*.SAFETENSORS']));
  assert.ok(!matchesAny('vocab.txt.bak', ['vocab.txt']));
  await withHub({}, async (hub) => {
    const home = tempHome();
    const folder = await resolveModel(REPO, { env: envFor(hub, home), allowPatterns: ['config.json', '*.bin'] });
    assert.deepEqual(readdirSync(folder).sort(), ['config.json', 'pytorch_model.bin']);
    await rejectsWith(resolveModel(REPO, { env: envFor(hub, home), allowPatterns: ['*.onnx'] }), 'no_files', /None of the 7 files .*pickled weights \(pytorch_model\.bin\)/);
  });
});

test('an abort keeps the partial download, and the next call resumes it', async () => {
  const controller = new AbortController();
  const sent = 300_000;
  // The abort comes once the CDN has sent part of the file and the client has had time to store it.
  await withHub({ stallAfter: sent, onStall: () => setTimeout(() => controller.abort(), 200) }, async (stalling) => {
    const home = tempHome();
    await assert.rejects(resolveModel(REPO, { env: envFor(stalling, home), signal: controller.signal }), (e: unknown) => (e as Error).name === 'AbortError');
    const content = REPO_FILES.get('model.safetensors')!;
    const partial = join(repoDir(home), 'blobs', `${sha256(content)}.incomplete`);
    assert.equal(readFileSync(partial).length, sent);

    await withHub({}, async (hub) => {
      const folder = await resolveModel(REPO, { env: envFor(hub, home) });
      assert.deepEqual(hub.requests('cdn').map((s) => s.range), [`bytes=${sent}-`]);
      assert.ok(readFileSync(join(folder, 'model.safetensors')).equals(content));
      assert.ok(!existsSync(partial));
    });
  });
});

test('embtune embed --model org/name downloads through the CLI and embeds as from the local folder', async () => {
  const { execFile } = await import('node:child_process');
  const cli = join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const run = (args: string[], env: NodeJS.ProcessEnv) =>
    new Promise<{ code: number; stderr: string }>((done) => {
      execFile(process.execPath, [cli, ...args], { env: { ...env, PATH: process.env.PATH, EMBTUNE_NUM_THREADS: '1' } }, (err, _stdout, stderr) =>
        done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
  await withHub({}, async (hub) => {
    const home = tempHome();
    const input = join(home, 'texts.jsonl');
    writeFileSync(input, ['{"text": "什么是轮作？"}', '{"text": "hello world"}'].join('\n') + '\n');
    const viaHub = await run(['embed', '--model', REPO, '--input', input, '--output', join(home, 'hub.jsonl')], envFor(hub, home));
    assert.equal(viaHub.code, 0, viaHub.stderr);
    assert.ok(existsSync(join(repoDir(home), 'snapshots', COMMIT, 'model.safetensors')));
    assert.ok(hub.requests('cdn').length > 0, 'the weights came from the CDN');
    const local = await run(['embed', '--model', FIXTURE, '--input', input, '--output', join(home, 'local.jsonl')], envFor(undefined, home, { HF_HUB_OFFLINE: '1' }));
    assert.equal(local.code, 0, local.stderr);
    assert.equal(readFileSync(join(home, 'hub.jsonl'), 'utf8'), readFileSync(join(home, 'local.jsonl'), 'utf8'));
  });
});
