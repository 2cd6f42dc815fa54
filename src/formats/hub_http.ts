/**
 * The hub's HTTP protocol, as huggingface_hub speaks it (file_download.py, hf_api.py, utils/_http.py):
 *
 * - `GET {endpoint}/api/models/{repo}/revision/{rev}` → JSON `{ sha, siblings: [{ rfilename }] }`:
 *   the commit a revision is at and the files it has.
 * - `HEAD {endpoint}/{repo}/resolve/{commit}/{file}`, redirects not followed: `X-Repo-Commit`,
 *   `X-Linked-Etag` (LFS: the sha256 of the content) or else `ETag` (git sha1), `X-Linked-Size` or
 *   else `Content-Length`, and for LFS files a 302 whose `Location` is the CDN address to GET.
 * - `Authorization: Bearer <HF_TOKEN>` goes to the endpoint only, never to a CDN on another host
 *   (its addresses are signed already, and a token must not leak to a third party).
 * - Errors come as 401 (private, gated, or missing: the hub does not say which), 403 (gated and
 *   not granted), 404 with `X-Error-Code` RepoNotFound / RevisionNotFound / EntryNotFound.
 *
 * Every failure is a HubError whose message says what went wrong and what to do about it.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { RepoCache } from './hub_cache.js';

export type HubErrorCode =
  | 'bad_ref'
  | 'config'
  | 'unauthorized'
  | 'forbidden'
  | 'repo_not_found'
  | 'revision_not_found'
  | 'file_not_found'
  | 'no_files'
  | 'network'
  | 'offline'
  | 'http'
  | 'protocol'
  | 'incomplete'
  | 'checksum';

export class HubError extends Error {
  constructor(
    readonly code: HubErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HubError';
  }
}

/** Who is asked and for what: enough to write an error message a user can act on. */
export interface HubContext {
  endpoint: string;
  repoId: string;
  revision: string;
  token: string | undefined;
  cacheDir: string;
  signal: AbortSignal | undefined;
}

/** What a HEAD on a resolve URL says about one file. */
export interface FileMetadata {
  commit: string;
  /** Names the blob; for LFS files the sha256 of the content. */
  etag: string;
  size: number;
  /** Where to GET the bytes: the CDN for LFS files, the resolve URL itself otherwise. */
  location: string;
}

export interface RepoListing {
  commit: string;
  files: string[];
}

/** A sha256 etag is a checksum the hub vouches for; a 40-hex git sha1 is not checked here. */
const SHA256 = /^[0-9a-f]{64}$/;
/** An etag becomes a file name in blobs/: nothing that could climb out of it. */
const SAFE_ETAG = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const MAX_REDIRECTS = 10;

export function resolveUrl(ctx: HubContext, commit: string, filename: string): string {
  const path = filename.split('/').map(encodeURIComponent).join('/');
  return `${ctx.endpoint}/${ctx.repoId}/resolve/${encodeURIComponent(commit)}/${path}`;
}

function sameOrigin(a: string, b: string): boolean {
  return new URL(a).origin === new URL(b).origin;
}

/**
 * Headers for one request. `identity` keeps the server from compressing, so sizes and Range
 * offsets count the bytes that land on disk (huggingface_hub sends the same for its HEAD).
 */
function headersFor(ctx: HubContext, url: string, extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'embtune', ...extra };
  if (ctx.token && sameOrigin(url, ctx.endpoint)) headers.authorization = `Bearer ${ctx.token}`;
  return headers;
}

function networkError(ctx: HubContext, url: string, error: unknown): HubError {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (error as Error).message;
  return new HubError(
    'network',
    `Cannot reach the hub at ${ctx.endpoint} (HF_ENDPOINT) to fetch ${ctx.repoId}: ${why} (${url}). ` +
      `Check the network or HF_ENDPOINT; to work without a network set HF_HUB_OFFLINE=1 with the model ` +
      `already in ${ctx.cacheDir}, or pass a local model folder instead of a hub id.`,
    { cause: error },
  );
}

/** One request, redirects left to the caller; connection failures become a 'network' HubError. */
async function send(ctx: HubContext, method: string, url: string, extra?: Record<string, string>): Promise<Response> {
  try {
    return await fetch(url, { method, headers: headersFor(ctx, url, extra), redirect: 'manual', signal: ctx.signal });
  } catch (error) {
    if (ctx.signal?.aborted) throw error;
    throw networkError(ctx, url, error);
  }
}

function isRedirect(res: Response): boolean {
  return res.status >= 300 && res.status < 400 && res.headers.has('location');
}

/** Frees the connection of a response whose body is not wanted. */
async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}

