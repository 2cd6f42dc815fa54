/**
 * The one progress bar of the CLI, on stderr so stdout stays clean for results:
 *
 *   embedding [##########--------------]  41%  1,024/2,500 texts  312.4 texts/s  ETA 5s
 *   train     [#####-------------------]  20%  40/200 steps  0.52 steps/s  ETA 5m08s  loss 1.2345  lr 5.9e-06
 *   download  [#########---------------]  38%  1.1 MB/2.9 MB  4.2 MB/s  ETA 1s  model.safetensors (2/4)
 *
 * On a terminal the line is redrawn in place (cut to the terminal's width, so it never wraps and
 * breaks the redraw); elsewhere (a log, CI) a line is written at each tenth of the work and at most
 * every 10 s between, so logs do not fill with carriage returns.
 */
import type { DownloadProgress } from '../formats/hub.js';

/** The part of a stream the bar needs; process.stderr fits. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Bytes in decimal units, as the hub and huggingface_hub's bars show sizes. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** What one line of a bar shows. */
export interface BarState {
  done: number;
  total: number;
  /** Units per second; 0 while unknown (no rate or ETA is shown). */
  rate: number;
  /** Seconds left; default: from the rate. */
  etaSeconds?: number;
  /** Shown after the ETA (a loss, the file being fetched). */
  extra?: string;
}

export interface BarFormat {
  /** Cells in the bar. */
  width?: number;
  /** Counts and rates as text; default en-US integers and `<rate> <unit>/s`. Bytes: `formatBytes`. */
  formatCount?: (n: number) => string;
}

/** One line of a bar (pure, so the format is tested on its own). */
export function formatBarLine(label: string, unit: string, state: BarState, format: BarFormat = {}): string {
  const { done, total, rate } = state;
  const width = format.width ?? 24;
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(fraction * width);
  const count = format.formatCount ?? ((n: number) => n.toLocaleString('en-US'));
  const units = unit === '' ? '' : ` ${unit}`;
  const rateText = format.formatCount ? `${format.formatCount(rate)}/s` : `${rate.toFixed(rate < 10 ? 2 : 1)}${units}/s`;
  const eta = state.etaSeconds ?? (rate > 0 ? (total - done) / rate : undefined);
  const parts = [
    `${label === '' ? '' : `${label} `}[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${`${Math.floor(fraction * 100)}%`.padStart(4)}`,
    `${count(done)}/${count(total)}${units}`,
    ...(rate > 0 ? [rateText] : []),
    ...(eta !== undefined && done < total ? [`ETA ${formatDuration(eta)}`] : []),
    ...(state.extra ? [state.extra] : []),
  ];
  return parts.join('  ');
}

export interface ProgressBarOptions extends BarFormat {
  stream?: ProgressStream;
  /** Work done before this bar started (a resumed run), left out of the rate (tqdm's `initial`). */
  initial?: number;
  /** Off a terminal, the longest gap between two lines. */
  logEverySeconds?: number;
}

export class ProgressBar {
  readonly #started = Date.now();
  readonly #stream: ProgressStream;
  readonly #options: ProgressBarOptions;
  #line = '';
  #lastTenth = -1;
  #lastLogged = 0;

  constructor(
    private readonly label: string,
    private readonly unit: string,
    options: ProgressBarOptions = {},
  ) {
    this.#stream = options.stream ?? process.stderr;
    this.#options = options;
  }

  /** Redraws with `done` of `total`; the rate is measured, unless `given` brings its own. */
  update(done: number, total: number, extra = '', given?: { rate: number; etaSeconds?: number }): void {
    const seconds = (Date.now() - this.#started) / 1000;
    const rate = given?.rate ?? (seconds > 0 ? Math.max(0, done - (this.#options.initial ?? 0)) / seconds : 0);
    this.#line = formatBarLine(this.label, this.unit, { done, total, rate, etaSeconds: given?.etaSeconds, extra }, this.#options);
    if (this.#stream.isTTY) {
      this.#stream.write(`\r${this.#fit(this.#line)}\x1b[K`);
      return;
    }
    const tenth = Math.floor((total > 0 ? Math.min(1, done / total) : 1) * 10);
    const now = Date.now();
    if (tenth !== this.#lastTenth || now - this.#lastLogged >= (this.#options.logEverySeconds ?? 10) * 1000) {
      this.#lastTenth = tenth;
      this.#lastLogged = now;
      this.#stream.write(`${this.#line}\n`);
    }
  }

  /** A line above the bar (an eval result, a checkpoint saved); the bar is drawn again under it. */
  note(text: string): void {
    this.#stream.write(this.#stream.isTTY ? `\r\x1b[K${text}\n${this.#fit(this.#line)}` : `${text}\n`);
  }

  /** Ends the bar's line and prints `<summary> in <time>`. */
  finish(summary: string): void {
    if (this.#stream.isTTY && this.#line !== '') this.#stream.write('\n');
    this.#stream.write(`${summary} in ${formatDuration((Date.now() - this.#started) / 1000)}\n`);
  }

  #fit(line: string): string {
    return line.slice(0, Math.max(20, (this.#stream.columns ?? 80) - 1));
  }
}

/**
 * An `onProgress` callback for resolveModel: the bar over every file of the call, with the hub's
 * own rate and ETA (it knows what a resumed download already had); off a terminal, one line per
 * finished file instead.
 */
export function createProgressBar(stream: ProgressStream = process.stderr): (p: DownloadProgress) => void {
  const bar = new ProgressBar('download', '', { stream, formatCount: formatBytes });
  return (p) => {
    if (stream.isTTY) {
      bar.update(p.overallBytes, p.overallTotal, `${p.file} (${p.fileIndex}/${p.fileCount})`, { rate: p.bytesPerSecond, etaSeconds: p.etaSeconds });
      if (p.status === 'done' && p.fileIndex === p.fileCount) stream.write('\n');
    } else if (p.status === 'done') {
      stream.write(`downloaded ${p.repoId}/${p.file} (${formatBytes(p.total)}) [${p.fileIndex}/${p.fileCount}]\n`);
    }
  };
}
