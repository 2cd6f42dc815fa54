/**
 * Server-sent events from a byte stream (the WHATWG EventSource parsing rules, reduced to what
 * OpenAI-compatible servers send): lines end in LF, CRLF or CR; `data:` lines (one leading space
 * dropped) accumulate into one event, dispatched at a blank line; `event:` names it; lines
 * starting with ':' are comments; other fields are ignored. Bytes are decoded as a UTF-8 stream,
 * so a character split across network chunks stays whole.
 */
export interface ServerSentEvent {
  event: string;
  data: string;
}

export async function* parseServerSentEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder('utf-8');
  let buffer = '';
  let data: string[] = [];
  let event = '';
  const line = (text: string): ServerSentEvent | undefined => {
    if (text === '') {
      const out = data.length > 0 ? { event: event || 'message', data: data.join('\n') } : undefined;
      data = [];
      event = '';
      return out;
    }
    if (text.startsWith(':')) return undefined;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    return undefined;
  };
  const drain = function* (final: boolean): Generator<ServerSentEvent> {
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buffer);
      // A CR at the very end may be the first half of CRLF: wait for the next chunk.
      if (!m || (m[0] === '\r' && m.index === buffer.length - 1 && !final)) break;
      const ev = line(buffer.slice(0, m.index));
      buffer = buffer.slice(m.index + m[0].length);
      if (ev) yield ev;
    }
  };
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    yield* drain(false);
  }
  buffer += decoder.decode();
  yield* drain(true);
  if (buffer !== '') {
    const ev = line(buffer);
    if (ev) yield ev;
  }
  const last = line('');
  if (last) yield last;
}