/** Turns a refusal into a message that says what the user should do. */
export async function httpError(ctx: HubContext, res: Response, url: string, filename?: string): Promise<HubError> {
  await discard(res);
  const code = res.headers.get('x-error-code');
  const detail = res.headers.get('x-error-message');
  const page = `${ctx.endpoint}/${ctx.repoId}`;
  const said = detail ? ` The hub said: ${detail}.` : '';
  if (res.status === 401) {
    const fix = ctx.token
      ? 'HF_TOKEN is set but the hub refused it: check that the token is valid and can read this repo.'
      : 'If it exists, set HF_TOKEN to a Hugging Face access token that can read it.';
    return new HubError(
      'unauthorized',
      `401 Unauthorized for ${ctx.repoId}: the repo is private or gated, or does not exist (the hub answers 401 to all three).${said} ${fix} Check the id at ${page}.`,
    );
  }
  if (res.status === 403) {
    return new HubError(
      'forbidden',
      `403 Forbidden for ${ctx.repoId}: the repo is gated or your token lacks permission.${said} ` +
        `Accept the model's terms at ${page} with the account that owns HF_TOKEN, or set HF_TOKEN to a token with read access.`,
    );
  }
  if (res.status === 404 && code === 'RevisionNotFound') {
    return new HubError(
      'revision_not_found',
      `Revision '${ctx.revision}' not found in ${ctx.repoId}: check the branch, tag or 40-hex commit after '@' (${page}).`,
    );
  }
  if (res.status === 404 && code === 'EntryNotFound' && filename !== undefined) {
    return new HubError('file_not_found', `File '${filename}' not found in ${ctx.repoId} at ${ctx.revision}, though the hub listed it; try again.`);
  }
  if (res.status === 404) {
    return new HubError(
      'repo_not_found',
      `Repo ${ctx.repoId} not found at ${ctx.endpoint}: check the id (org/name, as on ${page}).` +
        (ctx.token ? '' : ' A private repo also needs HF_TOKEN.'),
    );
  }
  return new HubError(
    'http',
    `${res.status} ${res.statusText} from ${url}.${said} The hub may be down: retry later, or set HF_HUB_OFFLINE=1 to use the cache in ${ctx.cacheDir}.`,
  );
}

/** The commit a revision is at now, and the files it holds. */
export async function listRepo(ctx: HubContext): Promise<RepoListing> {
  const url = `${ctx.endpoint}/api/models/${ctx.repoId}/revision/${encodeURIComponent(ctx.revision)}`;
  const res = await send(ctx, 'GET', url, { accept: 'application/json' });
  if (!res.ok) throw await httpError(ctx, res, url);
  let body: unknown;
  try {
    body = await res.json();
  } catch (error) {
    throw new HubError('protocol', `${url} did not answer JSON: is HF_ENDPOINT (${ctx.endpoint}) a Hugging Face hub?`, { cause: error });
  }
  const { sha, siblings } = (body ?? {}) as { sha?: unknown; siblings?: unknown };
  if (typeof sha !== 'string' || !/^[0-9a-f]{40}$/.test(sha) || !Array.isArray(siblings)) {
    throw new HubError('protocol', `${url} gave no commit 'sha' and 'siblings' list: is HF_ENDPOINT (${ctx.endpoint}) a Hugging Face hub?`);
  }
  const files = siblings
    .map((s: unknown) => (s as { rfilename?: unknown } | null)?.rfilename)
    .filter((f): f is string => typeof f === 'string');
  return { commit: sha, files };
}

/** Quotes are part of an ETag's syntax, not of the value; `W/` marks a weak one. */
function normalizeEtag(value: string | null): string | undefined {
  if (value === null) return undefined;
  return value.replace(/^W\//, '').replace(/^"|"$/g, '');
}

function sizeHeader(value: string | null): number | undefined {
  if (value === null || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value);
}

/**
 * HEADs a resolve URL. A redirect within the endpoint that says nothing about the file (a
 * renamed repo) is followed; one that carries X-Linked-Etag, or leads to another host, points at
 * the CDN copy of an LFS file, and its address is where the bytes come from.
 */
export async function fileMetadata(ctx: HubContext, commit: string, filename: string): Promise<FileMetadata> {
  let url = resolveUrl(ctx, commit, filename);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await send(ctx, 'HEAD', url);
    await discard(res);
    if (!res.ok && !isRedirect(res)) throw await httpError(ctx, res, url, filename);
    const location = isRedirect(res) ? new URL(res.headers.get('location')!, url).href : url;
    if (isRedirect(res) && sameOrigin(location, url) && !res.headers.has('x-linked-etag')) {
      url = location;
      continue;
    }
    const repoCommit = res.headers.get('x-repo-commit');
    const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
    const size = sizeHeader(res.headers.get('x-linked-size')) ?? (isRedirect(res) ? undefined : sizeHeader(res.headers.get('content-length')));
    const problem =
      repoCommit === null ? 'no X-Repo-Commit header' : etag === undefined ? 'no ETag' : size === undefined ? 'no size (X-Linked-Size or Content-Length)' : undefined;
    if (problem) {
      throw new HubError(
        'protocol',
        `${url} answered with ${problem}, so it is not a Hugging Face hub file: check HF_ENDPOINT (${ctx.endpoint}) and any proxy or firewall.`,
      );
    }
    if (!SAFE_ETAG.test(etag!)) throw new HubError('protocol', `${url} gave an ETag that cannot name a file: ${JSON.stringify(etag)}.`);
    return { commit: repoCommit!, etag: etag!, size: size!, location };
  }
  throw new HubError('protocol', `More than ${MAX_REDIRECTS} redirects for ${resolveUrl(ctx, commit, filename)}.`);
}

