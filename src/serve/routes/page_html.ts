/**
 * The web page `GET /` serves: one self-contained HTML document (inline CSS and script, nothing
 * fetched from elsewhere). A person types a question; the page calls `POST /v1/chat/completions`
 * with `stream: true` and reads the server-sent events: the first chunk's `rag.results` are the
 * retrieved passages (shown with their scores, and with the retrieval → reranked order when a
 * reranker is served), the following chunks the answer, appended as it streams. Without a chat
 * model it calls `POST /v1/search` and shows the passages only. Every value from the server is
 * written with textContent, never as HTML.
 */

export interface PageSettings {
  /** A chat model is configured (else the page only searches). */
  chat: boolean;
  /** A reranker is served (the rerank box starts checked). */
  reranker: boolean;
  /** The server wants a bearer key: the page shows a key field. */
  apiKey: boolean;
  /** The embedding model's id, shown in the header. */
  model: string;
}

const STYLE = `
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 12px 24px; }
header h1 { font-size: 18px; margin: 0; display: inline; }
header span { opacity: .7; margin-left: 12px; font-size: 13px; }
main { max-width: 980px; margin: 0 auto; padding: 20px 24px; }
form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 16px; }
#question { flex: 1 1 420px; font-size: 16px; padding: 8px 10px; border: 1px solid #b9c0cc; border-radius: 6px; }
button { font-size: 15px; padding: 8px 18px; border: 0; border-radius: 6px; background: #2f6fdf; color: #fff; cursor: pointer; }
button:disabled { background: #8aa6d9; }
label { font-size: 13px; color: #4a5363; }
select, input[type=number], input[type=password] { padding: 4px 6px; }
section { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 14px 18px; margin-bottom: 16px; }
h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .04em; color: #5b6475; margin: 0 0 10px; }
#answer { white-space: pre-wrap; min-height: 2em; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid #eceff3; }
th { color: #5b6475; font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.moved-up { color: #12833b; } .moved-down { color: #b3261e; }
#status { font-size: 13px; color: #5b6475; margin-left: 8px; }
.error { color: #b3261e; }
`;

const SCRIPT = `
const settings = JSON.parse(document.getElementById('settings').textContent);
const $ = (id) => document.getElementById(id);
function headers() {
  const h = { 'content-type': 'application/json' };
  const key = $('api-key') && $('api-key').value;
  if (key) h.authorization = 'Bearer ' + key;
  return h;
}
function cell(row, text, cls) { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; row.appendChild(td); return td; }
function fmt(x) { return typeof x === 'number' ? x.toFixed(4) : ''; }
function showPassages(rag) {
  const body = $('passages-body');
  body.textContent = '';
  $('passages-how').textContent = rag.mode + (rag.reranked ? ' + rerank' : '') + ', ' + rag.results.length + ' passages';
  for (const hit of rag.results) {
    const row = document.createElement('tr');
    row.className = 'passage';
    cell(row, String(hit.rank), 'num');
    const moved = cell(row, rag.reranked ? hit.retrieval_rank + ' → ' + hit.rank : String(hit.retrieval_rank), 'num');
    if (rag.reranked && hit.retrieval_rank !== hit.rank) moved.classList.add(hit.rank < hit.retrieval_rank ? 'moved-up' : 'moved-down');
    cell(row, hit.id);
    cell(row, fmt(hit.score), 'num score');
    cell(row, [hit.dense_rank ? 'dense #' + hit.dense_rank + ' ' + fmt(hit.dense_score) : '', hit.bm25_rank ? 'bm25 #' + hit.bm25_rank + ' ' + fmt(hit.bm25_score) : ''].filter(Boolean).join(', '), 'num');
    cell(row, hit.text.length > 400 ? hit.text.slice(0, 400) + '…' : hit.text, 'text');
    body.appendChild(row);
  }
}
async function fail(response) {
  let message = response.status + ' ' + response.statusText;
  try { const body = await response.json(); message = (body.error && (body.error.message || body.error)) || message; } catch {}
  throw new Error(message);
}
async function ask(event) {
  event.preventDefault();
  const question = $('question').value.trim();
  if (!question) return;
  $('ask').disabled = true;
  $('answer').textContent = '';
  $('answer').classList.remove('error');
  $('status').textContent = 'retrieving…';
  const rag = { top_k: Number($('top-k').value) || 5, mode: $('mode').value, rerank: $('rerank').checked };
  try {
    if (!settings.chat) {
      const response = await fetch('/v1/search', { method: 'POST', headers: headers(), body: JSON.stringify({ query: question, ...rag }) });
      if (!response.ok) await fail(response);
      const result = await response.json();
      showPassages({ mode: result.mode, reranked: result.reranked, results: result.results });
      $('answer').textContent = '(no chat model is configured on this server: start it with --llm-model-dir or --llm-url to get answers)';
      $('status').textContent = 'done';
      return;
    }
    const response = await fetch('/v1/chat/completions', {
      method: 'POST', headers: headers(),
      body: JSON.stringify({ messages: [{ role: 'user', content: question }], stream: true, max_tokens: Number($('max-tokens').value) || 256, rag }),
    });
    if (!response.ok) await fail(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\\n\\n')) >= 0) {
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') { $('status').textContent = 'done'; continue; }
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.rag) { showPassages(chunk.rag); $('status').textContent = 'answering…'; }
        const choice = chunk.choices && chunk.choices[0];
        if (choice && choice.delta && choice.delta.content) $('answer').textContent += choice.delta.content;
        if (choice && choice.finish_reason) $('status').textContent = 'finished (' + choice.finish_reason + ')';
      }
    }
  } catch (err) {
    $('answer').textContent = String(err.message || err);
    $('answer').classList.add('error');
    $('status').textContent = 'failed';
  } finally {
    $('ask').disabled = false;
  }
}
$('rerank').checked = settings.reranker;
$('rerank').disabled = !settings.reranker;
if (!settings.chat) $('max-tokens-label').hidden = true;
if (!settings.apiKey) $('api-key-label').remove();
$('form').addEventListener('submit', ask);
`;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The page, with the server's settings embedded as JSON (`<` escaped, so no value can close the script). */
export function pageHtml(settings: PageSettings): string {
  const json = JSON.stringify(settings).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>embtune — ask your documents</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>embtune</h1><span>retrieve → rerank → answer · ${escapeHtml(settings.model)}</span></header>
<main>
<form id="form">
  <input id="question" name="question" type="search" placeholder="Ask a question about the indexed documents…" autocomplete="off" autofocus>
  <button id="ask" type="submit">Ask</button>
  <label>mode <select id="mode"><option value="dense">dense</option><option value="bm25">BM25</option><option value="hybrid" selected>hybrid</option></select></label>
  <label>passages <input id="top-k" type="number" min="1" max="50" value="5" style="width:4em"></label>
  <label><input id="rerank" type="checkbox"> rerank</label>
  <label id="max-tokens-label">max tokens <input id="max-tokens" type="number" min="1" max="4096" value="256" style="width:5em"></label>
  <label id="api-key-label">API key <input id="api-key" type="password" autocomplete="off"></label>
  <span id="status"></span>
</form>
<section><h2>Answer</h2><div id="answer"></div></section>
<section><h2>Passages <span id="passages-how" style="text-transform:none;letter-spacing:0"></span></h2>
<table><thead><tr><th>#</th><th>retrieved → reranked</th><th>id</th><th>score</th><th>behind it</th><th>text</th></tr></thead><tbody id="passages-body"></tbody></table>
</section>
</main>
<script id="settings" type="application/json">${json}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
