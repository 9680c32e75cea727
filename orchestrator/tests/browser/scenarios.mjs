// The scenarios, in one browser, against the real microfab process that
// tests/browser.rs started: a maker submits a spec with errors, sees them inline, fixes it; an
// operator approves it; the fleet board shows jobs running live; the operator pauses a machine
// and scraps a unit; a maker cannot see another maker's order nor reach an operator action; the
// language switch shows Korean; every page at both sizes for each role; logging out closes
// the session.
import {
  ACCOUNTS, BASE, PAGES, api, apiOk, check, csrfToken, launch, login, newSession, runSteps,
  screenshot, screenshotBothSizes, waitUntil,
} from './lib.mjs';

const HANGUL = /[\uac00-\ud7a3]/;

// A laser program small enough to read: one 80 x 30 label outline, laser on with M3.
const LABEL_PROGRAM = `(garden bed label, 3 mm plywood, 6 up)
G21
G90
M5
G0 X10 Y10
M3 S800
G1 X90 Y10 F1200
G1 X90 Y40
G1 X10 Y40
G1 X10 Y10
M5
G0 X0 Y0
`;

// The spec as the maker first writes it: a program it does not include and a run of zero
// units. Both are reported at once, each at its line.
function labelSpec(maker, { program, unitsPerRun }) {
  return `spec_version = 1
product = "Garden bed labels"
maker = "${maker}"
quantity = 600
priority = "standard"
due = "2027-05-01"
description = "Engraved plywood labels for the community garden beds."

[[steps]]
id = "cut"
name = "Laser-cut labels"
capability = "laser"
program = "${program}"
units_per_run = ${unitsPerRun}
run_seconds = 600
setup_seconds = 120
`;
}
/// The 1-based line of `text` that starts with `prefix`.
function lineOf(text, prefix) {
  const index = text.split('\n').findIndex((line) => line.startsWith(prefix));
  check(index >= 0, `no line starting with ${prefix}`);
  return index + 1;
}

// The other maker's order, submitted over the API: router work, so more of the board moves.
function pegSpec(maker) {
  return `spec_version = 1
product = "Tool wall pegs"
maker = "${maker}"
quantity = 400
priority = "standard"
due = "2027-06-01"

[[steps]]
id = "mill"
name = "Mill the pegs"
capability = "cnc-3axis"
program = "programs/pegs.nc"
units_per_run = 8
run_seconds = 900
setup_seconds = 300
`;
}
const PEG_PROGRAM = 'G21\nG90\nG0 Z5\nG0 X10 Y10\nG1 Z-2 F300\nG1 X60 Y10 F900\nG1 X60 Y40\nG0 Z5\nM30\n';

const state = { browser: null, maker: null, operator: null, board: null, order: null, otherOrder: null };

async function ordersOf(maker) {
  return apiOk('GET', `/api/v1/orders?maker=${encodeURIComponent(maker)}`);
}

/// Fill the submit page with a spec and its programs, and send it.
async function submitSpec(page, specText, programs) {
  await page.getByTestId('spec-text').fill(specText);
  await page.getByTestId('spec-programs').setInputFiles(
    Object.entries(programs).map(([name, text]) => ({
      name: name.split('/').pop(), mimeType: 'text/plain', buffer: Buffer.from(text),
    })),
  );
  await page.getByTestId('spec-submit').click();
}

