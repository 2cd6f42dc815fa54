/**
 * A stage's manifest, `<output_dir>/<stage>/manifest.json`, written last and atomically: the
 * stage's key, its config section, the content hashes of what it read (outside inputs and the
 * upstream stages' output files), its outputs, the hashes of the files it wrote, and its timings.
 * A stage folder without a manifest is unfinished. `started.json` marks a resumable stage's
 * unfinished run with the key it was started under.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../formats/atomic_write.js';
import type { StageName, StageOutputs } from './stage.js';

export const MANIFEST_FORMAT = 'embtune-pipeline-stage/1';
export const MANIFEST_FILE = 'manifest.json';
export const STARTED_FILE = 'started.json';

export interface StageManifest {
  format: typeof MANIFEST_FORMAT;
  stage: StageName;
  /** sha256 over (stage, config section, input hashes, upstream keys). */
  key: string;
  config: unknown;
  /** Outside inputs: absolute path → content sha256. */
  inputs: Record<string, string>;
  /** Upstream stages: their keys and the hashes of the files they wrote. */
  upstream: Record<string, { key: string; files: Record<string, FileRecord> }>;
  outputs: StageOutputs;
  /** Every file the stage wrote (relative to its folder, manifest excluded). */
  files: Record<string, FileRecord>;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  /** True when the stage continued an interrupted run from its last checkpoint. */
  resumed: boolean;
}

export interface FileRecord {
  sha256: string;
  size: number;
}

export interface StartedMarker {
  stage: StageName;
  key: string;
  startedAt: string;
}

function readJson<T>(file: string): T | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined; // a damaged manifest is an unfinished stage
  }
}

export function readManifest(stageDir: string): StageManifest | undefined {
  const m = readJson<StageManifest>(join(stageDir, MANIFEST_FILE));
  return m && m.format === MANIFEST_FORMAT ? m : undefined;
}

export function readStarted(stageDir: string): StartedMarker | undefined {
  return readJson<StartedMarker>(join(stageDir, STARTED_FILE));
}

export function writeJsonAtomic(file: string, value: unknown): void {
  const text = `${JSON.stringify(value, null, 2)}\n`;
  writeFileAtomic(file, (write) => write(Buffer.from(text, 'utf8')));
}
