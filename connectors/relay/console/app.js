// The oncekit console: a small page over the relay's JSON API (/api/...). No framework, no CDN: uPlot draws the charts.
// Every text from the server goes in with textContent, never as HTML.

const WRITE_HEADER = { 'x-oncekit-console': '1', 'content-type': 'application/json' };
const STATES = ['pending', 'leased', 'delivered', 'duplicate', 'dead'];
const SINCE_CHOICES = [
  ['', 'any time'],
  ['15m', 'last 15 minutes'],
  ['1h', 'last hour'],
  ['24h', 'last day'],
  ['7d', 'last 7 days'],
];
const SINCE_MS = { '15m': 15 * 60_000, '1h': 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000 };

const $ = (id) => document.getElementById(id);
let refreshTimer = null;
let charts = [];

/** el('p', {class: 'x'}, 'text', child): an element with attributes (on* as listeners) and children. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Number.POSITIVE_INFINITY)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const time = (ms) =>
  ms === null || ms === undefined ? '–' : new Date(ms).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

class SignedOut extends Error {}

async function api(path, init) {
  const response = await fetch(path, { credentials: 'same-origin', ...init });
  if (response.status === 401) throw new SignedOut('signed out');
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  return body;
}

function announce(message) {
  $('live').textContent = message;
}

function setView(title, ...children) {
  $('view-title').textContent = title;
  document.title = `${title} · oncekit relay`;
  $('view').replaceChildren(
    ...children.flat(Number.POSITIVE_INFINITY).filter((child) => child !== null && child !== undefined && child !== false),
  );
}

function showSignedOut() {
  stopRefresh();
  setView(
    'Signed out',
    el(
      'div',
      { class: 'notice bad' },
      el('p', {}, 'Your session ended or the link had no valid token.'),
      el(
        'p',
        {},
        'Open the link with ?token= that the relay printed when it started (a restart with a generated secret prints a new one).',
      ),
    ),
  );
}

function stopRefresh() {
  if (refreshTimer !== null) clearInterval(refreshTimer);
  refreshTimer = null;
  for (const chart of charts) chart.destroy();
  charts = [];
}

/** The route and its query from the address: #/events?state=dead → ['events'], {state: 'dead'}. */
function route() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  return { parts: (path || 'overview').split('/').map(decodeURIComponent), params: new URLSearchParams(query || '') };
}