async function makerSubmitsSpecWithErrorsThenFixesIt() {
  state.maker = await login(state.browser, ACCOUNTS.maker);
  const { page } = state.maker;
  check(new URL(page.url()).pathname === '/my/orders', `a maker lands on /my/orders, not ${page.url()}`);
  await page.getByTestId('nav-submit').click();
  await page.waitForURL('**/submit');

  const programs = { 'programs/labels.nc': LABEL_PROGRAM };
  const wrong = labelSpec(ACCOUNTS.maker.name, { program: 'programs/label.nc', unitsPerRun: 0 });
  const expected = [lineOf(wrong, 'program ='), lineOf(wrong, 'units_per_run =')];
  await submitSpec(page, wrong, programs);
  const errors = page.getByTestId('spec-error');
  await errors.first().waitFor();
  const lines = (await errors.evaluateAll((nodes) => nodes.map((n) => Number(n.dataset.line)))).sort((a, b) => a - b);
  check(
    JSON.stringify(lines) === JSON.stringify(expected),
    `errors inline at lines ${expected}, got ${JSON.stringify(lines)}: ${await errors.allTextContents()}`,
  );
  const texts = (await errors.allTextContents()).join(' | ');
  check(texts.includes('programs/label.nc'), `the program error names the missing program: ${texts}`);
  check((await ordersOf(ACCOUNTS.maker.name)).length === 0, 'a spec with errors makes no order');
  await screenshot(page, 'maker-submit-with-errors');

  await submitSpec(page, labelSpec(ACCOUNTS.maker.name, { program: 'programs/labels.nc', unitsPerRun: 6 }), programs);
  await page.getByTestId('flash').waitFor();
  check(await errors.count() === 0, 'the fixed spec shows no errors');
  const orders = await waitUntil('the fixed spec is an order', async () => {
    const mine = await ordersOf(ACCOUNTS.maker.name);
    return mine.length === 1 && mine;
  });
  state.order = orders[0];
  check(state.order.state === 'submitted', `the new order waits for approval: ${state.order.state}`);
  await page.goto('/my/orders');
  await page.getByTestId(`order-row-${state.order.id}`).waitFor();
}

async function operatorApprovesFromIntake() {
  // The other maker's order, made over the API for the isolation checks, approved at once.
  const other = await apiOk('POST', '/api/v1/orders', {
    spec_toml: pegSpec(ACCOUNTS.otherMaker.name),
    source_name: 'pegs.toml',
    programs: { 'programs/pegs.nc': PEG_PROGRAM },
  });
  state.otherOrder = other.order;

  state.operator = await login(state.browser, ACCOUNTS.operator);
  const { page, context } = state.operator;
  check(new URL(page.url()).pathname === '/fleet', `an operator lands on /fleet, not ${page.url()}`);
  // The board stays open in its own tab while the operator approves in another.
  state.board = await context.newPage();
  await state.board.goto('/fleet');
  await watchBoard(state.board);
  const lasers = await state.board.locator('[data-testid^="machine-card-laser-"]').evaluateAll(
    (cards) => cards.map((c) => c.dataset.state));
  check(lasers.length > 0 && lasers.every((s) => s === 'idle'), `the lasers wait idle: ${lasers}`);

  await page.getByTestId('nav-intake').click();
  await page.waitForURL('**/intake');
  const row = page.getByTestId(`order-row-${state.order.id}`);
  await row.waitFor();
  await page.getByTestId(`approve-${state.order.id}`).click();
  await row.waitFor({ state: 'detached' });
  await page.getByTestId('flash').waitFor();
  await waitUntil('the order is approved', async () => {
    const order = await apiOk('GET', `/api/v1/orders/${state.order.id}`);
    return order.state !== 'submitted';
  });
  await apiOk('POST', `/api/v1/orders/${state.otherOrder.id}/approve`, {});
}

/// Records, in the page, every change of a machine card's state or run with the page's clock,
/// whether htmx swaps an attribute or the whole card.
async function watchBoard(page) {
  await page.evaluate(() => {
    window.boardLog = [];
    window.sameDocument = true;
    const last = new Map();
    const scan = () => {
      for (const card of document.querySelectorAll('[data-testid^="machine-card-"]')) {
        const machine = card.dataset.testid.slice('machine-card-'.length);
        const now = { state: card.dataset.state, job: card.dataset.job ?? null };
        const before = last.get(machine);
        if (before && (before.state !== now.state || before.job !== now.job)) {
          window.boardLog.push({ machine, from: before, to: now, at: Date.now() });
        }
        last.set(machine, now);
      }
    };
    scan();
    new MutationObserver(scan).observe(document.body, {
      subtree: true, childList: true, attributes: true, attributeFilter: ['data-state', 'data-job'],
    });
  });
}

