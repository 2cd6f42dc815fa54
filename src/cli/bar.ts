/**
 * A progress bar for counted work (texts embedded, pairs scored), on stderr so stdout stays clean:
 *
 *   embedding [##########--------------]  41%  1,024/2,500 texts  312.4 texts/s  ETA 5s
 *
 * Redrawn in place on a terminal; elsewhere one line every 10% and a summary at the end.
 */
import { formatDuration, type ProgressStream } from './progress.js';

export class CountBar {
  private readonly started = Date.now();
  private lastDecile = -1;

  constructor(
    private readonly label: string,
    private readonly unit: string,
    private readonly stream: ProgressStream = process.stderr,
  ) {}

  update(done: number, total: number, extra = ''): void {
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const seconds = (Date.now() - this.started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const eta = rate > 0 && done < total ? `  ETA ${formatDuration((total - done) / rate)}` : '';
    const width = 24;
    const filled = Math.round(fraction * width);
    const line =
      `${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${`${Math.floor(fraction * 100)}%`.padStart(4)}  ` +
      `${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} ${this.unit}  ${rate.toFixed(1)} ${this.unit}/s${eta}${extra}`;
    if (this.stream.isTTY) {
      this.stream.write(`\r${line.slice(0, Math.max(20, (this.stream.columns ?? 80) - 1))}\x1b[K`);
    } else {
      const decile = Math.floor(fraction * 10);
      if (decile !== this.lastDecile) {
        this.lastDecile = decile;
        this.stream.write(`${line}\n`);
      }
    }
  }

  finish(summary: string): void {
    if (this.stream.isTTY) this.stream.write('\n');
    this.stream.write(`${summary} in ${formatDuration((Date.now() - this.started) / 1000)}\n`);
  }
}
