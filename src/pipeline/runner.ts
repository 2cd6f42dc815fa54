/**
 * Runs a pipeline: plans it (plan.ts), prints the plan, then runs each stage that needs it.
 *
 * Atomic outputs: a stage that starts afresh writes into `<output_dir>/.<stage>.tmp-<pid>`; its
 * manifest goes in last and only then does the folder replace `<output_dir>/<stage>`, so a crash
 * leaves the previous result or none. A resumable stage (training) works in `<output_dir>/<stage>`
 * itself, marked by `started.json`, because its checkpoints are what a rerun continues from; its
 * manifest too is written last and atomically.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { PipelineConfig } from './config.js';
import { ContentHasher } from './hash.js';
import { MANIFEST_FILE, MANIFEST_FORMAT, STARTED_FILE, writeJsonAtomic, type StageManifest, type StartedMarker } from './manifest.js';
import { formatPlan, planPipeline, stageDir, type PlanOptions, type PlannedStage } from './plan.js';
import type { StageContext, StageDefinition, StageName } from './stage.js';
import type { Trainer } from '../train/trainer.js';

export interface RunOptions extends PlanOptions {
  /** Print the plan and stop. */
  dryRun?: boolean;
  say?: (line: string) => void;
  progress?: (line: string) => void;
  onTrainer?: (trainer: Trainer) => void;
  /** Run only up to and including this stage (tests). */
  until?: StageName;
}

export interface PipelineRun {
  plan: PlannedStage[];
  /** Manifests of every stage of this pipeline (ran or skipped), by stage; empty for a dry run. */
  manifests: Map<StageName, StageManifest>;
  /** Stage names that ran in this call. */
  ran: StageName[];
}

export async function runStages(config: PipelineConfig, stages: readonly StageDefinition[], options: RunOptions = {}): Promise<PipelineRun> {
  const say = options.say ?? (() => {});
  mkdirSync(config.outputDir, { recursive: true });
  if (!options.dryRun) removeLeftovers(config.outputDir);
  const hasher = new ContentHasher(join(config.outputDir, '.hash-cache.json'));
  const plan = planPipeline(config, stages, hasher, options);
  hasher.save();
  say(`pipeline ${config.file} → ${config.outputDir}\n${formatPlan(plan)}`);
  const manifests = new Map<StageName, StageManifest>();
  const ran: StageName[] = [];
  if (options.dryRun) return { plan, manifests, ran };
  const byName = new Map(stages.map((s) => [s.name, s]));
  for (const step of plan) {
    if (step.action === 'skip') {
      manifests.set(step.stage, step.manifest!);
    } else {
      const def = byName.get(step.stage)!;
      say(`\n== ${step.stage} (${step.reason})`);
      const manifest = await runStage(config, def, step, manifests, hasher, options);
      manifests.set(step.stage, manifest);
      ran.push(step.stage);
      say(`== ${step.stage} done in ${manifest.seconds.toFixed(1)} s`);
    }
    if (options.until === step.stage) break;
  }
  return { plan, manifests, ran };
}

/** Temporary stage folders a killed run left behind (one pipeline runs in an output dir at a time). */
function removeLeftovers(outputDir: string): void {
  for (const name of readdirSync(outputDir)) if (/^\.[a-z-]+\.(tmp|old)-\d+$/.test(name)) rmSync(join(outputDir, name), { recursive: true, force: true });
}

async function runStage(
  config: PipelineConfig,
  def: StageDefinition,
  step: PlannedStage,
  manifests: Map<StageName, StageManifest>,
  hasher: ContentHasher,
  options: RunOptions,
): Promise<StageManifest> {
  const finalDir = stageDir(config, def.name);
  const resume = step.action === 'resume';
  let dir: string;
  if (def.resumable) {
    if (!resume) rmSync(finalDir, { recursive: true, force: true });
    mkdirSync(finalDir, { recursive: true });
    dir = finalDir;
    if (!resume) writeJsonAtomic(join(dir, STARTED_FILE), { stage: def.name, key: step.key, startedAt: new Date().toISOString() } satisfies StartedMarker);
    else rmSync(join(dir, MANIFEST_FILE), { force: true });
  } else {
    dir = join(config.outputDir, `.${def.name}.tmp-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
  }
  const started = new Date();
  const t0 = performance.now();
  const ctx: StageContext = {
    config,
    dir,
    finalDir,
    resume,
    upstream: (stage) => manifests.get(stage),
    upstreamPath: (stage, output) => {
      const m = manifests.get(stage);
      const rel = m?.outputs[output];
      if (typeof rel !== 'string') throw new Error(`pipeline: stage '${def.name}' needs output '${output}' of stage '${stage}', which ${m ? 'it did not write' : 'did not run'}`);
      return resolve(stageDir(config, stage), rel);
    },
    say: options.say ?? (() => {}),
    progress: options.progress ?? options.say ?? (() => {}),
    onTrainer: (trainer) => options.onTrainer?.(trainer),
  };
  let outputs;
  try {
    outputs = await def.run(ctx);
  } catch (err) {
    if (!def.resumable) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const seconds = (performance.now() - t0) / 1000;
  const upstream = Object.fromEntries(step.needs.map((n) => [n, { key: manifests.get(n)!.key, files: manifests.get(n)!.files }]));
  const manifest: StageManifest = {
    format: MANIFEST_FORMAT,
    stage: def.name,
    key: step.key,
    config: def.section(config),
    inputs: step.inputs,
    upstream,
    outputs,
    files: hasher.files(dir, [MANIFEST_FILE, STARTED_FILE]),
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    seconds,
    resumed: resume,
  };
  writeJsonAtomic(join(dir, MANIFEST_FILE), manifest);
  if (def.resumable) rmSync(join(dir, STARTED_FILE), { force: true });
  else {
    // Replace the old folder: move it aside first so that the new one appears in one rename.
    const old = join(config.outputDir, `.${def.name}.old-${process.pid}`);
    if (existsSync(finalDir)) renameSync(finalDir, old);
    renameSync(dir, finalDir);
    rmSync(old, { recursive: true, force: true });
  }
  hasher.save();
  return manifest;
}
