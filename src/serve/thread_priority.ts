/** Thread priorities of the server's worker threads (`--worker-nice`). */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * Lowers the calling thread's scheduling priority by `levels` (Linux: setpriority on the thread's
 * own id, which the kernel applies to that thread alone). The HTTP thread then runs first whenever
 * a worker thread also wants a core: its event loop stays responsive while the model computes.
 * Returns the nice value set, or undefined where threads cannot be reniced (elsewhere than Linux).
 */
export function lowerPriority(levels: number): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid)) return undefined;
    const nice = Math.min(19, getPriority(tid) + levels);
    if (levels > 0) setPriority(tid, nice);
    return getPriority(tid);
  } catch {
    return undefined;
  }
}
