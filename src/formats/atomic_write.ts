/**
 * Writing a file so that readers see either the old file or the complete new one, never a
 * truncated mix: the bytes go to a temporary file in the same folder (a rename is atomic only
 * within one file system), which is flushed to disk and then renamed over the target. The
 * safetensors Rust writer does the same since 24b0b285 ("write to tempfile + rename to preserve
 * mmap source"): truncating a file in place would also pull the pages from under any reader that
 * has it memory-mapped. If anything fails, the temporary file is removed and the target is left
 * as it was.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Appends bytes to the file being written. */
export type WriteBytes = (bytes: Uint8Array) => void;

export function writeFileAtomic(path: string, produce: (write: WriteBytes) => void): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  // 'wx': never reuse a file someone else made under the temporary name.
  let fd: number | undefined = openSync(temp, 'wx', 0o644);
  try {
    let position = 0;
    const write: WriteBytes = (bytes) => {
      let done = 0;
      // writeSync may write less than asked (large buffers, signals); loop until all is out.
      while (done < bytes.byteLength) {
        done += writeSync(fd!, bytes, done, bytes.byteLength - done, position + done);
      }
      position += bytes.byteLength;
    };
    produce(write);
    // Flush before the rename, so that a crash cannot leave the new name on a file whose data
    // never reached the disk.
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      // Already gone (or never made); the original error is the one to report.
    }
    throw err;
  }
}