async function fleetBoardShowsJobsLive() {
  const page = state.board;
  const cards = await page.locator('[data-testid^="machine-card-"]').count();
  const machines = await apiOk('GET', '/api/v1/machines');
  check(cards === machines.length, `one card per machine: ${cards} cards, ${machines.length} machines`);
  // The approval set the lasers going; each run ends and the next begins, and the open board
  // follows both without a reload.
  await page.waitForFunction(() => {
    const log = window.boardLog;
    const started = log.some((c) => c.from.state === 'idle' && c.to.state === 'busy' && c.to.job);
    const next = log.some((c) => c.from.job && c.to.job && c.from.job !== c.to.job);
    return started && next;
  }, null, { timeout: 60_000 });
  check(await page.evaluate(() => window.sameDocument === true), 'the board was reloaded');
  await screenshot(page, 'operator-fleet-live');
  await page.close();
}

async function operatorPausesAMachine() {
  const { page } = state.operator;
  await page.goto('/fleet');
  const busy = page.locator('[data-testid^="machine-card-"][data-state="busy"]').first();
  await busy.waitFor({ timeout: 60_000 });
  const machine = (await busy.getAttribute('data-testid')).slice('machine-card-'.length);
  const card = page.getByTestId(`machine-card-${machine}`);
  await page.getByTestId(`pause-${machine}`).click();
  await page.locator(`[data-testid="machine-card-${machine}"][data-state="paused"]`).waitFor();
  const paused = await apiOk('GET', `/api/v1/machines/${machine}`);
  check(paused.state === 'paused', `the API agrees ${machine} is paused: ${paused.state}`);
  await screenshot(page, 'operator-fleet-paused');
  await page.getByTestId(`resume-${machine}`).click();
  await waitUntil(`${machine} leaves paused`, async () => (await card.getAttribute('data-state')) !== 'paused');
}

async function operatorScrapsAUnit() {
  const { page } = state.operator;
  const id = state.order.id;
  // The newest good unit: the order page lists the newest units first.
  const unit = await waitUntil('the order has a good unit', async () => {
    const good = (await apiOk('GET', `/api/v1/orders/${id}/units`)).filter((u) => u.result === 'good');
    return good.length > 0 && good.reduce((a, b) => (a.id > b.id ? a : b));
  });
  const before = (await apiOk('GET', `/api/v1/orders/${id}`)).scrapped;
  await page.goto(`/orders/${id}`);
  const scrapped = page.getByTestId('order-scrapped');
  check(Number(await scrapped.textContent()) === before, `the order page shows ${before} scrapped`);
  await page.getByTestId(`scrap-unit-${unit.id}`).click();
  await page.getByTestId(`scrap-reason-${unit.id}`).fill('label edge charred at inspection');
  await page.getByTestId(`scrap-confirm-${unit.id}`).click();
  await page.getByTestId('flash').waitFor();
  await waitUntil('the order page shows one more scrapped', async () =>
    Number(await scrapped.textContent()) === before + 1);
  const after = await apiOk('GET', `/api/v1/orders/${id}/units`);
  const gone = after.find((u) => u.id === unit.id);
  check(gone.result === 'scrapped' && gone.reason === 'label edge charred at inspection',
    `the unit is scrapped with its reason: ${JSON.stringify(gone)}`);
}

