/** Every stage of the pipeline, in order. */
import type { StageDefinition } from '../stage.js';
import { evalStage, fuseEvalStage } from './eval.js';
import { fuseStage } from './fuse.js';
import { initStage } from './init.js';
import { mergeStage } from './merge.js';
import { mineStage } from './mine.js';
import { pretrainStage } from './pretrain.js';
import { reportStage } from './report.js';
import { splitStage } from './split.js';
import { trainStage } from './train.js';

/** A function, so that report.ts (which lists the stages) and this module can import each other. */
export function allStages(): StageDefinition[] {
  return [splitStage, initStage, pretrainStage, mineStage, trainStage, evalStage, mergeStage, fuseStage, fuseEvalStage, reportStage];
}
