/**
 * The Hugging Face hub cache on disk, laid out as huggingface_hub lays it out so that embtune
 * and the Python tools (transformers, sentence-transformers, `hf download`) share one download
 * (layout: https://huggingface.co/docs/hub/local-cache):
 *
 *   <cache>/models--<org>--<name>/
 *     blobs/<etag>                  file contents, named by their hub etag: the git sha1, or for
 *                                   LFS files the sha256 of the content
 *     blobs/<etag>.incomplete       a download in progress, resumed by the next run
 *     snapshots/<commit>/<path>     relative symlinks to ../../blobs/<etag> (deeper for subfolders)
 *     refs/<revision>               the 40-hex commit a branch or tag pointed at, no newline
 *
 * Nothing here touches the network.
 */
import { copyFile, lstat, mkdir, readFile, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';

/** The environment the cache location is read from (process.env by default, a copy in tests). */
export type Env = NodeJS.ProcessEnv;

/** A full git commit id: the only revision that never moves. */
export const COMMIT_HASH = /^[0-9a-f]{40}$/;

function home(env: Env): string {
  return env.HOME || homedir();
}

/** Expands a leading `~` as a shell (and Python's expanduser) would. */
export function expandHome(path: string, env: Env): string {
  if (path === '~') return home(env);
  if (path.startsWith('~/')) return join(home(env), path.slice(2));
  return path;
}

/** `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (huggingface_hub constants.py). */
export function hfHome(env: Env): string {
  if (env.HF_HOME) return resolve(expandHome(env.HF_HOME, env));
  const cacheRoot = env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME, env) : join(home(env), '.cache');
  return resolve(cacheRoot, 'huggingface');
}

/**
 * `$HF_HUB_CACHE` (or its legacy name `HUGGINGFACE_HUB_CACHE`), else `$HF_HOME/hub`: the same
 * precedence as huggingface_hub, so both find the same files.
 */
export function hubCacheDir(env: Env): string {
  const explicit = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE;
  return explicit ? resolve(expandHome(explicit, env)) : join(hfHome(env), 'hub');
}

/** `org/name` → `models--org--name`: one flat folder per repo, case kept. */
export function repoFolderName(repoId: string): string {
  return ['models', ...repoId.split('/')].join('--');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** One repo's folder in the cache. Paths are built here only, from validated names. */
export class RepoCache {
  readonly dir: string;

  constructor(
    readonly cacheDir: string,
    readonly repoId: string,
  ) {
    this.dir = join(cacheDir, repoFolderName(repoId));
  }

  blobPath(etag: string): string {
    return join(this.dir, 'blobs', etag);
  }

  incompletePath(etag: string): string {
    return `${this.blobPath(etag)}.incomplete`;
  }

  snapshotDir(commit: string): string {
    return join(this.dir, 'snapshots', commit);
  }

  /** Where a repo file appears in a snapshot; repo paths always use `/`. */
  pointerPath(commit: string, filename: string): string {
    return join(this.snapshotDir(commit), ...filename.split('/'));
  }

  /** A revision such as `refs/pr/1` becomes nested folders under refs/, as in huggingface_hub. */
  refPath(revision: string): string {
    return join(this.dir, 'refs', ...revision.split('/'));
  }

  async readRef(revision: string): Promise<string | undefined> {
    try {
      const commit = (await readFile(this.refPath(revision), 'utf8')).trim();
      return COMMIT_HASH.test(commit) ? commit : undefined;
    } catch {
      return undefined;
    }
  }

  /** The commit a revision means, as far as the cache knows: a hash is itself, a name goes through refs/. */
  async commitFor(revision: string): Promise<string | undefined> {
    return COMMIT_HASH.test(revision) ? revision : this.readRef(revision);
  }

  /** The snapshot folder for a revision if the cache has one, else undefined. */
  async snapshotFor(revision: string): Promise<string | undefined> {
    const commit = await this.commitFor(revision);
    if (commit === undefined) return undefined;
    const dir = this.snapshotDir(commit);
    return (await exists(dir)) ? dir : undefined;
  }

  /** True when the snapshot has the file and its link is not dangling (stat follows the link). */
  async hasFile(commit: string, filename: string): Promise<boolean> {
    return exists(this.pointerPath(commit, filename));
  }

  async hasBlob(etag: string): Promise<boolean> {
    return exists(this.blobPath(etag));
  }

  /**
   * Records that `revision` points at `commit`. Written through a temporary file and a rename so
   * a concurrent reader (another embtune, a Python process) never sees half a hash; left alone
   * when already right, so a read-only cache that is complete still works.
   */
  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit || (await this.readRef(revision)) === commit) return;
    const path = this.refPath(revision);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(tmp, commit);
    await rename(tmp, path);
  }

  /**
   * Makes `snapshots/<commit>/<filename>` point at `blobs/<etag>` with a relative link, so the
   * cache still works after it is moved or mounted elsewhere. Where the file system refuses
   * symlinks (Windows without developer mode) the blob is copied instead, as huggingface_hub does.
   */
  async link(commit: string, filename: string, etag: string): Promise<void> {
    const pointer = this.pointerPath(commit, filename);
    const blob = this.blobPath(etag);
    await mkdir(dirname(pointer), { recursive: true });
    // A dangling or stale link from an interrupted run is replaced, never followed.
    const old = await lstat(pointer).catch(() => undefined);
    if (old) await unlink(pointer);
    try {
      await symlink(relative(dirname(pointer), blob), pointer);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw error;
      await copyFile(blob, pointer);
    }
  }

  /** Size of a partial download, 0 when there is none. */
  async incompleteSize(etag: string): Promise<number> {
    try {
      return (await stat(this.incompletePath(etag))).size;
    } catch {
      return 0;
    }
  }

  async removeIncomplete(etag: string): Promise<void> {
    await rm(this.incompletePath(etag), { force: true });
  }
}
