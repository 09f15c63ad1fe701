/**
 * The relay's status page: live counters per source and outcome, the outbox depth, the last events with their key
 * decisions, and a ledger lookup. One self-contained document (no external assets: relays often run air-gapped);
 * it polls /status/api/summary every second with the session cookie set from the start-up link.
 */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>oncekit relay</title>
<style>
  :root { color-scheme: light dark; --muted: #6b7280; --ok: #15803d; --warn: #b45309; --bad: #b91c1c; }
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1.5rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; } h2 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; }
  .muted { color: var(--muted); } code { font-size: 12px; }
  table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #8884; }
  th { font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr)); gap: .6rem; }
  .tile { border: 1px solid #8885; border-radius: 8px; padding: .6rem .8rem; }
  .tile b { display: block; font-size: 1.4rem; font-variant-numeric: tabular-nums; }
  .state-delivered, .state-duplicate { color: var(--ok); } .state-retrying, .state-queued { color: var(--warn); } .state-dead { color: var(--bad); }
  form { display: flex; gap: .5rem; flex-wrap: wrap; } input, select, button { font: inherit; padding: .3rem .5rem; }
  pre { white-space: pre-wrap; word-break: break-word; background: #8881; padding: .6rem; border-radius: 6px; }
</style>
</head>
<body>
<h1>oncekit relay</h1>
<div id="about" class="muted">loading…</div>

<h2>Outbox</h2>
<div class="tiles" id="outbox"></div>

<h2>Events per source</h2>
<table id="counters"><thead><tr><th>source</th><th class="num">received</th><th class="num">forwarded</th><th class="num">duplicate</th><th class="num">dead</th><th class="num">retries</th><th class="num">keys dropped</th><th class="num">keys hashed</th></tr></thead><tbody></tbody></table>

<h2>Last events</h2>
<table id="recent"><thead><tr><th>time</th><th>source</th><th>source id</th><th>event</th><th>idempotency key</th><th>key decision</th><th>state</th></tr></thead><tbody></tbody></table>

<h2>Ledger lookup</h2>
<form id="lookup">
  <select id="lookup-by" aria-label="look up by"><option value="key">idempotency key</option><option value="sourceId">source id</option></select>
  <input id="lookup-value" aria-label="value" placeholder="key or source id" size="48" required>
  <button type="submit">Look up</button>
</form>
<div id="ledger"></div>

<script>
const $ = (id) => document.getElementById(id);
const text = (value) => document.createTextNode(value === null || value === undefined ? '' : String(value));
function row(cells, className) {
  const tr = document.createElement('tr');
  if (className) tr.className = className;
  for (const cell of cells) {
    const td = document.createElement('td');
    if (typeof cell === 'object' && cell !== null) { td.className = cell.className || ''; td.appendChild(text(cell.value)); }
    else td.appendChild(text(cell));
    tr.appendChild(td);
  }
  return tr;
}
function render(summary) {
  $('about').textContent = 'tenant ' + summary.tenant + ' → ' + summary.target.url + (summary.target.sandbox ? ' (built-in sandbox)' : '') +
    ' · store ' + summary.store + (summary.subscriber ? ' · Platform Events ' + summary.subscriber : '') +
    ' · up since ' + new Date(summary.startedAt).toLocaleTimeString();
  const outbox = $('outbox'); outbox.replaceChildren();
  for (const [state, count] of Object.entries(summary.outbox)) {
    const tile = document.createElement('div'); tile.className = 'tile'; tile.dataset.state = state;
    const b = document.createElement('b'); b.textContent = count; tile.append(b, text(state)); outbox.appendChild(tile);
  }
  const counters = $('counters').tBodies[0]; counters.replaceChildren();
  for (const [source, c] of Object.entries(summary.counters)) {
    const tr = row([source, ...['received', 'forwarded', 'duplicate', 'dead', 'retries', 'key_dropped', 'key_hashed'].map((name) => ({ value: c[name] || 0, className: 'num' }))]);
    tr.dataset.source = source; counters.appendChild(tr);
  }
  const recent = $('recent').tBodies[0]; recent.replaceChildren();
  for (const event of summary.recent) {
    const decision = event.keyDecision + (event.keyReason ? ' (' + event.keyReason + ')' : '');
    recent.appendChild(row([new Date(event.at).toLocaleTimeString(), event.source, event.sourceId, event.eventKey, event.key || '—', decision,
      { value: event.state + (event.detail ? ': ' + event.detail : ''), className: 'state-' + event.state }]));
  }
}
async function refresh() {
  try {
    const response = await fetch('/status/api/summary', { cache: 'no-store' });
    if (response.ok) render(await response.json());
    else $('about').textContent = 'status unavailable: HTTP ' + response.status;
  } catch (error) { $('about').textContent = 'relay unreachable: ' + error.message; }
}
$('lookup').addEventListener('submit', async (event) => {
  event.preventDefault();
  const by = $('lookup-by').value, value = $('lookup-value').value;
  const response = await fetch('/status/api/ledger?' + new URLSearchParams({ [by]: value }));
  const body = await response.json();
  const out = $('ledger'); out.replaceChildren();
  if (!response.ok) { out.appendChild(text(body.message)); return; }
  if (body.entries.length === 0) { out.appendChild(text('Nothing in the ledger for ' + by + ' ' + value + '.')); return; }
  for (const entry of body.entries) {
    const pre = document.createElement('pre');
    const lines = [entry.source + ' ' + entry.sourceId + ' — ' + entry.state + (entry.deadReason ? ': ' + entry.deadReason : ''),
      'key: ' + (entry.key || 'none') + (entry.keyDecision ? ' (' + entry.keyDecision.decision + (entry.keyDecision.reason ? ', ' + entry.keyDecision.reason : '') + ')' : ''),
      ...entry.attempts.map((a) => 'attempt ' + a.number + ' at ' + new Date(a.startedAt).toISOString() + ': ' + a.outcome + (a.status ? ' HTTP ' + a.status : '') + (a.message ? ' — ' + a.message : ''))];
    pre.textContent = lines.join('\\n'); out.appendChild(pre);
  }
});
refresh(); setInterval(refresh, 1000);
</script>
</body>
</html>
`;
