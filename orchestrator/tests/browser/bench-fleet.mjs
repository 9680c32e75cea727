// The fleet board at scale, a measurement (not a test): tests/browser.rs starts a plant of 200
// simulated machines and runs this script, which prints
//   (a) the weight of /fleet: HTML bytes, bytes transferred with its assets, DOM nodes, time to
//       first render (cold cache, median of a few loads);
//   (b) event → board latency: from a machine event to the card's DOM showing it, measured in
//       the page with a MutationObserver on the same clock as the event's time (one machine):
//       pauses and resumes an operator sends through the API, timed from just before the call,
//       and runs that start and end on their own, timed from the event log's `at_ms`.
// Run: cargo test -p microfab --test browser -- --ignored --nocapture fleet_board
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ACCOUNTS, api, apiOk, check, launch, login, screenshot, waitUntil } from './lib.mjs';

const LOADS = 3;
const PAUSES = Number(process.env.BENCH_PAUSES || 12);
// How long the board is watched: a board open longer may fall further behind.
const WATCH_SECONDS = Number(process.env.BENCH_WATCH_SECONDS || 120);
const WINDOW_SECONDS = 30;
// The board may lag far behind at this size: wait long for a card before calling it lost.
const CARD_WAIT = 180_000;
const BRACKET = join(dirname(fileURLToPath(import.meta.url)),
  '../../../job-specs/examples/community-bench-bracket');

