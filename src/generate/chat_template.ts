/**
 * A model's own chat template (tokenizer_config.json `chat_template`, or a `chat_template.jinja`
 * file beside it), rendered by @huggingface/jinja the way transformers' `apply_chat_template`
 * renders it with Jinja2: trim_blocks and lstrip_blocks on, `tojson` as json.dumps with
 * ensure_ascii=False, the tokenizer's special tokens (bos_token, eos_token, …) in the context,
 * and `enable_thinking` passed only when the caller sets it (Qwen3's template tests
 * `enable_thinking is defined and enable_thinking is false`). Tested against Jinja2's rendering
 * of Qwen3's template (test/generate/fixtures/qwen3_chat_template.json).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import type { ChatMessage, ToolSpec } from './types.js';

export const CHAT_TEMPLATE_JINJA = 'chat_template.jinja';

export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

export interface RenderOptions {
  tools?: ToolSpec[];
  /** End with the assistant's turn header, so the model answers (default true). */
  addGenerationPrompt?: boolean;
  /** Qwen3: false renders an empty `<think>\n\n</think>\n\n` block (thinking off); absent, the template's default (on). */
  enableThinking?: boolean;
  /** Other template variables (apply_chat_template's **kwargs). */
  extra?: Record<string, unknown>;
}

const ROLES = new Set(['system', 'user', 'assistant', 'tool']);
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'additional_special_tokens'] as const;

export class ChatTemplate {
  readonly #template: Template;

  /**
   * `source`: the Jinja text; `specialTokens`: the names the template may use (transformers
   * passes the tokenizer's special_tokens_map); `where`: the file, for messages.
   */
  constructor(
    readonly source: string,
    private readonly specialTokens: Record<string, unknown> = {},
    readonly where = 'chat template',
  ) {
    try {
      this.#template = new Template(source);
    } catch (err) {
      throw new ChatTemplateError(`${where}: the chat template does not parse (${(err as Error).message})`);
    }
  }

  /**
   * The template of a model folder: `chat_template.jinja` if present (transformers ≥ 4.47 saves it
   * there), else tokenizer_config.json's `chat_template` (a string, or a list of named templates,
   * of which `name` — default "default" — is taken).
   */
  static fromFolder(folder: string, name = 'default'): ChatTemplate {
    const configPath = join(folder, 'tokenizer_config.json');
    let config: Record<string, unknown> = {};
    if (existsSync(configPath)) {
      try {
        config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new ChatTemplateError(`${configPath}: not valid JSON (${(err as Error).message})`);
      }
    }
    const special: Record<string, unknown> = {};
    for (const key of SPECIAL_TOKEN_KEYS) {
      const v = config[key];
      if (v === undefined || v === null) continue;
      special[key] = typeof v === 'object' && !Array.isArray(v) ? (v as { content?: unknown }).content : v;
    }
    const jinjaPath = join(folder, CHAT_TEMPLATE_JINJA);
    if (existsSync(jinjaPath)) return new ChatTemplate(readFileSync(jinjaPath, 'utf8'), special, jinjaPath);
    const t = config.chat_template;
    if (typeof t === 'string') return new ChatTemplate(t, special, `${configPath} chat_template`);
    if (Array.isArray(t)) {
      const named = t.find((x): x is { name: string; template: string } => typeof x === 'object' && x !== null && (x as { name?: unknown }).name === name);
      if (!named || typeof named.template !== 'string') throw new ChatTemplateError(`${configPath}: chat_template has no template named '${name}' (it has ${t.map((x) => JSON.stringify((x as { name?: unknown }).name)).join(', ')})`);
      return new ChatTemplate(named.template, special, `${configPath} chat_template '${name}'`);
    }
    throw new ChatTemplateError(`${folder}: no chat template (neither ${CHAT_TEMPLATE_JINJA} nor a chat_template in tokenizer_config.json); is this a chat model?`);
  }

  /** The prompt text for `messages` (special tokens written out as text: encode it with addSpecialTokens false). */
  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    const context: Record<string, unknown> = {
      ...this.specialTokens,
      ...opts.extra,
      messages: normalizeMessages(messages),
      add_generation_prompt: opts.addGenerationPrompt ?? true,
    };
    if (opts.tools !== undefined && opts.tools.length > 0) context.tools = opts.tools;
    if (opts.enableThinking !== undefined) context.enable_thinking = opts.enableThinking;
    try {
      return this.#template.render(context);
    } catch (err) {
      throw new ChatTemplateError(`${this.where}: rendering failed: ${(err as Error).message}`);
    }
  }
}

/**
 * Checks messages and puts them in the shape chat templates read: `content` a string (OpenAI's
 * text parts joined; null → '' for an assistant turn that only calls tools), roles known.
 */
export function normalizeMessages(messages: readonly ChatMessage[]): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new ChatTemplateError('messages must be a non-empty array');
  return messages.map((m, i) => {
    if (typeof m !== 'object' || m === null) throw new ChatTemplateError(`messages[${i}] must be an object with role and content`);
    if (!ROLES.has(m.role)) throw new ChatTemplateError(`messages[${i}].role must be one of system, user, assistant, tool; got ${JSON.stringify(m.role)}`);
    const content = contentText(m.content as unknown, i);
    const out: ChatMessage = { ...m, content };
    if (m.tool_calls !== undefined && !Array.isArray(m.tool_calls)) throw new ChatTemplateError(`messages[${i}].tool_calls must be an array`);
    return out;
  });
}

function contentText(content: unknown, i: number): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content
      .map((part, j) => {
        if (typeof part === 'object' && part !== null && (part as { type?: unknown }).type === 'text' && typeof (part as { text?: unknown }).text === 'string') return (part as { text: string }).text;
        throw new ChatTemplateError(`messages[${i}].content[${j}]: only text parts ({type: "text", text}) are supported`);
      })
      .join('');
  }
  throw new ChatTemplateError(`messages[${i}].content must be a string or a list of text parts`);
}
