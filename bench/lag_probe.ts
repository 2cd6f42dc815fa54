/**
 * The machine's own event-loop lag: a Node process whose event loop does nothing but run the
 * same 1 ms-resolution monitor the server's /metrics reads (src/serve/metrics.ts). bench/serve
 * runs it beside the server, at the HTTP thread's priority, so each phase reports the lag that the
 * scheduler and the VM alone impose on an idle event loop under the same load — the floor below
 * which no server-side change can bring the server's lag.
 *
 * Protocol (IPC): the parent sends 'read'; the probe answers {maxMs, p99Ms} for the time since the
 * last read and starts a new window. It exits when the parent disconnects.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface LagWindow {
  maxMs: number;
  p99Ms: number;
}

if (process.send === undefined) throw new Error('bench/lag_probe.js runs as a child with an IPC channel (fork), not on its own');

const lag = monitorEventLoopDelay({ resolution: 1 });
lag.enable();
process.on('message', (message) => {
  if (message !== 'read') return;
  const window: LagWindow = { maxMs: lag.max / 1e6, p99Ms: lag.percentile(99) / 1e6 };
  lag.reset();
  process.send!(window);
});
process.on('disconnect', () => process.exit(0));