function markNav(name) {
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.nav === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function render(focus) {
  stopRefresh();
  const { parts, params } = route();
  markNav(parts[0]);
  try {
    if (parts[0] === 'events' && parts[1]) await eventPage(parts[1]);
    else if (parts[0] === 'events') await eventsPage(params, false);
    else if (parts[0] === 'dead-letters') await eventsPage(params, true);
    else if (parts[0] === 'instances') await instancesPage();
    else if (parts[0] === 'api') apiPage();
    else await overviewPage(params);
  } catch (error) {
    if (error instanceof SignedOut) showSignedOut();
    else setView('Something went wrong', el('p', { class: 'notice bad' }, `The relay answered: ${error.message}`));
  }
  if (focus) $('view-title').focus();
}

// ---------- overview ----------

const TILES = [
  ['pending', 'pending', 'waiting to be sent'],
  ['leased', 'in flight', 'being sent now'],
  ['delivered', 'delivered', 'the target took them'],
  ['duplicate', 'duplicate', 'the target had them already'],
  ['dead', 'dead', 'dead letters'],
  ['possibleDuplicates', 'possible duplicates', 'sent without a key after a lost answer'],
];

function tileList(overview) {
  return el(
    'ul',
    { class: 'tiles', id: 'tiles', 'aria-label': 'Events in the store by state' },
    TILES.map(([name, label, help]) => {
      const value = name === 'possibleDuplicates' ? overview.possibleDuplicates : overview.counts[name];
      const alert = (name === 'dead' || name === 'possibleDuplicates') && value > 0;
      const body = [el('span', {}, label), el('b', {}, value), el('span', { class: 'sr-only' }, `: ${help}`)];
      const href = name === 'dead' ? '#/dead-letters' : name === 'possibleDuplicates' ? null : `#/events?state=${name}`;
      return el('li', { class: `tile${alert ? ' alert' : ''}`, 'data-state': name }, href ? el('a', { href }, body) : body);
    }),
  );
}

function describeAbout(overview) {
  const target = overview.target;
  const where = target.sandbox ? 'the built-in sandbox (not SaaSquatch)' : target.url;
  return `tenant ${overview.tenant} · target ${where} · store ${overview.store} · this instance started ${time(overview.startedAt)}`;
}

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

function chartOptions(width, series, yLabel, points) {
  const axis = { stroke: cssColor('--text'), grid: { stroke: cssColor('--line'), width: 1 }, ticks: { stroke: cssColor('--line') } };
  return {
    width,
    height: 200,
    scales: { x: { time: true } },
    axes: [axis, { ...axis, label: yLabel, size: 50 }],
    series: [
      {},
      ...series.map(([label, color]) => ({
        label,
        stroke: cssColor(color),
        fill: undefined,
        width: 2,
        spanGaps: false,
        points: { show: points, size: 5, fill: cssColor(color) },
      })),
    ],
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
  };
}

function sum(values) {
  return values.reduce((total, value) => total + (value || 0), 0);
}

function chartData(activity) {
  const x = activity.starts.map((start) => start / 1000);
  const seconds = (values) => values.map((value) => (value === null ? null : value / 1000));
  return {
    throughput: [x, activity.received, activity.delivered, activity.duplicate, activity.dead],
    latency: [x, seconds(activity.latencyP50), seconds(activity.latencyP99)],
    backlog: [x, activity.backlog],
  };
}

function captions(activity, windowLabel) {
  const max = (values) => values.reduce((top, value) => (value !== null && value > top ? value : top), 0);
  return {
    throughput: `${windowLabel}: ${sum(activity.received)} received, ${sum(activity.delivered)} delivered, ${sum(activity.duplicate)} duplicate, ${sum(activity.dead)} dead`,
    latency: `${windowLabel}: slowest minute p99 ${(max(activity.latencyP99) / 1000).toFixed(2)} s, p50 ${(max(activity.latencyP50) / 1000).toFixed(2)} s`,
    backlog: `${windowLabel}: now ${activity.backlog.at(-1) ?? 0}, highest ${max(activity.backlog)}`,
  };
}

async function overviewPage(params) {
  const windowName = params.get('window') === '24h' ? '24h' : '1h';
  const windowLabel = windowName === '24h' ? 'Last day' : 'Last hour';
  const [overview, activity] = await Promise.all([api('/api/overview'), api(`/api/activity?window=${windowName}`)]);
  $('about').textContent = describeAbout(overview);
  const windowSelect = el(
    'select',
    {
      id: 'window',
      onchange: (event) => {
        location.hash = `#/overview?window=${event.target.value}`;
      },
    },
    el('option', { value: '1h', selected: windowName === '1h' }, 'last hour, per minute'),
    el('option', { value: '24h', selected: windowName === '24h' }, 'last day, per minute'),
  );
  const specs = [
    [
      'throughput',
      'Events per minute',
      [
        ['received', '--c-received'],
        ['delivered', '--c-delivered'],
        ['duplicate', '--c-duplicate'],
        ['dead', '--c-dead'],
      ],
      'events',
    ],
    [
      'latency',
      'Delivery latency (enqueue to delivery)',
      [
        ['p50 (s)', '--c-p50'],
        ['p99 (s)', '--c-p99'],
      ],
      'seconds',
    ],
    ['backlog', 'Outbox backlog (not yet settled)', [['backlog', '--c-backlog']], 'events'],
  ];
  const text = captions(activity, windowLabel);
  const figures = specs.map(([name, title, _series]) =>
    el(
      'figure',
      { 'data-chart': name },
      el('figcaption', {}, el('strong', {}, title), el('br'), el('span', { 'data-caption': name }, text[name])),
      el('div', { class: 'chart', role: 'img', 'aria-label': `${title}. ${text[name]}` }),
    ),
  );
  const possible =
    overview.possibleDuplicates > 0
      ? el(
          'p',
          { class: 'notice', id: 'possible-duplicates' },
          `${plural(overview.possibleDuplicates, 'event')} went out without an idempotency key after an answer was lost: the target may have recorded ${overview.possibleDuplicates === 1 ? 'it' : 'them'} twice.`,
        )
      : null;
  setView(
    'Overview',
    el(
      'section',
      { 'aria-labelledby': 'tiles-title' },
      el('h2', { id: 'tiles-title' }, 'Events in the store'),
      tileList(overview),
      possible,
    ),
    el(
      'section',
      { 'aria-labelledby': 'charts-title' },
      el('h2', { id: 'charts-title' }, 'Over time'),
      el('form', { class: 'filters', onsubmit: (event) => event.preventDefault() }, el('label', {}, 'Window', windowSelect)),
      activity.truncated ? el('p', { class: 'notice' }, 'The window holds more events than the charts read; they show only some.') : null,
      el('div', { class: 'charts' }, figures),
    ),
  );
  const data = chartData(activity);
  charts = [];
  if (typeof uPlot === 'function') {
    specs.forEach(([name, , series, yLabel], index) => {
      const holder = figures[index].querySelector('.chart');
      charts.push(new uPlot(chartOptions(Math.max(200, holder.clientWidth), series, yLabel, name === 'latency'), data[name], holder));
    });
  }
  refreshTimer = setInterval(async () => {
    try {
      const [fresh, freshActivity] = await Promise.all([api('/api/overview'), api(`/api/activity?window=${windowName}`)]);
      $('tiles').replaceWith(tileList(fresh));
      const freshData = chartData(freshActivity);
      const freshText = captions(freshActivity, windowLabel);
      specs.forEach(([name], index) => {
        charts[index]?.setData(freshData[name]);
        const caption = document.querySelector(`[data-caption="${name}"]`);
        if (caption) caption.textContent = freshText[name];
      });
    } catch (error) {
      if (error instanceof SignedOut) showSignedOut();
    }
  }, 2000);
}

addEventListener('resize', () => {
  for (const chart of charts) {
    const holder = chart.root.parentElement;
    if (holder) chart.setSize({ width: Math.max(200, holder.clientWidth), height: 200 });
  }
});

// ---------- events and dead letters ----------

function filterForm(params, dead) {
  const field = (name, label, placeholder) =>
    el('label', {}, label, el('input', { name, value: params.get(name) || '', placeholder, autocomplete: 'off', spellcheck: 'false' }));
  const since = el(
    'select',
    { name: 'since' },
    SINCE_CHOICES.map(([value, label]) => el('option', { value, selected: (params.get('since') || '') === value }, label)),
  );
  const state = dead
    ? null
    : el(
        'label',
        {},
        'State',
        el(
          'select',
          { name: 'state' },
          el('option', { value: '' }, 'any'),
          STATES.map((value) => el('option', { value, selected: params.get('state') === value }, value)),
        ),
      );
  const form = el(
    'form',
    { class: 'filters', role: 'search', 'aria-label': dead ? 'Filter dead letters' : 'Filter events' },
    field('source', 'Source', 'e.g. import, segment'),
    state,
    field('key', 'Idempotency key', 'exact key'),
    field('sourceId', 'Source id', 'e.g. events.csv:17'),
    el('label', {}, 'Enqueued', since),
    el('button', { type: 'submit' }, 'Search'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (String(value).trim() !== '') next.set(name, String(value).trim());
    location.hash = `#/${dead ? 'dead-letters' : 'events'}${next.size ? `?${next}` : ''}`;
  });
  return form;
}

/** The API query of the page's filters; `since` choices become times. */
function apiQuery(params, dead) {
  const query = new URLSearchParams();
  for (const name of ['source', 'key', 'sourceId', ...(dead ? [] : ['state']), 'until', 'offset']) {
    const value = params.get(name);
    if (value) query.set(name, value);
  }
  const since = SINCE_MS[params.get('since') || ''];
  if (since) query.set('since', String(Date.now() - since));
  query.set('limit', '50');
  return query;
}

function stateCell(summary) {
  return el(
    'td',
    { class: `state-${summary.state}` },
    summary.state,
    summary.unmappable ? ' (unmappable)' : '',
    summary.mayHaveLanded ? ' · may have landed' : '',
  );
}

async function eventsPage(params, dead) {
  const query = apiQuery(params, dead);
  const page = await api(`/api/${dead ? 'dead-letters' : 'events'}?${query}`);
  const filtered = ['source', 'key', 'sourceId', 'state', 'since', 'until'].some((name) => params.get(name));
  const selected = new Set();
  const result = el('div', { class: 'result', role: 'status', 'aria-live': 'polite', id: 'retry-result' });
  const retry = async (body, what) => {
    result.replaceChildren(el('p', {}, `Retrying ${what}…`));
    try {
      const answer = await api('/api/dead-letters/retry', { method: 'POST', headers: WRITE_HEADER, body: JSON.stringify(body) });
      showRetryResult(result, answer);
      announce(`${plural(answer.requeued.length, 'dead letter')} requeued`);
    } catch (error) {
      if (error instanceof SignedOut) return showSignedOut();
      result.replaceChildren(el('p', { class: 'notice bad' }, `Retry failed: ${error.message}`));
    }
  };
  const head = dead
    ? ['', 'died', 'source', 'source id', 'key', 'reason', 'attempts', '']
    : ['enqueued', 'state', 'source', 'source id', 'event', 'key', 'attempts', 'last answer'];
  const rows = page.events.map((summary) => {
    const link = el('a', { href: `#/events/${encodeURIComponent(summary.id)}` }, summary.id);
    if (dead) {
      const box = el('input', {
        type: 'checkbox',
        'aria-label': `Select ${summary.id}`,
        disabled: summary.unmappable,
        onchange: (event) => (event.target.checked ? selected.add(summary.id) : selected.delete(summary.id)),
      });
      return el(
        'tr',
        { 'data-id': summary.id },
        el('td', {}, box),
        el('td', {}, link, el('br'), el('span', { class: 'muted' }, time(summary.updatedAt))),
        el('td', {}, summary.source),
        el('td', {}, summary.sourceId),
        el('td', {}, summary.key ?? 'none'),
        el(
          'td',
          {},
          summary.deadReason ?? '–',
          summary.unmappable ? el('span', { class: 'muted' }, ' · unmappable: fix the mapping and resend from the source') : null,
        ),
        el('td', { class: 'num' }, summary.attempts),
        el(
          'td',
          {},
          summary.unmappable
            ? el('span', { class: 'muted' }, 'cannot be retried')
            : el(
                'button',
                { type: 'button', onclick: () => retry({ ids: [summary.id] }, summary.id), 'aria-label': `Retry ${summary.id}` },
                'Retry',
              ),
        ),
      );
    }
    const last =
      summary.lastOutcome === null ? '–' : `${summary.lastOutcome}${summary.lastStatus === null ? '' : ` (${summary.lastStatus})`}`;
    return el(
      'tr',
      { 'data-id': summary.id },
      el('td', {}, link, el('br'), el('span', { class: 'muted' }, time(summary.enqueuedAt))),
      stateCell(summary),
      el('td', {}, summary.source),
      el('td', {}, summary.sourceId),
      el('td', {}, summary.event ?? '–'),
      el('td', {}, summary.key ?? 'none'),
      el('td', { class: 'num' }, summary.attempts),
      el('td', {}, last),
    );
  });
  const empty = page.searchStopped
    ? `No ${dead ? 'dead letters' : 'events'} match among those searched.`
    : dead
      ? filtered
        ? 'No dead letters match these filters.'
        : 'No dead letters: every event was delivered, found a duplicate, or is still on its way.'
      : filtered
        ? 'No events match these filters.'
        : 'No events yet: nothing has been received or imported into this store.';
  const offset = page.offset;
  const pager = el(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    el('span', {}, page.events.length === 0 ? 'nothing to show' : `showing ${offset + 1}–${offset + page.events.length}`),
    offset > 0
      ? el('button', { type: 'button', onclick: () => go(params, dead, Math.max(0, offset - page.limit)) }, 'Previous page')
      : null,
    page.hasMore ? el('button', { type: 'button', onclick: () => go(params, dead, offset + page.limit) }, 'Next page') : null,
  );
  // The store read only the newest part of the ledger (Redis reads a fixed number per call): say so, and go on from there.
  const stopped = page.searchStopped
    ? el(
        'div',
        { class: 'notice', id: 'search-stopped' },
        el(
          'p',
          {},
          `Searched the newest ${page.searchStopped.searched.toLocaleString('en')} events${params.get('until') ? ` enqueued before ${time(Number(params.get('until')))}` : ''}; events enqueued before ${time(page.searchStopped.resumeUntil)} were not searched.`,
        ),
        el('button', { type: 'button', onclick: () => older(page.searchStopped.resumeUntil) }, 'Search older events'),
      )
    : null;
  const older = (until) => {
    const next = new URLSearchParams(params);
    next.set('until', String(until));
    next.delete('offset');
    location.hash = `#/${dead ? 'dead-letters' : 'events'}?${next}`;
  };
  const before = params.get('until')
    ? el(
        'p',
        { class: 'muted', id: 'until-filter' },
        `Enqueued before ${time(Number(params.get('until')))} · `,
        el('a', { href: `#/${dead ? 'dead-letters' : 'events'}?${withoutUntil(params)}` }, 'back to the newest'),
      )
    : null;
  const matching = () => {
    const filter = {};
    for (const name of ['source', 'key', 'sourceId']) if (params.get(name)) filter[name] = params.get(name);
    if (params.get('until')) filter.until = Number(params.get('until'));
    const since = SINCE_MS[params.get('since') || ''];
    if (since) filter.since = Date.now() - since;
    return filter;
  };
  const actions =
    dead && page.events.length > 0
      ? el(
          'div',
          { class: 'actions' },
          el(
            'button',
            {
              type: 'button',
              class: 'primary',
              onclick: () =>
                selected.size === 0
                  ? result.replaceChildren(el('p', {}, 'Select dead letters first.'))
                  : retry({ ids: [...selected] }, plural(selected.size, 'dead letter')),
            },
            'Retry selected',
          ),
          el(
            'button',
            {
              type: 'button',
              onclick: () => retry({ matching: matching() }, filtered ? 'every matching dead letter' : 'every dead letter'),
            },
            filtered ? 'Retry all matching' : 'Retry all',
          ),
        )
      : null;
  setView(
    dead ? 'Dead letters' : 'Events',
    filterForm(params, dead),
    dead
      ? el(
          'p',
          { class: 'muted' },
          'A retry keeps the event’s key and goes through the same checks as oncekit dead-letters retry: an event that may have landed longer ago than the target’s 24 h key window is not resent, and an unmappable one cannot be.',
        )
      : null,
    before,
    actions,
    result,
    stopped,
    page.events.length === 0
      ? el('p', { class: 'empty', id: 'empty' }, empty)
      : el(
          'div',
          { class: 'table-wrap' },
          el(
            'table',
            { id: dead ? 'dead-table' : 'events-table' },
            el('caption', { class: 'sr-only' }, dead ? 'Dead letters, newest first' : 'Events, newest first'),
            el(
              'thead',
              {},
              el(
                'tr',
                {},
                head.map((name) => el('th', { scope: 'col' }, name)),
              ),
            ),
            el('tbody', {}, rows),
          ),
        ),
    pager,
  );
}

function withoutUntil(params) {
  const next = new URLSearchParams(params);
  next.delete('until');
  next.delete('offset');
  return next;
}

function go(params, dead, offset) {
  const next = new URLSearchParams(params);
  if (offset > 0) next.set('offset', String(offset));
  else next.delete('offset');
  location.hash = `#/${dead ? 'dead-letters' : 'events'}${next.size ? `?${next}` : ''}`;
}

function showRetryResult(holder, answer) {
  const list = (items) =>
    el(
      'ul',
      {},
      items.map((item) => el('li', {}, el('a', { href: `#/events/${encodeURIComponent(item.id)}` }, item.id), `: ${item.why}`)),
    );
  holder.replaceChildren(
    el(
      'p',
      {},
      `${plural(answer.requeued.length, 'dead letter')} requeued with a fresh retry horizon; the relay is sending ${answer.requeued.length === 1 ? 'it' : 'them'} now.`,
    ),
    answer.refused.length
      ? el(
          'div',
          { class: 'notice' },
          el('p', {}, `${plural(answer.refused.length, 'event')} not resent (past the key window):`),
          list(answer.refused),
        )
      : null,
    answer.unmappable.length
      ? el(
          'div',
          { class: 'notice' },
          el('p', {}, `${plural(answer.unmappable.length, 'unmappable dead letter')} not retried:`),
          list(answer.unmappable),
        )
      : null,
    answer.notRequeued.length ? el('div', { class: 'notice' }, el('p', {}, 'Left alone:'), list(answer.notRequeued)) : null,
    answer.moreMatching
      ? el('p', { class: 'notice', id: 'more-matching' }, 'More dead letters match than one retry takes: retry again for the rest.')
      : null,
  );
}

// ---------- one event ----------

async function eventPage(id) {
  const event = await api(`/api/events/${encodeURIComponent(id)}`);
  const facts = [
    ['state', el('span', { class: `state-${event.state}`, id: 'event-state' }, event.state)],
    ['source', event.source],
    ['source id', event.sourceId],
    ['target', event.target || '(any)'],
    ['enqueued', time(event.enqueuedAt)],
    ['last change', time(event.updatedAt)],
    event.state === 'pending' ? ['due', time(event.dueAt)] : null,
    event.state === 'dead' ? ['died', time(event.deadAt)] : null,
    event.state === 'dead' ? ['reason', event.deadReason] : null,
    [
      'may have landed',
      event.mayHaveLanded
        ? `yes: an attempt got no definite answer${event.landedSince === null ? '' : ` (the first such started ${time(event.landedSince)})`}`
        : 'no',
    ],
    event.resendSafeUntil === null
      ? null
      : [
          'resend',
          event.resendSafeUntil > Date.now()
            ? `safe until ${time(event.resendSafeUntil)}, while the target still remembers the key`
            : `the target's key window closed at ${time(event.resendSafeUntil)}: a retry is refused (oncekit dead-letters retry --force-past-window sends it anyway)`,
        ],
    event.possibleDuplicate ? ['possible duplicate', 'sent without a key after a lost answer: the target may hold it twice'] : null,
  ].filter(Boolean);
  const result = el('div', { class: 'result', role: 'status', 'aria-live': 'polite', id: 'retry-result' });
  const retryButton =
    event.state === 'dead' && !event.unmappable
      ? el(
          'button',
          {
            type: 'button',
            class: 'primary',
            onclick: async () => {
              try {
                showRetryResult(
                  result,
                  await api('/api/dead-letters/retry', {
                    method: 'POST',
                    headers: WRITE_HEADER,
                    body: JSON.stringify({ ids: [event.id] }),
                  }),
                );
              } catch (error) {
                if (error instanceof SignedOut) return showSignedOut();
                result.replaceChildren(el('p', { class: 'notice bad' }, `Retry failed: ${error.message}`));
              }
            },
          },
          'Retry this dead letter',
        )
      : null;
  const attempts = event.attempts.length
    ? el(
        'div',
        { class: 'table-wrap' },
        el(
          'table',
          { id: 'attempts' },
          el('caption', { class: 'sr-only' }, 'Delivery attempts, oldest first'),
          el(
            'thead',
            {},
            el(
              'tr',
              {},
              ['#', 'started', 'finished', 'outcome', 'status', 'target’s message', 'requests', 'target event ids', 'instance'].map(
                (name) => el('th', { scope: 'col' }, name),
              ),
            ),
          ),
          el(
            'tbody',
            {},
            event.attempts.map((attempt) =>
              el(
                'tr',
                {},
                el('td', { class: 'num' }, attempt.number),
                el('td', {}, time(attempt.startedAt)),
                el('td', {}, time(attempt.finishedAt)),
                el('td', {}, attempt.outcome),
                el('td', {}, attempt.status ?? 'no answer'),
                el('td', {}, attempt.message ?? '–', attempt.apiErrorCode ? ` (${attempt.apiErrorCode})` : ''),
                el('td', { class: 'num' }, attempt.requests, attempt.uncertainRequests ? ` (${attempt.uncertainRequests} unknown)` : ''),
                el('td', {}, attempt.eventIds.length ? attempt.eventIds.join(', ') : '–'),
                el('td', {}, attempt.handledBy ?? 'not recorded'),
              ),
            ),
          ),
        ),
      )
    : el(
        'p',
        { class: 'empty' },
        event.unmappable ? 'Never sent: it could not be mapped.' : 'No attempt yet: it is waiting for the worker.',
      );
  setView(
    `Event ${event.id}`,
    el('p', {}, el('a', { href: '#/events' }, '← all events')),
    el(
      'dl',
      { class: 'facts' },
      facts.map(([name, value]) => [el('dt', {}, name), el('dd', {}, value)]),
    ),
    retryButton ? el('div', { class: 'actions' }, retryButton) : null,
    result,
    el('h2', {}, 'Key decision'),
    el('p', { id: 'key-explanation' }, event.keyExplanation),
    event.keyDecision ? el('pre', {}, JSON.stringify(event.keyDecision, null, 2)) : null,
    el('h2', {}, `Attempts (${event.attempts.length})`),
    attempts,
    el('h2', {}, event.raw ? 'Raw payload as received (capped)' : 'Payload sent'),
    event.notRetried ? el('p', { class: 'notice' }, event.notRetried) : null,
    event.raw
      ? el('pre', { id: 'payload' }, event.raw.text, event.raw.truncated ? `\n… (first part of ${event.raw.bytes} bytes)` : '')
      : el('pre', { id: 'payload' }, JSON.stringify(event.payload, null, 2)),
    el('p', { class: 'muted' }, 'Values under names that look secret (password, token, api key, …) are never shown.'),
  );
}

// ---------- instances ----------

async function instancesPage() {
  const { instances } = await api('/api/instances');
  const rows = instances.map((instance) =>
    el(
      'tr',
      {},
      el('td', {}, instance.id),
      el(
        'td',
        { class: instance.alive ? 'alive' : 'muted' },
        instance.alive ? 'alive' : instance.stoppedAt ? `stopped ${time(instance.stoppedAt)}` : 'silent',
      ),
      el('td', {}, `${instance.host} (pid ${instance.pid})`),
      el('td', {}, instance.version),
      el('td', {}, time(instance.startedAt)),
      el('td', {}, `${Math.round(instance.seenAgoMs / 1000)} s ago`),
      el('td', { class: 'num' }, instance.delivered),
      el('td', { class: 'num' }, instance.duplicate),
      el('td', { class: 'num' }, instance.dead),
    ),
  );
  setView(
    'Instances',
    el(
      'p',
      { class: 'muted' },
      'Relays sharing this store write a heartbeat to it every few seconds; one silent for 15 s is not alive. Counts are what each settled since it started.',
    ),
    instances.length === 0
      ? el('p', { class: 'empty' }, 'No instance has written a heartbeat to this store yet.')
      : el(
          'div',
          { class: 'table-wrap' },
          el(
            'table',
            { id: 'instances' },
            el('caption', { class: 'sr-only' }, 'Relay instances'),
            el(
              'thead',
              {},
              el(
                'tr',
                {},
                ['instance', 'status', 'host', 'version', 'started', 'last seen', 'delivered', 'duplicate', 'dead'].map((name) =>
                  el('th', { scope: 'col' }, name),
                ),
              ),
            ),
            el('tbody', {}, rows),
          ),
        ),
  );
}

function apiPage() {
  const endpoints = [
    ['GET /api/overview', 'counts per state and possible duplicates'],
    ['GET /api/activity?window=1h|24h', 'per-minute series: received, delivered, duplicate, dead, latency p50/p99, backlog'],
    ['GET /api/events?state=&source=&target=&key=&sourceId=&since=&until=&limit=&offset=', 'events, newest first'],
    ['GET /api/events/{id}', 'one event: key decision, attempts, payload (secrets left out)'],
    ['GET /api/dead-letters?…', 'dead letters, with the same filters'],
    ['POST /api/dead-letters/retry', '{"ids":[…]} or {"matching":{…}}'],
    ['GET /api/instances', 'relays sharing the store'],
  ];
  setView(
    'JSON API',
    el('p', {}, 'The console uses these; send Authorization: Bearer <relay secret> to script them (see the README).'),
    el(
      'dl',
      { class: 'facts' },
      endpoints.map(([path, what]) => [el('dt', {}, el('code', {}, path)), el('dd', {}, what)]),
    ),
  );
}

addEventListener('hashchange', () => render(true));
render(false);