/** GET with redirects followed by hand, so the token is dropped as soon as a hop leaves the endpoint. */
async function getFollowing(ctx: HubContext, start: string, filename: string, range: number): Promise<Response> {
  let url = start;
  const extra = range > 0 ? { range: `bytes=${range}-` } : undefined;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await send(ctx, 'GET', url, extra);
    if (!isRedirect(res)) {
      if (!res.ok && res.status !== 416) throw await httpError(ctx, res, url, filename);
      return res;
    }
    await discard(res);
    url = new URL(res.headers.get('location')!, url).href;
  }
  throw new HubError('protocol', `More than ${MAX_REDIRECTS} redirects for ${start}.`);
}

/** The first byte a 206 answer carries, from `Content-Range: bytes START-END/TOTAL`. */
function rangeStart(res: Response): number | undefined {
  const match = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
  return match ? Number(match[1]) : undefined;
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Appends the body to the file (or writes it from the start), reporting the bytes on disk.
 * On an abort or a dropped connection the bytes so far stay in the file for the next run.
 */
async function writeBody(res: Response, path: string, append: boolean, already: number, onBytes: (bytes: number) => void): Promise<number> {
  const file = await open(path, append ? 'a' : 'w');
  let bytes = already;
  try {
    if (res.body) {
      for await (const chunk of res.body) {
        await file.write(chunk);
        bytes += chunk.byteLength;
        onBytes(bytes);
      }
    }
  } finally {
    await file.close();
  }
  return bytes;
}

/**
 * Downloads one file into `blobs/<etag>`: into `<etag>.incomplete` first, resuming it with a
 * Range request when a previous run left one, then verified and renamed into place, so a blob
 * under its final name is always whole. A server that ignores Range (answers 200) or cannot
 * serve it (416) is answered by starting over.
 */
export async function downloadBlob(
  ctx: HubContext,
  cache: RepoCache,
  filename: string,
  meta: FileMetadata,
  onBytes: (bytes: number) => void,
): Promise<void> {
  const partial = cache.incompletePath(meta.etag);
  await mkdir(dirname(partial), { recursive: true });
  let have = await cache.incompleteSize(meta.etag);
  if (have > meta.size) {
    await cache.removeIncomplete(meta.etag);
    have = 0;
  }
  if (have < meta.size) {
    let res = await getFollowing(ctx, meta.location, filename, have);
    const resumed = have > 0 && res.status === 206 && rangeStart(res) === have;
    if (have > 0 && !resumed) {
      // 200: the server ignored Range and is sending the whole file, which is used as it comes.
      // 416 or a range we did not ask for: the partial file is not trusted; fetch it all again.
      if (res.status !== 200) {
        await discard(res);
        res = await getFollowing(ctx, meta.location, filename, 0);
      }
      have = 0;
    }
    if (res.status === 416) throw await httpError(ctx, res, meta.location, filename);
    onBytes(have);
    have = await writeBody(res, partial, resumed, have, onBytes);
  }
  if (have !== meta.size) {
    if (have > meta.size) await cache.removeIncomplete(meta.etag);
    throw new HubError(
      'incomplete',
      `Download of ${ctx.repoId}/${filename} stopped at ${have} of ${meta.size} bytes. ` +
        (have < meta.size ? 'Run again to resume it.' : 'The partial file was removed; run again.'),
    );
  }
  if (SHA256.test(meta.etag)) {
    const actual = await sha256Of(partial);
    if (actual !== meta.etag) {
      await cache.removeIncomplete(meta.etag);
      throw new HubError(
        'checksum',
        `Checksum mismatch for ${ctx.repoId}/${filename}: the hub says sha256 ${meta.etag}, the bytes received hash to ${actual}. ` +
          `The corrupt download was deleted; run again, and if it repeats check for a proxy rewriting downloads from ${new URL(meta.location).host}.`,
      );
    }
  }
  await rename(partial, cache.blobPath(meta.etag));
}
