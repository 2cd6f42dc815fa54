/**
 * The asynchronous sibling of src/formats/atomic_write.ts, for outputs produced from a stream
 * (a converted file larger than memory): the bytes go to a temporary file in the target's folder,
 * which is flushed and then renamed over the target, so readers see the old file or the complete
 * new one, never a truncated mix. On any failure the temporary file is removed and the target is
 * left as it was. (Same reasoning as atomic_write.ts; kept separate because that one's producer is
 * synchronous.)
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Appends bytes to the file being written. */
export type WriteBytesAsync = (bytes: Uint8Array) => Promise<void>;

export async function writeFileAtomicAsync(path: string, produce: (write: WriteBytesAsync) => Promise<void>): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  // 'wx': never reuse a file someone else made under the temporary name.
  const handle = await open(temp, 'wx', 0o644);
  let closed = false;
  try {
    await produce(async (bytes) => {
      let done = 0;
      // write may write less than asked; loop until all is out.
      while (done < bytes.byteLength) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done);
        done += bytesWritten;
      }
    });
    await handle.sync();
    await handle.close();
    closed = true;
    await rename(temp, path);
  } catch (err) {
    if (!closed) await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined); // already gone: the original error is the one to report
    throw err;
  }
}
