/**
 * Which stages run and why. A stage's key is sha256 over its name, its config section, the
 * content hashes of its outside inputs and the keys of the upstream stages it reads, so a change
 * anywhere upstream reaches every stage after it. A stage is skipped only when its manifest has
 * the same key and every file it recorded is still there with the same size; it resumes when an
 * unfinished run under the same key left a `started.json` (training continues from its last
 * checkpoint); `--from STAGE` reruns that stage and everything after it from scratch.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { PipelineConfig } from './config.js';
import { ContentHasher, hashJson, stableJson } from './hash.js';
import { readManifest, readStarted, type StageManifest } from './manifest.js';
import { STAGE_ORDER, type StageDefinition, type StageName } from './stage.js';

export type StageAction = 'run' | 'resume' | 'skip';

export interface PlannedStage {
  stage: StageName;
  action: StageAction;
  reason: string;
  key: string;
  needs: StageName[];
  /** Outside inputs and their hashes. */
  inputs: Record<string, string>;
  /** The finished manifest a skipped stage reuses. */
  manifest?: StageManifest;
}

export interface PlanOptions {
  /** Rerun this stage and every stage after it. */
  from?: StageName;
}

export function stageDir(config: PipelineConfig, stage: StageName): string {
  return join(config.outputDir, stage);
}

export function planPipeline(config: PipelineConfig, stages: readonly StageDefinition[], hasher: ContentHasher, options: PlanOptions = {}): PlannedStage[] {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const enabled = STAGE_ORDER.map((n) => byName.get(n)).filter((s): s is StageDefinition => s !== undefined && s.enabled(config));
  if (options.from && !enabled.some((s) => s.name === options.from)) {
    throw new Error(`--from ${options.from}: that stage is not part of this pipeline (stages: ${enabled.map((s) => s.name).join(', ')})`);
  }
  const planned = new Map<StageName, PlannedStage>();
  let forcing = false;
  for (const def of enabled) {
    if (def.name === options.from) forcing = true;
    const needs = def.needs(config).filter((n) => planned.has(n));
    const inputs = Object.fromEntries(def.inputs(config).map((p) => [p, hasher.path(p)]));
    const section = def.section(config);
    const key = hashJson({ stage: def.name, config: section, inputs, upstream: needs.map((n) => [n, planned.get(n)!.key]) });
    const dir = stageDir(config, def.name);
    const manifest = readManifest(dir);
    const decide = (action: StageAction, reason: string): PlannedStage => ({ stage: def.name, action, reason, key, needs, inputs, manifest: action === 'skip' ? manifest : undefined });
    let entry: PlannedStage;
    const rerunning = needs.find((n) => planned.get(n)!.action !== 'skip');
    if (forcing) entry = decide('run', def.name === options.from ? `--from ${options.from}` : `after --from ${options.from}`);
    else if (rerunning) entry = decide('run', `upstream stage '${rerunning}' reruns`);
    else if (manifest && manifest.key === key) {
      const missing = missingFile(dir, manifest);
      const stale = staleUpstream(manifest, needs, planned);
      if (missing) entry = decide('run', `its output ${missing} is missing or changed`);
      else if (stale) entry = decide('run', `upstream stage '${stale}' has new outputs`);
      else entry = decide('skip', `up to date (finished ${manifest.finishedAt}, ${manifest.seconds.toFixed(1)} s)`);
    } else {
      const started = readStarted(dir);
      if (def.resumable && started && started.key === key) entry = decide('resume', `an unfinished run (started ${started.startedAt}) continues from its last checkpoint`);
      else if (manifest) entry = decide('run', whatChanged(manifest, section, inputs, needs, planned));
      else if (started) entry = decide('run', `an unfinished run (started ${started.startedAt}) had other settings; it starts over`);
      else entry = decide('run', 'not run yet');
    }
    planned.set(def.name, entry);
  }
  return [...planned.values()];
}

/** The first recorded output file that is gone or has another size. */
function missingFile(dir: string, manifest: StageManifest): string | undefined {
  for (const [rel, { size }] of Object.entries(manifest.files)) {
    const p = join(dir, rel);
    if (!existsSync(p) || statSync(p).size !== size) return rel;
  }
  return undefined;
}

/** An upstream stage whose files differ from those this stage read. */
function staleUpstream(manifest: StageManifest, needs: StageName[], planned: Map<StageName, PlannedStage>): StageName | undefined {
  for (const n of needs) {
    const up = planned.get(n)!.manifest;
    const recorded = manifest.upstream[n];
    if (!up || !recorded || stableJson(up.files) !== stableJson(recorded.files)) return n;
  }
  return undefined;
}

/** Says what changed since the recorded run: config keys, inputs, or upstream stages. */
function whatChanged(manifest: StageManifest, section: unknown, inputs: Record<string, string>, needs: StageName[], planned: Map<StageName, PlannedStage>): string {
  const changes = configChanges(manifest.config, section, '');
  if (changes.length > 0) return `config changed: ${changes.slice(0, 4).join(', ')}${changes.length > 4 ? ', …' : ''}`;
  for (const [p, h] of Object.entries(inputs)) if (manifest.inputs[p] !== h) return `input ${p} changed`;
  for (const p of Object.keys(manifest.inputs)) if (!(p in inputs)) return `input ${p} is no longer used`;
  for (const n of needs) if (manifest.upstream[n]?.key !== planned.get(n)!.key) return `upstream stage '${n}' changed`;
  return 'its inputs changed';
}

function configChanges(before: unknown, after: unknown, path: string): string[] {
  if (stableJson(before) === stableJson(after)) return [];
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isMap(before) && isMap(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => configChanges(before[k], after[k], path ? `${path}.${k}` : k));
  }
  return [`${path || 'value'} ${short(before)} → ${short(after)}`];
}

function short(v: unknown): string {
  const s = v === undefined ? '(unset)' : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}…` : s;
}

/** The plan as `--dry-run` prints it. */
export function formatPlan(plan: readonly PlannedStage[]): string {
  const width = Math.max(...plan.map((p) => p.stage.length));
  return plan.map((p) => `  ${p.stage.padEnd(width)}  ${p.action.padEnd(6)}  ${p.reason}`).join('\n');
}
