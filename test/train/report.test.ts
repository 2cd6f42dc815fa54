// The training report (src/train/report.ts): SVG charts are well-formed XML with one marker per
// finite point inside the plot, survive a single point, NaN values and empty eval series; the
// terminal table and the HTML summary show first / best / last values worked by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatSummaryTable,
  formatTick,
  htmlReport,
  lineChartSvg,
  niceAxis,
  summarizeEvalMetrics,
  trainingCharts,
} from '../../src/train/report.js';

// ------------------------------------------------------------------ a small XML well-formedness check

const ENTITY = /^&(?:lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/;
const NAME = /^[A-Za-z_:][-A-Za-z0-9_:.]*/;

interface XmlElement {
  name: string;
  attributes: Map<string, string>;
  children: XmlElement[];
}

/** Parses `text` as one XML element (no DTD); throws, naming the offset, on anything ill-formed. */
function parseXml(text: string): XmlElement {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`not well-formed at offset ${i}: ${why} (…${text.slice(Math.max(0, i - 30), i + 30)}…)`);
  };
  const checkText = (chunk: string) => {
    for (let j = chunk.indexOf('&'); j >= 0; j = chunk.indexOf('&', j + 1)) if (!ENTITY.test(chunk.slice(j))) fail('a bare &');
    if (chunk.includes('>') && chunk.includes(']]>')) fail(']]> in text');
  };
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const element = (): XmlElement => {
    if (text[i] !== '<') fail('expected <');
    i++;
    const name = NAME.exec(text.slice(i))?.[0] ?? fail('expected a tag name');
    i += name.length;
    const attributes = new Map<string, string>();
    for (;;) {
      const before = i;
      skipSpace();
      if (text.startsWith('/>', i)) {
        i += 2;
        return { name, attributes, children: [] };
      }
      if (text[i] === '>') {
        i++;
        break;
      }
      if (i === before) fail('attributes must be separated by blanks');
      const attribute = NAME.exec(text.slice(i))?.[0] ?? fail('expected an attribute name');
      i += attribute.length;
      if (text[i] !== '=') fail('expected =');
      const quote = text[++i];
      if (quote !== '"' && quote !== "'") fail('attribute values must be quoted');
      const end = text.indexOf(quote!, i + 1);
      if (end < 0) fail('unterminated attribute value');
      const value = text.slice(i + 1, end);
      if (value.includes('<')) fail('< in an attribute value');
      checkText(value);
      if (attributes.has(attribute)) fail(`duplicate attribute ${attribute}`);
      attributes.set(attribute, value);
      i = end + 1;
    }
    const children: XmlElement[] = [];
    for (;;) {
      const next = text.indexOf('<', i);
      if (next < 0) fail(`unclosed <${name}>`);
      checkText(text.slice(i, next));
      i = next;
      if (text.startsWith('</', i)) {
        i += 2;
        const closing = NAME.exec(text.slice(i))?.[0];
        if (closing !== name) fail(`</${closing}> closes <${name}>`);
        i += name.length;
        skipSpace();
        if (text[i] !== '>') fail('expected > after the closing tag');
        i++;
        return { name, attributes, children };
      }
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
        continue;
      }
      children.push(element());
    }
  };
  skipSpace();
  const root = element();
  skipSpace();
  if (i !== text.length) fail('content after the root element');
  return root;
}

function all(root: XmlElement, name: string): XmlElement[] {
  return [...(root.name === name ? [root] : []), ...root.children.flatMap((c) => all(c, name))];
}

