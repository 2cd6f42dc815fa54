/**
 * Model references → local folders. A folder on disk is used as it is; a hub id `org/name` or
 * `org/name@revision` (a branch, tag or 40-hex commit; `main` by default) is downloaded into the
 * Hugging Face cache that huggingface_hub uses (see hub_cache.ts), over the hub's protocol
 * (see hub_http.ts), and the snapshot folder of its commit is returned.
 *
 * Only the files a model needs are fetched (DEFAULT_ALLOW_PATTERNS): configs, safetensors
 * weights and tokenizer files. Pickled weights (`*.bin`, `*.pt`) are not on the list, so they are
 * never downloaded unless a caller asks for them by pattern.
 *
 * Environment, read as huggingface_hub reads it: HF_ENDPOINT, HF_HOME / HF_HUB_CACHE /
 * XDG_CACHE_HOME, HF_TOKEN (or HUGGING_FACE_HUB_TOKEN, or the token file `hf auth login` writes),
 * HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE).
 */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { RepoCache, expandHome, hfHome, hubCacheDir, type Env } from './hub_cache.js';
import { HubError, downloadBlob, fileMetadata, listRepo, type FileMetadata, type HubContext, type RepoListing } from './hub_http.js';

export { HubError, type HubErrorCode } from './hub_http.js';
export { hubCacheDir, hfHome, repoFolderName } from './hub_cache.js';

/** What a model folder needs; pickled weights are left out on purpose. */
export const DEFAULT_ALLOW_PATTERNS: readonly string[] = [
  '*.json',
  '*.safetensors',
  'tokenizer*',
  'vocab.txt',
  'merges.txt',
  '*.model',
  'modules.json',
  '1_Pooling/*',
];

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';

/** Reported while files download, often enough to draw a progress bar (see src/cli/progress.ts). */
export interface DownloadProgress {
  /** 'progress' while a file arrives, 'done' once it is verified and in the cache. */
  status: 'progress' | 'done';
  repoId: string;
  /** Path of the file in the repo, `/`-separated. */
  file: string;
  /** 1-based position among the files this call downloads, and their number. */
  fileIndex: number;
  fileCount: number;
  /** Bytes of this file on disk (a resumed download starts above 0), and its size. */
  bytes: number;
  total: number;
  /** The same over every file this call downloads. */
  overallBytes: number;
  overallTotal: number;
  /** Bytes received by this call per second since its first download began. */
  bytesPerSecond: number;
  /** Seconds left for all files at that rate; undefined until there is a rate. */
  etaSeconds: number | undefined;
}

export interface ResolveOptions {
  /** Glob patterns (fnmatch: `*` also crosses `/`) selecting the repo files to fetch. */
  allowPatterns?: readonly string[];
  onProgress?: (progress: DownloadProgress) => void;
  /** Aborting keeps any partial download, which the next call resumes. */
  signal?: AbortSignal;
  /** The environment to read HF_* settings from; process.env when left out. */
  env?: Env;
}

export type ModelRef = { kind: 'local'; path: string } | { kind: 'hub'; repoId: string; revision: string };

/** One part of a repo id: letters, digits, `_`, `-`, `.`, not starting or ending with `-` or `.`. */
const REPO_PART = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/;

function badRef(ref: string, why: string): HubError {
  return new HubError('bad_ref', `'${ref}' is not a model: ${why}. Give a local model folder, or a hub id as org/name or org/name@revision.`);
}

/** A ref that can only be a path: its missing folder is reported as such, not looked up on the hub. */
function looksLikePath(ref: string): boolean {
  const beforeRevision = ref.split('@')[0]!;
  return /^(\/|\.|~)/.test(ref) || ref.includes('\\') || beforeRevision.split('/').length !== 2;
}

function checkRevision(ref: string, revision: string): void {
  const parts = revision.split('/');
  if (/\s/.test(revision) || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw badRef(ref, `'${revision}' is not a branch, tag or commit`);
  }
}

/**
 * Tells a folder from a hub id. An existing folder wins, even one named like `org/name`, as
 * transformers also does; anything path-like that is missing is an error, not a hub lookup.
 */
