// Qwen3 thinking blocks split as the Qwen3 template splits history, whole and streamed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ThinkingSplitter, splitThinking, type ThinkingDelta } from '../../src/generate/thinking.js';

const CASES: [string, string | undefined, string][] = [
  ['<think>\nThe user asks.\n</think>\n\nA fungal disease.', 'The user asks.', 'A fungal disease.'],
  ['<think>\n\n</think>\n\nAnswer only.', '', 'Answer only.'],
  ['Plain answer, no thinking.', undefined, 'Plain answer, no thinking.'],
  ['<think>\ncut off mid-thought', 'cut off mid-thought', ''],
  ['thinking without the opening tag\n</think>\n\nanswer', 'thinking without the opening tag', 'answer'],
  ['a < b and </ thing', undefined, 'a < b and </ thing'],
];

function streamed(text: string, size: number): { reasoning: string; content: string } {
  const s = new ThinkingSplitter();
  const parts: ThinkingDelta[] = [];
  for (let i = 0; i < text.length; i += size) parts.push(...s.push(text.slice(i, i + size)));
  parts.push(...s.finish());
  const join = (kind: string) => parts.filter((p) => p.kind === kind).map((p) => p.text).join('');
  return { reasoning: join('reasoning'), content: join('content') };
}

test('splitThinking: reasoning and content as the Qwen3 template splits an assistant turn', () => {
  for (const [text, reasoning, content] of CASES) assert.deepEqual(splitThinking(text), { reasoning, content }, text);
});

test('ThinkingSplitter gives the same parts from deltas of any size (tags split across deltas)', () => {
  for (const [text, , content] of CASES.filter(([t]) => !t.startsWith('thinking without'))) {
    const whole = splitThinking(text);
    for (const size of [1, 2, 3, 7, 1000]) {
      const got = streamed(text, size);
      assert.equal(got.content, content, `${JSON.stringify(text)} by ${size}`);
      assert.equal(got.reasoning.replace(/\n+$/, ''), whole.reasoning ?? '', `${JSON.stringify(text)} by ${size}`);
    }
  }
});