async function makerStaysInTheirLane() {
  const { page } = state.maker;
  const other = state.otherOrder.id;
  const response = await page.goto(`/orders/${other}`);
  check(response.status() === 404, `another maker's order is 404 to a maker, got ${response.status()}`);
  await screenshot(page, 'maker-other-order-404');
  await page.goto('/my/orders');
  check(await page.getByTestId(`order-row-${other}`).count() === 0, 'their list holds no other maker\'s order');
  for (const operatorPage of ['fleet', 'tasks', 'intake', 'orders', 'materials', 'interrupted', 'events']) {
    check(await page.getByTestId(`nav-${operatorPage}`).count() === 0, `a maker's nav offers ${operatorPage}`);
  }
  const fleet = await page.goto('/fleet');
  check(fleet.status() === 403, `/fleet is 403 to a maker, got ${fleet.status()}`);
  await screenshot(page, 'maker-fleet-403');

  // Straight at the server, with the maker's own session and CSRF token: still refused.
  await page.goto('/my/orders');
  const csrf = await csrfToken(page);
  const machine = 'router-1';
  const before = (await apiOk('GET', `/api/v1/machines/${machine}`)).state;
  const panelPause = await page.request.post(`/machines/${machine}/pause`, {
    headers: { 'X-CSRF-Token': csrf, 'HX-Request': 'true' }, form: {},
  });
  check(panelPause.status() === 403, `a maker's panel POST to pause is ${panelPause.status()}, not 403`);
  const panelApprove = await page.request.post(`/intake/${state.order.id}/approve`, {
    headers: { 'X-CSRF-Token': csrf, 'HX-Request': 'true' }, form: {},
  });
  check(panelApprove.status() === 403, `a maker's panel POST to approve is ${panelApprove.status()}, not 403`);
  const apiPause = await page.request.post(`/api/v1/machines/${machine}/pause`, {
    headers: { 'X-CSRF-Token': csrf, 'content-type': 'application/json' }, data: {},
  });
  check(apiPause.status() === 403, `a maker's API POST to pause is ${apiPause.status()}, not 403`);
  const approve = await page.request.post(`/api/v1/orders/${state.order.id}/approve`, {
    headers: { 'X-CSRF-Token': csrf, 'content-type': 'application/json' }, data: {},
  });
  check(approve.status() === 403, `a maker approving is ${approve.status()}, not 403`);
  const after = (await apiOk('GET', `/api/v1/machines/${machine}`)).state;
  check(after !== 'paused' || before === 'paused', `${machine} was paused by a maker`);
}

async function languageSwitchShowsKorean() {
  const { page } = state.maker;
  await page.goto('/my/orders');
  check(await page.locator('html').getAttribute('lang') === 'en', 'English by the browser\'s language');
  const english = await page.locator('nav').innerText();
  check(!HANGUL.test(english), `the English nav holds Korean: ${english}`);
  await page.getByTestId('lang-ko').click();
  await page.waitForFunction(() => document.documentElement.lang === 'ko');
  const korean = await page.locator('nav').innerText();
  check(HANGUL.test(korean), `the nav after the switch is not Korean: ${korean}`);
  await screenshotBothSizes(page, 'maker-my-orders-ko');
  await page.getByTestId('lang-en').click();
  await page.waitForFunction(() => document.documentElement.lang === 'en');

  // A browser that asks for Korean gets it before anyone logs in.
  const visitor = await newSession(state.browser, { locale: 'ko-KR' });
  await visitor.page.goto('/login');
  check(HANGUL.test(await visitor.page.locator('body').innerText()), 'the login page in Korean for a Korean browser');
  await screenshotBothSizes(visitor.page, 'login-ko');
  await visitor.context.close();
}

/// A page pattern's placeholders filled with things the role may see.
function concretePath(pattern) {
  const path = pattern
    .replace('/machines/{id}', '/machines/laser-1')
    .replace('/orders/{id}', `/orders/${state.order.id}`);
  check(!path.includes('{'), `no example for the page ${pattern}: add one in concretePath`);
  return path;
}

const RANK = { maker: 0, operator: 1, admin: 2 };

