/** report: `report.html` (self-contained) and `summary.json` from every stage's manifest (src/pipeline/report.ts). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../formats/atomic_write.js';
import { writeJsonAtomic, type StageManifest } from '../manifest.js';
import { formatSummary, htmlPipelineReport, reportSummary } from '../report.js';
import { STAGE_ORDER, type StageDefinition, type StageName } from '../stage.js';
import { allStages } from './all.js';

export const reportStage: StageDefinition = {
  name: 'report',
  needs: (c) => allStages().filter((s) => s.name !== 'report' && s.enabled(c)).map((s) => s.name),
  enabled: () => true,
  section: () => ({}),
  inputs: () => [],
  async run(ctx) {
    const manifests = new Map<StageName, StageManifest>();
    for (const name of STAGE_ORDER) {
      const m = ctx.upstream(name);
      if (m) manifests.set(name, m);
    }
    const input = { title: 'embtune pipeline report', configFile: ctx.config.file, configText: readFileSync(ctx.config.file, 'utf8'), manifests };
    const html = htmlPipelineReport(input);
    writeFileAtomic(join(ctx.dir, 'report.html'), (write) => write(Buffer.from(html, 'utf8')));
    const summary = reportSummary(input);
    writeJsonAtomic(join(ctx.dir, 'summary.json'), summary);
    ctx.say(formatSummary(summary));
    return { html: 'report.html', summary: 'summary.json', gains: summary.gains };
  },
};