export async function parseModelRef(ref: string, env: Env = process.env): Promise<ModelRef> {
  if (ref.trim() === '') throw badRef(ref, 'it is empty');
  const expanded = expandHome(ref, env);
  const found = await stat(expanded).catch(() => undefined);
  if (found?.isDirectory()) return { kind: 'local', path: resolve(expanded) };
  if (found) throw badRef(ref, `${resolve(expanded)} is a file, and a model is a folder (config.json beside the weights)`);
  if (looksLikePath(ref)) throw badRef(ref, `there is no folder at ${resolve(expanded)}`);

  const at = ref.indexOf('@');
  const repoId = at < 0 ? ref : ref.slice(0, at);
  const revision = at < 0 ? DEFAULT_REVISION : ref.slice(at + 1);
  const parts = repoId.split('/');
  if (!parts.every((p) => REPO_PART.test(p)) || repoId.includes('--') || repoId.includes('..') || repoId.endsWith('.git')) {
    throw badRef(ref, `there is no folder by that name and '${repoId}' is not a valid hub id`);
  }
  if (revision === '') throw badRef(ref, "nothing follows '@'");
  checkRevision(ref, revision);
  return { kind: 'hub', repoId, revision };
}

/** A glob in Python fnmatch's terms (what huggingface_hub's allow_patterns use): `*`, `?`, `[seq]`, `[!seq]`. */
function globToRegExp(pattern: string): RegExp {
  // A pattern naming a folder means everything inside it, as in huggingface_hub.
  const glob = pattern.endsWith('/') ? `${pattern}*` : pattern;
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') source += '.*';
    else if (c === '?') source += '.';
    else if (c === '[' && glob.indexOf(']', i + 2) > 0) {
      const close = glob.indexOf(']', i + 2);
      let set = glob.slice(i + 1, close);
      const negate = set.startsWith('!');
      if (negate) set = set.slice(1);
      source += `[${negate ? '^' : ''}${set.replace(/[\\^\]]/g, '\\$&')}]`;
      i = close;
    } else source += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 's');
}

/** True when the repo path matches one of the patterns (case-sensitive, `*` crossing `/`). */
export function matchesAny(path: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => globToRegExp(p).test(path));
}

/** Repo paths come from the server and become paths on disk: nothing absolute, nothing climbing out. */
function safeRepoPath(path: string): boolean {
  const parts = path.split('/');
  return !path.includes('\\') && !path.includes('\0') && parts.every((p) => p !== '' && p !== '.' && p !== '..');
}

const TRUE_VALUES = new Set(['1', 'ON', 'YES', 'TRUE']);

function isTrue(value: string | undefined): boolean {
  return value !== undefined && TRUE_VALUES.has(value.toUpperCase());
}

export interface HubSettings {
  endpoint: string;
  cacheDir: string;
  offline: boolean;
  token: string | undefined;
}

/** Reads the HF_* settings the way huggingface_hub does (constants.py, utils/_auth.py). */
export async function hubSettings(env: Env = process.env): Promise<HubSettings> {
  const endpoint = (env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, '');
  if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
    throw new HubError('config', `HF_ENDPOINT is not an http(s) URL: '${env.HF_ENDPOINT}'. Unset it to use ${DEFAULT_ENDPOINT}.`);
  }
  return {
    endpoint,
    cacheDir: hubCacheDir(env),
    offline: isTrue(env.HF_HUB_OFFLINE || env.TRANSFORMERS_OFFLINE),
    token: await readToken(env),
  };
}

async function readToken(env: Env): Promise<string | undefined> {
  const fromEnv = (env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || '').trim();
  if (fromEnv) return fromEnv;
  const file = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH, env) : join(hfHome(env), 'token');
  const saved = await readFile(file, 'utf8').catch(() => '');
  return saved.trim() || undefined;
}

/**
 * Resolves a model reference to a local folder: a folder as it is (made absolute, `~` expanded),
 * a hub id as the snapshot folder of its commit in the cache, downloading what is missing.
 */
export async function resolveModel(ref: string, opts: ResolveOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const parsed = await parseModelRef(ref, env);
  if (parsed.kind === 'local') return parsed.path;
  const settings = await hubSettings(env);
  const ctx: HubContext = {
    endpoint: settings.endpoint,
    repoId: parsed.repoId,
    revision: parsed.revision,
    token: settings.token,
    cacheDir: settings.cacheDir,
    signal: opts.signal,
  };
  const cache = new RepoCache(settings.cacheDir, parsed.repoId);
  if (settings.offline) return fromCache(ctx, cache);
  return download(ctx, cache, opts);
}

/** HF_HUB_OFFLINE: the cache or a message saying where it looked. */
async function fromCache(ctx: HubContext, cache: RepoCache): Promise<string> {
  const snapshot = await cache.snapshotFor(ctx.revision);
  if (snapshot) return snapshot;
  const commit = await cache.commitFor(ctx.revision);
  const looked = commit
    ? `${cache.snapshotDir(commit)} does not exist`
    : `there is no ${cache.refPath(ctx.revision)} naming the commit of '${ctx.revision}'`;
  throw new HubError(
    'offline',
    `HF_HUB_OFFLINE is set and ${ctx.repoId}@${ctx.revision} is not in the cache: ${looked} (cache: ${ctx.cacheDir}). ` +
      'Download it once with network access (unset HF_HUB_OFFLINE), point HF_HOME or HF_HUB_CACHE at a cache that has it, or pass a local model folder.',
  );
}