async function everyPageForEveryRole() {
  check(PAGES.length > 0, 'MICROFAB_PAGES lists the panel\'s pages');
  const visitor = await newSession(state.browser);
  await visitor.page.goto('/login');
  await screenshotBothSizes(visitor.page, 'login');
  await visitor.context.close();

  // An order left waiting, so that the intake page is shown with a pre-screen report.
  await apiOk('POST', '/api/v1/orders', {
    spec_toml: pegSpec(ACCOUNTS.otherMaker.name).replace('quantity = 400', 'quantity = 9000'),
    source_name: 'pegs-many.toml',
    programs: { 'programs/pegs.nc': PEG_PROGRAM },
  });

  state.admin = await login(state.browser, ACCOUNTS.admin);
  const sessions = { maker: state.maker, operator: state.operator, admin: state.admin };
  let shots = 0;
  for (const { path: pattern, role: least } of PAGES) {
    if (pattern === '/login' || pattern === '/') continue;
    for (const [role, { page }] of Object.entries(sessions)) {
      // An admin sees an operator's pages as the operator does: one set of those is enough.
      if (RANK[role] < RANK[least] || (role === 'admin' && least !== 'admin')) continue;
      const path = concretePath(pattern);
      const response = await page.goto(path);
      check(response.status() === 200, `${role} ${path}: ${response.status()}`);
      check(page.problems.length === 0, `${role} ${path}: ${page.problems.join('; ')}`);
      await screenshotBothSizes(page, `${role}${pattern.replace(/[{}]/g, '').replaceAll('/', '-')}`);
      shots += 2;
    }
  }
  console.log(`     ${shots} screenshots`);
}

async function loggingOutClosesTheSession() {
  for (const [role, session] of [['maker', state.maker], ['operator', state.operator], ['admin', state.admin]]) {
    const { page, context } = session;
    await page.goto('/');
    const cookie = (await context.cookies()).find((c) => c.name === 'microfab_session');
    check(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', `${role}'s session cookie is HttpOnly and SameSite=Strict`);
    await page.getByTestId('logout').click();
    await page.waitForURL('**/login**');
    const back = await page.goto('/my/orders');
    check(new URL(page.url()).pathname === '/login', `${role} after logout reached ${page.url()} (${back.status()})`);
    // The old cookie, replayed, opens nothing: the session ended on the server.
    const replay = await fetch(`${BASE}/my/orders`, {
      headers: { cookie: `microfab_session=${cookie.value}` }, redirect: 'manual',
    });
    check(replay.status === 303 && replay.headers.get('location').startsWith('/login'),
      `${role}'s old session cookie still answers ${replay.status}`);
    const apiReplay = await fetch(`${BASE}/api/v1/orders`, { headers: { cookie: `microfab_session=${cookie.value}` } });
    check(apiReplay.status === 401, `${role}'s old cookie on the API: ${apiReplay.status}`);
  }
}

state.browser = await launch();
try {
  await runSteps([
    ['a maker submits a spec with errors, sees them inline, fixes it', makerSubmitsSpecWithErrorsThenFixesIt],
    ['an operator sees it in intake and approves it', operatorApprovesFromIntake],
    ['the fleet board shows jobs starting and ending live', fleetBoardShowsJobsLive],
    ['an operator pauses a machine, then resumes it', operatorPausesAMachine],
    ['an operator scraps a unit with a reason', operatorScrapsAUnit],
    ['a maker cannot see another maker\'s order nor reach an operator action', makerStaysInTheirLane],
    ['the language switch shows Korean', languageSwitchShowsKorean],
    ['every page, for each role that sees it, at 1024x768 and 1600x1000', everyPageForEveryRole],
    ['logging out closes the session', loggingOutClosesTheSession],
  ], () => ({
    maker: state.maker?.page, operator: state.operator?.page, board: state.board, admin: state.admin?.page,
  }));
} finally {
  await state.browser.close();
}