function checkChart(svg: string): XmlElement {
  const root = parseXml(svg);
  assert.equal(root.name, 'svg');
  assert.equal(root.attributes.get('xmlns'), 'http://www.w3.org/2000/svg');
  assert.doesNotMatch(svg, /NaN|Infinity|undefined/);
  // Every marker lies inside the plot area (the axes' box).
  const [axes] = all(root, 'g').filter((g) => g.attributes.get('class') === 'axes');
  if (axes) {
    const [xAxis, yAxis] = axes.children;
    const left = Number(yAxis!.attributes.get('x1'));
    const [top, bottom] = [Number(yAxis!.attributes.get('y1')), Number(yAxis!.attributes.get('y2'))];
    const right = Number(xAxis!.attributes.get('x2'));
    for (const c of all(root, 'circle')) {
      const [cx, cy] = [Number(c.attributes.get('cx')), Number(c.attributes.get('cy'))];
      assert.ok(cx >= left - 1e-9 && cx <= right + 1e-9 && cy >= top - 1e-9 && cy <= bottom + 1e-9, `marker (${cx}, ${cy}) outside the plot`);
    }
  }
  return root;
}

function seriesGroups(root: XmlElement): XmlElement[] {
  return all(root, 'g').filter((g) => g.attributes.get('class') === 'series');
}

test('the XML check itself refuses ill-formed documents', () => {
  for (const bad of ['<svg><g></svg>', '<svg a=1/>', '<svg>a & b</svg>', '<svg a="1" a="2"/>', '<svg/><svg/>', '<svg a="<"/>']) {
    assert.throws(() => parseXml(bad), /not well-formed/, bad);
  }
  assert.equal(parseXml('<svg a="x &amp; y"><g/><!-- c --></svg>').children.length, 1);
});

// ------------------------------------------------------------------ charts

test('a line chart is well-formed SVG with one marker per point, a line per series, ticks, labels and a legend', () => {
  const loss = Array.from({ length: 40 }, (_, i) => ({ x: (i + 1) * 5, y: 3 * Math.exp(-i / 10) + 0.2 }));
  const evalLoss = [100, 200].map((x) => ({ x, y: 1 + x / 1000 }));
  const svg = lineChartSvg({ title: 'Loss <&> "quoted"', xLabel: 'step', yLabel: 'loss', series: [{ label: 'train', points: loss }, { label: 'eval', points: evalLoss, dashed: true }] });
  const root = checkChart(svg);
  const groups = seriesGroups(root);
  assert.deepEqual(groups.map((g) => g.attributes.get('data-points')), ['40', '2']);
  assert.deepEqual(groups.map((g) => all(g, 'circle').length), [40, 2]);
  const polyline = all(groups[0]!, 'polyline')[0]!;
  assert.equal(polyline.attributes.get('points')!.split(' ').length, 40);
  const texts = all(root, 'text');
  assert.ok(texts.length >= 2 + 2 + 4 + 4, 'title, axis labels, legend and tick labels');
  assert.match(svg, /Loss &lt;&amp;&gt; &quot;quoted&quot;/, 'the title is escaped');
  // Ticks on round numbers over the data: steps 5…200 → 0, 50, 100, 150, 200.
  const tickLabels = all(root, 'g').find((g) => g.attributes.get('class') === 'tick-labels')!;
  assert.ok(tickLabels.children.length >= 8);
});

test('a single point and a series of equal values still make a readable chart (no zero-width axis)', () => {
  const one = checkChart(lineChartSvg({ title: 't', xLabel: 'step', yLabel: 'y', series: [{ label: 'a', points: [{ x: 100, y: 0.5 }] }] }));
  assert.equal(all(one, 'circle').length, 1);
  assert.equal(all(one, 'polyline').length, 0, 'one point is a marker, not a line');
  const flat = checkChart(lineChartSvg({ title: 't', xLabel: 'step', yLabel: 'y', series: [{ label: 'a', points: [{ x: 1, y: 0 }, { x: 2, y: 0 }] }] }));
  assert.equal(all(flat, 'circle').length, 2);
});

