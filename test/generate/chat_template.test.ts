// The Qwen3 chat template (tokenizer_config.json of the fixture model, Qwen3's chat tokenizer
// config) rendered by @huggingface/jinja equals Jinja2's rendering in transformers' environment
// (fixtures/qwen3_chat_template.json, made by make_qwen3_chat_template_goldens.py): thinking on
// and off, a system message, tools and tool calls, tool results, reasoning_content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChatTemplate, ChatTemplateError } from '../../src/generate/chat_template.js';
import type { ChatMessage, ToolSpec } from '../../src/generate/types.js';
import { FIXTURES, ROOT } from '../helpers.js';

interface Case {
  name: string;
  messages: ChatMessage[];
  tools?: ToolSpec[];
  add_generation_prompt: boolean;
  enable_thinking?: boolean;
  rendered: string;
}

const MODEL = join(FIXTURES, 'models/qwen3-tiny');
const goldens = JSON.parse(readFileSync(join(ROOT, 'test/generate/fixtures/qwen3_chat_template.json'), 'utf8')) as { cases: Case[] };

test('the Qwen3 template in the fixture model is the one the goldens were rendered from', () => {
  const template = ChatTemplate.fromFolder(MODEL);
  const config = JSON.parse(readFileSync(join(MODEL, 'tokenizer_config.json'), 'utf8')) as { chat_template: string };
  assert.equal(template.source, config.chat_template);
  assert.match(template.source, /enable_thinking is defined and enable_thinking is false/);
  assert.ok(goldens.cases.length >= 7);
});

for (const c of goldens.cases) {
  test(`Qwen3 chat template equals Jinja2/transformers: ${c.name}`, () => {
    const template = ChatTemplate.fromFolder(MODEL);
    const opts = { addGenerationPrompt: c.add_generation_prompt, ...(c.tools ? { tools: c.tools } : {}), ...(c.enable_thinking !== undefined ? { enableThinking: c.enable_thinking } : {}) };
    assert.equal(template.render(c.messages, opts), c.rendered);
  });
}

test('thinking off differs from on by exactly the empty think block after the assistant header', () => {
  const template = ChatTemplate.fromFolder(MODEL);
  const messages: ChatMessage[] = [{ role: 'user', content: 'hi' }];
  const on = template.render(messages);
  const off = template.render(messages, { enableThinking: false });
  assert.equal(on, '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(off, `${on}<think>\n\n</think>\n\n`);
});

test('OpenAI content shapes are accepted: text parts joined, null content of a tool-calling assistant', () => {
  const template = ChatTemplate.fromFolder(MODEL);
  const parts = template.render([{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] as unknown as string }]);
  assert.equal(parts, '<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n');
  const call = template.render(
    [
      { role: 'user', content: 'x' },
      { role: 'assistant', content: null as unknown as string, tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] },
    ],
    { addGenerationPrompt: false },
  );
  // The same text Jinja2 renders for this conversation with content '' (checked with the generator script's environment).
  assert.equal(call, '<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>\n');
});

test('bad messages and folders get errors that say what is wrong', () => {
  const template = ChatTemplate.fromFolder(MODEL);
  assert.throws(() => template.render([]), /messages must be a non-empty array/);
  assert.throws(() => template.render([{ role: 'bot' as 'user', content: 'x' }]), /messages\[0\]\.role must be one of system, user, assistant, tool; got "bot"/);
  assert.throws(() => template.render([{ role: 'user', content: 5 as unknown as string }]), /messages\[0\]\.content must be a string/);
  const dir = mkdtempSync(join(tmpdir(), 'embtune-template-'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '</s>' }));
  assert.throws(() => ChatTemplate.fromFolder(dir), (err: Error) => err instanceof ChatTemplateError && /no chat template .* is this a chat model\?/.test(err.message));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: '{{ eos_token }}{{ messages[0].content }}' }], eos_token: { content: '</s>' } }));
  assert.equal(ChatTemplate.fromFolder(dir).render([{ role: 'user', content: 'u' }]), '</s>u');
  assert.throws(() => ChatTemplate.fromFolder(dir, 'rag'), /no template named 'rag' \(it has "tool_use", "default"\)/);
  writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}]{% endfor %}');
  assert.equal(ChatTemplate.fromFolder(dir).render([{ role: 'user', content: 'u' }]), '[user]', 'chat_template.jinja wins over tokenizer_config.json');
  assert.throws(() => new ChatTemplate('{% if %}', {}, 'x.jinja'), /x\.jinja: the chat template does not parse/);
});
