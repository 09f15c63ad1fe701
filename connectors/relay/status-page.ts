/**
 * The relay's status page: live counters per source and outcome, the outbox depth and its possible duplicates, the
 * last events with their key decisions, and a ledger lookup. One self-contained document (no external assets: relays often run air-gapped);
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
  form { display: flex; gap: .5rem 1rem; flex-wrap: wrap; align-items: center; } input, select, button { font: inherit; padding: .3rem .5rem; }
  label { display: inline-flex; gap: .4rem; align-items: center; }
  td.empty { color: var(--muted); font-style: italic; }
  #connection.bad { color: var(--bad); font-weight: 600; }
  #possible-duplicates.warn { color: var(--warn); font-weight: 600; }
  .tile span { color: var(--muted); }
  pre { white-space: pre-wrap; word-break: break-word; background: #8881; padding: .6rem; border-radius: 6px; }
</style>
</head>
<body>
<header>
<h1>oncekit relay</h1>
<p id="about" class="muted">loading…</p>
<p id="connection" class="muted" role="status" aria-live="polite"></p>
</header>

<section aria-labelledby="outbox-title">
<h2 id="outbox-title">Outbox</h2>
<div class="tiles" id="outbox" role="list" aria-label="events in the outbox by state"></div>
<p id="possible-duplicates" class="muted"></p>
</section>

<section aria-labelledby="counters-title">
<h2 id="counters-title">Events per source</h2>
<table id="counters" aria-labelledby="counters-title"><thead><tr><th scope="col">source</th><th scope="col" class="num">received</th><th scope="col" class="num">forwarded</th><th scope="col" class="num">duplicate</th><th scope="col" class="num">dead</th><th scope="col" class="num">retries</th><th scope="col" class="num">keys dropped</th><th scope="col" class="num">keys hashed</th></tr></thead><tbody></tbody></table>
</section>

<section aria-labelledby="recent-title">
<h2 id="recent-title">Last events <span class="muted">(newest first)</span></h2>
<table id="recent" aria-labelledby="recent-title"><thead><tr><th scope="col">time</th><th scope="col">source</th><th scope="col">source id</th><th scope="col">event</th><th scope="col">idempotency key</th><th scope="col">key decision</th><th scope="col">state</th></tr></thead><tbody></tbody></table>
</section>

<section aria-labelledby="lookup-title">
<h2 id="lookup-title">Ledger lookup</h2>
<form id="lookup" aria-labelledby="lookup-title">
  <label>Look up by <select id="lookup-by"><option value="key">idempotency key</option><option value="sourceId">source id</option></select></label>
  <label>Key or source id <input id="lookup-value" placeholder="e.g. order-1001-purchase" size="48" required autocomplete="off" spellcheck="false"></label>
  <button type="submit">Look up</button>
</form>
<div id="ledger" aria-live="polite" aria-busy="false"></div>
</section>

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
function emptyRow(table, message) {
  const tr = document.createElement('tr'); const td = document.createElement('td');
  td.colSpan = table.tHead.rows[0].cells.length; td.className = 'empty'; td.textContent = message;
  tr.appendChild(td); return tr;
}
function render(summary) {
  $('about').textContent = 'tenant ' + summary.tenant + ' → ' + summary.target.url + (summary.target.sandbox ? ' (built-in sandbox)' : '') +
    ' · store ' + summary.store + (summary.subscriber ? ' · Platform Events ' + summary.subscriber : '') +
    ' · up since ' + new Date(summary.startedAt).toLocaleTimeString();
  const outbox = $('outbox'); outbox.replaceChildren();
  for (const [state, count] of Object.entries(summary.outbox)) {
    const tile = document.createElement('div'); tile.className = 'tile'; tile.dataset.state = state; tile.setAttribute('role', 'listitem');
    const b = document.createElement('b'); b.textContent = count;
    const label = document.createElement('span'); label.textContent = state;
    tile.append(b, label); outbox.appendChild(tile);
  }
  const duplicates = $('possible-duplicates'); const n = summary.possibleDuplicates || 0;
  duplicates.dataset.count = String(n); duplicates.classList.toggle('warn', n > 0);
  duplicates.textContent = n === 0
    ? 'Possible duplicates: 0 (no event sent without a key had an answer lost).'
    : 'Possible duplicates: ' + n + ' event' + (n === 1 ? ' was' : 's were') + ' sent without an idempotency key after an answer was lost ' +
      '(timeout, reset or 5xx), so the target may have recorded ' + (n === 1 ? 'it' : 'them') + ' twice. Give such events a key; look one up below.';
  const counters = $('counters').tBodies[0]; counters.replaceChildren();
  for (const [source, c] of Object.entries(summary.counters)) {
    const tr = row([source, ...['received', 'forwarded', 'duplicate', 'dead', 'retries', 'key_dropped', 'key_hashed'].map((name) => ({ value: c[name] || 0, className: 'num' }))]);
    tr.dataset.source = source; counters.appendChild(tr);
  }
  if (counters.rows.length === 0) counters.appendChild(emptyRow($('counters'), 'No events yet.'));
  const recent = $('recent').tBodies[0]; recent.replaceChildren();
  for (const event of summary.recent) {
    const decision = event.keyDecision + (event.keyReason ? ' (' + event.keyReason + ')' : '');
    const tr = row([new Date(event.at).toLocaleTimeString(), event.source, event.sourceId, event.eventKey, event.key || '—', decision,
      { value: event.state + (event.detail ? ': ' + event.detail : ''), className: 'state-' + event.state }]);
    tr.dataset.id = event.id; recent.appendChild(tr);
  }
  if (recent.rows.length === 0) recent.appendChild(emptyRow($('recent'), 'No events yet.'));
}
function connection(message, bad) { const el = $('connection'); el.textContent = message; el.classList.toggle('bad', bad); }
async function refresh() {
  try {
    const response = await fetch('/status/api/summary', { cache: 'no-store' });
    if (response.ok) { render(await response.json()); connection('live · updated ' + new Date().toLocaleTimeString(), false); }
    else if (response.status === 401) connection('not signed in (the session ended or the relay restarted with another secret): open the ?token= link the relay printed', true);
    else connection('status unavailable: HTTP ' + response.status, true);
  } catch (error) { connection('relay unreachable: ' + error.message, true); }
  // The next poll starts a second after this one ended, so a slow relay never piles up requests.
  setTimeout(refresh, 1000);
}
let lookups = 0;
$('lookup').addEventListener('submit', async (event) => {
  event.preventDefault();
  const by = $('lookup-by').value, value = $('lookup-value').value.trim();
  const out = $('ledger'); const mine = ++lookups;
  out.setAttribute('aria-busy', 'true'); out.replaceChildren(text('Looking up ' + value + '…'));
  let response, body;
  try {
    response = await fetch('/status/api/ledger?' + new URLSearchParams({ [by]: value }), { cache: 'no-store' });
    body = await response.json();
  } catch (error) { if (mine === lookups) { out.replaceChildren(text('lookup failed: ' + error.message)); out.setAttribute('aria-busy', 'false'); } return; }
  if (mine !== lookups) return; // a later lookup owns the result area
  out.replaceChildren(); out.setAttribute('aria-busy', 'false');
  if (!response.ok) { out.appendChild(text('lookup failed (HTTP ' + response.status + '): ' + (body && body.message))); return; }
  if (body.entries.length === 0) { out.appendChild(text('Nothing in the ledger for ' + (by === 'key' ? 'key ' : 'source id ') + value + '.')); return; }
  for (const entry of body.entries) {
    const pre = document.createElement('pre');
    const lines = [entry.source + ' ' + entry.sourceId + ' — ' + entry.state + (entry.deadReason ? ': ' + entry.deadReason : ''),
      'key: ' + (entry.key || 'none') + (entry.keyDecision ? ' (' + entry.keyDecision.decision + (entry.keyDecision.reason ? ', ' + entry.keyDecision.reason : '') + ')' : ''),
      ...(entry.possibleDuplicate ? ['possible duplicate: sent without a key after a request without a definite answer, so the target may have recorded it more than once'] : []),
      ...(entry.attempts.length === 0 ? ['no attempts yet'] : []),
      ...entry.attempts.map((a) => 'attempt ' + a.number + ' at ' + new Date(a.startedAt).toISOString() + ': ' + a.outcome + (a.status ? ' HTTP ' + a.status : '') +
        (a.requests > 1 || a.uncertainRequests > 0 ? ' (' + a.requests + ' requests' + (a.uncertainRequests > 0 ? ', ' + a.uncertainRequests + ' without a definite answer' : '') + ')' : '') +
        (a.message ? ' — ' + a.message : ''))];
    pre.textContent = lines.join('\\n'); out.appendChild(pre);
  }
});
refresh();
</script>
</body>
</html>
`;
