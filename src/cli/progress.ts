/**
 * A text progress bar for downloads, drawn on stderr so stdout stays clean for results:
 *
 *   [#########---------------]  38%  1.1 MB/2.9 MB  4.2 MB/s  ETA 1s  model.safetensors (2/4)
 *
 * On a terminal the line is redrawn in place; elsewhere (a log, CI) one line is written per
 * finished file, so logs do not fill with carriage returns.
 */
import type { DownloadProgress } from '../formats/hub.js';

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

/** One line describing the whole download; `width` is the number of cells in the bar. */
export function formatProgressLine(p: DownloadProgress, width = 24): string {
  const fraction = p.overallTotal > 0 ? Math.min(1, p.overallBytes / p.overallTotal) : 1;
  const filled = Math.round(fraction * width);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const rate = p.bytesPerSecond > 0 ? `  ${formatBytes(p.bytesPerSecond)}/s` : '';
  const eta = p.etaSeconds !== undefined && fraction < 1 ? `  ETA ${formatDuration(p.etaSeconds)}` : '';
  return `${bar} ${percent}  ${formatBytes(p.overallBytes)}/${formatBytes(p.overallTotal)}${rate}${eta}  ${p.file} (${p.fileIndex}/${p.fileCount})`;
}

/** The part of a stream the bar needs; process.stderr fits. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Returns an `onProgress` callback for resolveModel that draws on `stream`. */
export function createProgressBar(stream: ProgressStream = process.stderr): (p: DownloadProgress) => void {
  return (p) => {
    const last = p.status === 'done' && p.fileIndex === p.fileCount;
    if (stream.isTTY) {
      // Cut to the terminal width so the line never wraps, which would break the redraw.
      const line = formatProgressLine(p).slice(0, Math.max(20, (stream.columns ?? 80) - 1));
      stream.write(`\r${line}\x1b[K${last ? '\n' : ''}`);
    } else if (p.status === 'done') {
      stream.write(`downloaded ${p.repoId}/${p.file} (${formatBytes(p.total)}) [${p.fileIndex}/${p.fileCount}]\n`);
    }
  };
}