/**
 * When the hub cannot be asked (no network, hub down, token refused) a snapshot already in the
 * cache is still a good answer, as in huggingface_hub; a repo or revision the hub says does not
 * exist is not.
 */
function cacheMayAnswer(error: unknown): boolean {
  return error instanceof HubError && error.code !== 'repo_not_found' && error.code !== 'revision_not_found';
}

interface Planned {
  file: string;
  meta: FileMetadata;
}

async function download(ctx: HubContext, cache: RepoCache, opts: ResolveOptions): Promise<string> {
  let listing: RepoListing;
  try {
    listing = await listRepo(ctx);
  } catch (error) {
    const cached = cacheMayAnswer(error) ? await cache.snapshotFor(ctx.revision) : undefined;
    if (cached) return cached;
    throw error;
  }
  const { commit } = listing;
  const files = selectFiles(ctx, listing.files, opts.allowPatterns ?? DEFAULT_ALLOW_PATTERNS);

  // HEAD every missing file first: the sizes give one total for the progress bar, and a file
  // whose blob another revision already brought needs only its link.
  const planned: Planned[] = [];
  for (const file of files) {
    if (await cache.hasFile(commit, file)) continue;
    const meta = await fileMetadata(ctx, commit, file);
    if (meta.commit !== commit) {
      throw new HubError('protocol', `The hub listed ${ctx.repoId} at commit ${commit} but served ${file} from ${meta.commit}; run again.`);
    }
    if (await cache.hasBlob(meta.etag)) await cache.link(commit, file, meta.etag);
    else planned.push({ file, meta });
  }

  await fetchAll(ctx, cache, commit, planned, opts.onProgress);
  // The ref is written last: a branch name then never points offline at a half-downloaded snapshot.
  await cache.writeRef(ctx.revision, commit);
  return cache.snapshotDir(commit);
}

function selectFiles(ctx: HubContext, all: string[], patterns: readonly string[]): string[] {
  const unsafe = all.find((f) => !safeRepoPath(f));
  if (unsafe !== undefined) throw new HubError('protocol', `The hub listed a file path that is not safe to write: ${JSON.stringify(unsafe)}.`);
  const wanted = all.filter((f) => matchesAny(f, patterns));
  if (wanted.length === 0) {
    const pickles = all.filter((f) => /\.(bin|pt|pth|pkl|ckpt)$/.test(f));
    throw new HubError(
      'no_files',
      `None of the ${all.length} files of ${ctx.repoId}@${ctx.revision} match ${patterns.join(', ')}.` +
        (pickles.length ? ` It has pickled weights (${pickles.join(', ')}), which embtune does not load: use a repo with safetensors weights.` : ''),
    );
  }
  return wanted;
}

/** Downloads the planned files one after another, reporting progress over all of them. */
async function fetchAll(
  ctx: HubContext,
  cache: RepoCache,
  commit: string,
  planned: Planned[],
  onProgress: ((p: DownloadProgress) => void) | undefined,
): Promise<void> {
  const overallTotal = planned.reduce((sum, p) => sum + p.meta.size, 0);
  const started = Date.now();
  let finished = 0; // bytes of the files already done
  let received = 0; // bytes that came over the network in this call
  for (const [i, { file, meta }] of planned.entries()) {
    let onDisk: number | undefined;
    let lastReport = 0;
    const report = (status: DownloadProgress['status'], bytes: number): void => {
      if (onDisk !== undefined && bytes > onDisk) received += bytes - onDisk;
      onDisk = bytes;
      const now = Date.now();
      // At most ten reports a second per file, but always the first and the last.
      if (!onProgress || (status === 'progress' && lastReport !== 0 && now - lastReport < 100)) return;
      lastReport = now;
      const seconds = (now - started) / 1000;
      const rate = seconds > 0 ? received / seconds : 0;
      const overallBytes = finished + bytes;
      onProgress({
        status,
        repoId: ctx.repoId,
        file,
        fileIndex: i + 1,
        fileCount: planned.length,
        bytes,
        total: meta.size,
        overallBytes,
        overallTotal,
        bytesPerSecond: rate,
        etaSeconds: rate > 0 ? (overallTotal - overallBytes) / rate : undefined,
      });
    };
    await downloadBlob(ctx, cache, file, meta, (bytes) => report('progress', bytes));
    await cache.link(commit, file, meta.etag);
    report('done', meta.size);
    finished += meta.size;
  }
}