test('NaN, infinite and missing values are left out, never drawn', () => {
  const records = [
    { step: 5, loss: 2.0, lr: 1e-4 },
    { step: 10, loss: Number.NaN, lr: 9e-5 },
    { step: 15, loss: null, lr: 8e-5 },
    { step: 20, loss: Number.POSITIVE_INFINITY, lr: 7e-5 },
    { step: 25, loss: 1.5, lr: 6e-5 },
  ];
  const charts = trainingCharts(records);
  const loss = checkChart(charts.find((c) => c.name === 'loss')!.svg);
  assert.equal(seriesGroups(loss)[0]!.attributes.get('data-points'), '2');
  const lr = checkChart(charts.find((c) => c.name === 'lr')!.svg);
  assert.equal(seriesGroups(lr)[0]!.attributes.get('data-points'), '5');
});

test('a run without evaluation still draws every chart; the eval ones say "no data"', () => {
  const records = Array.from({ length: 10 }, (_, i) => ({ step: i + 1, loss: 1 / (i + 1), learning_rate: 6e-6 * (1 - i / 10) }));
  const charts = trainingCharts(records);
  assert.deepEqual(charts.map((c) => c.name), ['loss', 'margin', 'mean_pos_neg', 'retrieval', 'lr']);
  for (const chart of charts) checkChart(chart.svg);
  for (const name of ['margin', 'mean_pos_neg', 'retrieval']) {
    const root = checkChart(charts.find((c) => c.name === name)!.svg);
    assert.match(charts.find((c) => c.name === name)!.svg, />no data</);
    assert.ok(seriesGroups(root).every((g) => g.attributes.get('data-points') === '0'));
  }
  const lr = checkChart(charts.find((c) => c.name === 'lr')!.svg);
  assert.equal(seriesGroups(lr)[0]!.attributes.get('data-points'), '10', 'learning_rate is read when lr is absent');
});

test('axis ticks are 1-2-5 steps with labels that need no more digits than the step', () => {
  assert.deepEqual(niceAxis(5, 200, { integer: true }).ticks, [0, 50, 100, 150, 200]);
  assert.deepEqual(niceAxis(-0.043, 0.11).ticks, [-0.05, 0, 0.05, 0.1, 0.15]);
  assert.deepEqual(niceAxis(3, 3, { integer: true }).ticks, [2, 3, 4]);
  const lr = niceAxis(0, 6e-6);
  assert.deepEqual(lr.ticks.map((t) => formatTick(t, lr.step)), ['0', '1e-6', '2e-6', '3e-6', '4e-6', '5e-6', '6e-6']);
  assert.equal(formatTick(0.15, 0.05), '0.15');
  assert.equal(formatTick(150, 50), '150');
});

// ------------------------------------------------------------------ tables

const RUN = [
  { step: 0, eval_loss: 2.5, eval_margin: -0.05, eval_mean_pos: 0.7, eval_mean_neg: 0.4, 'eval_ndcg@10': 0.61, eval_runtime: 3.2 },
  { step: 5, loss: 2.4, lr: 6e-6, grad_norm: 1.3, epoch: 0.1 },
  { step: 100, eval_loss: 1.75, eval_margin: 0.02, eval_mean_pos: 0.74, eval_mean_neg: 0.35, 'eval_ndcg@10': 0.7 },
  { step: 200, eval_loss: 1.9, eval_margin: 0.01, eval_mean_pos: 0.76, eval_mean_neg: 0.36, 'eval_ndcg@10': 0.68 },
  { step: 205, loss: 1.2, lr: 1e-7 },
];

test('the summary picks first, best (lowest for losses and mean_neg) and last per eval metric', () => {
  const summaries = summarizeEvalMetrics(RUN);
  assert.deepEqual(summaries.map((s) => s.metric), ['eval_loss', 'eval_margin', 'eval_mean_pos', 'eval_mean_neg', 'eval_ndcg@10'], 'eval_runtime is bookkeeping');
  const byMetric = Object.fromEntries(summaries.map((s) => [s.metric, s]));
  assert.deepEqual(byMetric.eval_loss!.best, { step: 100, value: 1.75 });
  assert.deepEqual(byMetric.eval_mean_neg!.best, { step: 100, value: 0.35 });
  assert.deepEqual(byMetric.eval_mean_pos!.best, { step: 200, value: 0.76 });
  assert.deepEqual(byMetric['eval_ndcg@10']!.first, { step: 0, value: 0.61 });
  assert.deepEqual(byMetric['eval_ndcg@10']!.last, { step: 200, value: 0.68 });
});