/// Enough bracket orders to keep every machine of the fleet busy for minutes.
async function fillThePlant(orders) {
  const spec = readFileSync(join(BRACKET, 'community-bench-bracket.toml'), 'utf8');
  const programs = Object.fromEntries(['bracket-gussets.nc', 'bracket-bar.nc'].map((name) =>
    [`programs/${name}`, readFileSync(join(BRACKET, 'programs', name), 'utf8')]));
  for (let i = 0; i < orders; i += 1) {
    const answer = await apiOk('POST', '/api/v1/orders', {
      spec_toml: spec.replace('quantity = 200', 'quantity = 2000'),
      source_name: `bracket-${i}.toml`,
      programs,
      submission_key: `bench-fleet-${i}`,
    });
    await apiOk('POST', `/api/v1/orders/${answer.order.id}/approve`, {});
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function median(values) {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/// One cold load of /fleet in a fresh context: bytes, DOM size, paint times.
async function measureLoad(browser) {
  const { context, page } = await login(browser, ACCOUNTS.operator);
  // A cold cache: the assets the login page loaded count again.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  let transferred = 0;
  let requests = 0;
  let html = 0;
  const urls = new Map();
  cdp.on('Network.responseReceived', (e) => urls.set(e.requestId, e.response.url));
  cdp.on('Network.loadingFinished', (e) => {
    transferred += e.encodedDataLength;
    requests += 1;
    if (new URL(urls.get(e.requestId) ?? 'http://x/').pathname === '/fleet') html = e.encodedDataLength;
  });
  const response = await page.goto('/fleet', { waitUntil: 'load' });
  const body = await response.body();
  await page.locator('[data-testid^="machine-card-"]').first().waitFor();
  const timing = await page.evaluate(() => {
    const [nav] = performance.getEntriesByType('navigation');
    const paint = Object.fromEntries(performance.getEntriesByType('paint').map((e) => [e.name, e.startTime]));
    return {
      nodes: document.getElementsByTagName('*').length,
      cards: document.querySelectorAll('[data-testid^="machine-card-"]').length,
      firstContentfulPaint: paint['first-contentful-paint'],
      domContentLoaded: nav.domContentLoadedEventEnd,
      load: nav.loadEventEnd,
    };
  });
  await context.close();
  return { htmlBytes: body.length, htmlTransferred: html, transferred, requests, ...timing };
}

/// Every change of a card's state or run, with the page's clock (the board log), and how many
/// cards the stream swapped in. Only the cards a mutation touched are read: the observer must
/// not add much to the page's own work at 200 machines.
async function watchBoard(page) {
  await page.evaluate(() => {
    window.boardLog = [];
    window.cardsSwapped = 0;
    document.addEventListener('htmx:sseMessage', () => { window.cardsSwapped += 1; });
    const shown = new Map();
    const note = (card, at) => {
      const machine = card.dataset.testid.slice('machine-card-'.length);
      const now = `${card.dataset.state}|${card.dataset.job ?? ''}`;
      if (shown.has(machine) && shown.get(machine) !== now) {
        window.boardLog.push({ machine, state: card.dataset.state, job: card.dataset.job ?? null, at });
      }
      shown.set(machine, now);
    };
    const isCard = (node) => node.nodeType === 1 && node.dataset.testid?.startsWith('machine-card-');
    document.querySelectorAll('[data-testid^="machine-card-"]').forEach((card) => note(card, 0));
    new MutationObserver((records) => {
      const at = Date.now();
      for (const record of records) {
        if (record.type === 'attributes' && isCard(record.target)) note(record.target, at);
        for (const node of record.addedNodes) {
          if (isCard(node)) note(node, at);
          else if (node.nodeType === 1) node.querySelectorAll('[data-testid^="machine-card-"]').forEach((card) => note(card, at));
        }
      }
    }).observe(document.body, {
      subtree: true, childList: true, attributes: true, attributeFilter: ['data-state', 'data-job'],
    });
  });
}

async function boardLog(page) {
  return page.evaluate(() => window.boardLog);
}

/// A machine whose driver is running a run now (the API's live status, not the board, which
/// may lag behind), not yet used.
async function runningMachine(used) {
  return waitUntil('a machine running a run', async () => {
    const machines = await apiOk('GET', '/api/v1/machines');
    return machines.find((m) => m.state === 'busy' && m.live?.job_id && m.live?.condition?.condition === 'busy' && !used.has(m.id))?.id;
  });
}

/// Over the watch, pause and resume running machines through the API, spread evenly, one at a
/// time: each from the moment before the call to the card showing it.
async function measurePauses(page, watchedFrom) {
  const pause = [];
  const resume = [];
  const used = new Set();
  for (let i = 0; i < PAUSES; i += 1) {
    const machine = await runningMachine(used);
    used.add(machine);
    for (const [action, shows, into] of [['pause', (s) => s === 'paused', pause], ['resume', (s) => s !== 'paused', resume]]) {
      const sent = Date.now();
      const { status, body } = await api('POST', `/api/v1/machines/${machine}/${action}`, {});
      if (status !== 200) {
        // The run ended between reading its status and the call: not a board latency.
        if (action === 'pause' && status === 409) break;
        throw new Error(`${action} ${machine}: ${status} ${JSON.stringify(body)}`);
      }
      const shown = await waitUntil(`${machine} shows ${action}`, async () => {
        const log = await boardLog(page);
        return log.find((c) => c.machine === machine && c.at >= sent && shows(c.state));
      }, CARD_WAIT);
      into.push(shown.at - sent);
    }
    // The next pause at its place in the watch: a schedule, not a wait for a state.
    const next = watchedFrom + ((i + 1) * WATCH_SECONDS * 1000) / PAUSES;
    if (Date.now() < next) await new Promise((resolve) => setTimeout(resolve, next - Date.now()));
  }
  return { pause, resume };
}

/// Runs that began and ended on their own while the board was watched: from the event's
/// `at_ms` (the server's clock, the page's too: one machine) to the first board change on that
/// machine showing the run (dispatched) or no longer showing it (finished).
async function naturalLatencies(page, since) {
  const events = [];
  for (let after = 0; ;) {
    const batch = await apiOk('GET', `/api/v1/events/log?after=${after}&limit=10000`);
    if (batch.length === 0) break;
    events.push(...batch);
    after = batch[batch.length - 1].seq;
  }
  const log = await boardLog(page);
  const dispatched = [];
  const finished = [];
  const byWindow = [];
  let unmatched = 0;
  let watched = 0;
  for (const { at_ms: at, event } of events) {
    const { kind, machine_id: machine } = event;
    if (at < since || !machine || event.job_id === undefined) continue;
    watched += 1;
    const job = String(event.job_id);
    const later = (c) => c.machine === machine && c.at >= at;
    let match;
    if (kind === 'job_dispatched') {
      match = log.find((c) => later(c) && c.job === job);
      if (match) {
        dispatched.push(match.at - at);
        const window = Math.floor((at - since) / 1000 / WINDOW_SECONDS);
        (byWindow[window] ??= []).push(match.at - at);
      }
    } else if (kind === 'job_finished') {
      match = log.find((c) => later(c) && c.job !== job);
      if (match) finished.push(match.at - at);
    } else {
      continue;
    }
    if (!match) unmatched += 1;
  }
  return { dispatched, finished, byWindow, unmatched, events: watched };
}

function row(label, values) {
  const sorted = [...values].sort((a, b) => a - b);
  const cell = (v) => (Number.isFinite(v) ? `${Math.round(v)}`.padStart(6) : '     -');
  return `${label.padEnd(28)}${String(sorted.length).padStart(6)}${cell(percentile(sorted, 50))}${cell(percentile(sorted, 95))}${cell(sorted[sorted.length - 1])}`;
}

const browser = await launch();
try {
  const progress = (what) => console.error(`bench-fleet: ${what} (${((Date.now() - began) / 1000).toFixed(1)} s)`);
  const began = Date.now();
  const machines = await apiOk('GET', '/api/v1/machines');
  await fillThePlant(3);
  progress('orders approved');
  await waitUntil('most machines busy', async () => {
    const now = await apiOk('GET', '/api/v1/machines');
    return now.filter((m) => m.state === 'busy').length >= machines.length / 2;
  }, 120_000);
  progress('half the fleet busy');

  const loads = [];
  for (let i = 0; i < LOADS; i += 1) {
    loads.push(await measureLoad(browser));
    progress(`load ${i + 1} measured`);
  }
  check(loads.every((l) => l.cards === machines.length), `every load shows ${machines.length} cards`);

  const { page } = await login(browser, ACCOUNTS.operator);
  await page.goto('/fleet');
  await page.locator('[data-testid^="machine-card-"]').first().waitFor();
  await watchBoard(page);
  const watchedFrom = Date.now();
  const { pause, resume } = await measurePauses(page, watchedFrom);
  progress('pauses measured');
  const natural = await naturalLatencies(page, watchedFrom);
  const watchedSeconds = (Date.now() - watchedFrom) / 1000;
  const swapped = await page.evaluate(() => window.cardsSwapped);
  await screenshot(page, 'fleet-200-desktop');

  const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
  const med = (key) => median(loads.map((l) => l[key]));
  console.log(`\nfleet board, ${machines.length} simulated machines, ${loads.length} cold loads (median)`);
  console.log(`  HTML of /fleet              ${kb(med('htmlBytes'))} (${kb(med('htmlTransferred'))} on the wire)`);
  console.log(`  transferred with assets     ${kb(med('transferred'))} in ${med('requests')} requests`);
  console.log(`  DOM nodes                   ${med('nodes')}`);
  console.log(`  first contentful paint      ${Math.round(med('firstContentfulPaint'))} ms`);
  console.log(`  DOMContentLoaded / load     ${Math.round(med('domContentLoaded'))} / ${Math.round(med('load'))} ms`);
  console.log(`\nevent → board latency (ms), ${watchedSeconds.toFixed(0)} s watched, ${natural.events} run events, ${(natural.events / watchedSeconds).toFixed(0)} run events/s, ${(swapped / watchedSeconds).toFixed(0)} cards swapped/s`);
  console.log(`${'event'.padEnd(28)}${'n'.padStart(6)}${'p50'.padStart(6)}${'p95'.padStart(6)}${'max'.padStart(6)}`);
  console.log(row('pause (API call → card)', pause));
  console.log(row('resume (API call → card)', resume));
  console.log(row('run dispatched (event → card)', natural.dispatched));
  console.log(row('run finished (event → card)', natural.finished));
  natural.byWindow.forEach((values, i) => {
    console.log(row(`  dispatched, ${i * WINDOW_SECONDS}-${(i + 1) * WINDOW_SECONDS} s`, values ?? []));
  });
  if (natural.unmatched) console.log(`  ${natural.unmatched} run events not (yet) on the board when the watch ended`);
} finally {
  await browser.close();
}