test('the terminal table shows the values, their steps and the change from first to best', () => {
  const lines = formatSummaryTable(summarizeEvalMetrics(RUN)).split('\n');
  assert.equal(lines.length, 2 + 5);
  const row = (metric: string) => lines.find((l) => l.startsWith(metric + ' '))!.trim().split(/\s+/);
  assert.deepEqual(row('eval_loss'), ['eval_loss', '↓', '2.5000', '0', '1.7500', '100', '1.9000', '200', '-0.7500']);
  assert.deepEqual(row('eval_margin'), ['eval_margin', '↑', '-0.0500', '0', '0.0200', '100', '0.0100', '200', '+0.0700']);
  assert.deepEqual(row('eval_ndcg@10'), ['eval_ndcg@10', '↑', '0.6100', '0', '0.7000', '100', '0.6800', '200', '+0.0900']);
  assert.match(formatSummaryTable([]), /No evaluation was run/);
});

test('the HTML report is self-contained: summary first vs best, every chart inline and well-formed, escaped config', () => {
  const html = htmlReport({ records: RUN, config: { model: 'Qwen3-Embedding-0.6B', note: '<script>alert(1)</script>', mrl_dims: [64, 128] }, subtitle: 'output/v0-1' });
  assert.match(html, /^<!DOCTYPE html>/);
  assert.doesNotMatch(html, /<script|<link|src=|href=|@import|NaN/, 'no script, no external resource');
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(html, /\[64,128\]/);
  const svgs = html.match(/<svg[\s\S]*?<\/svg>/g)!;
  assert.equal(svgs.length, 5);
  for (const svg of svgs) checkChart(svg);
  const summary = html.slice(html.indexOf('first vs best'), html.indexOf('<h2>Charts'));
  assert.match(summary, /<td>eval_loss ↓<\/td><td>2\.5000<\/td><td>0<\/td><td>1\.7500<\/td><td>100<\/td><td class="good">-0\.7500<\/td>/);
  assert.match(summary, /<td>eval_ndcg@10 ↑<\/td><td>0\.6100<\/td><td>0<\/td><td>0\.7000<\/td><td>100<\/td><td class="good">\+0\.0900<\/td>/);
  assert.match(html, /Last training loss: <b>1\.2000<\/b> at step 205/);
});

test('a long run keeps the chart small: the line is thinned to its envelope, data-points still counts every point', () => {
  const points = Array.from({ length: 50_000 }, (_, i) => ({ x: i + 1, y: Math.sin(i / 500) + (i === 25_000 ? 5 : 0) }));
  const svg = lineChartSvg({ title: 'long', xLabel: 'step', yLabel: 'loss', series: [{ label: 'loss', points }] });
  const root = checkChart(svg);
  const [group] = seriesGroups(root);
  assert.equal(group!.attributes.get('data-points'), '50000');
  assert.equal(all(group!, 'circle').length, 0, 'no per-point markers on a long series');
  const coords = all(group!, 'polyline')[0]!.attributes.get('points')!.split(' ');
  assert.ok(coords.length <= 2000, `${coords.length} line points`);
  // The spike survives the thinning: the highest drawn point is the top of the plot.
  const top = Math.min(...coords.map((c) => Number(c.split(',')[1])));
  const ys = all(root, 'g').find((g) => g.attributes.get('class') === 'axes')!.children[1]!;
  assert.ok(top - Number(ys.attributes.get('y1')) < 0.2 * (Number(ys.attributes.get('y2')) - Number(ys.attributes.get('y1'))));
  assert.ok(svg.length < 100_000, `${svg.length} bytes`);
});
