// The operator's tasks page in a real browser, at a tablet's size, against the real microfab
// process tests/browser.rs started with lasers that need a sheet loaded before each run and
// the parts taken off after it (and no simulated operators): the list shows a load as it
// appears, "Loaded" sends the run, the unload appears without a reload, and the operator
// scraps two pieces with a reason through "Scrap…", the stepper and a chip, while the list
// changes underneath the open form. The fleet board shows the wait on the machine's card.
import {
  ACCOUNTS, apiOk, check, launch, login, runSteps, screenshot, waitUntil,
} from './lib.mjs';

const TABLET = { width: 820, height: 1180 };

const COASTER_PROGRAM = 'G21\nG90\nM5\nG0 X5 Y5\nM3 S700\nG2 X5 Y5 I40 J0 F1000\nM5\nG0 X0 Y0\n';

function coasterSpec(maker) {
  return `spec_version = 1
product = "Plywood coasters"
maker = "${maker}"
quantity = 24
priority = "standard"
due = "2027-05-01"

[[steps]]
id = "cut"
name = "Laser-cut coasters"
capability = "laser"
program = "programs/coaster.nc"
units_per_run = 6
run_seconds = 600
materials = [{ material = "plywood-birch-6mm", per_run = 1 }]
`;
}

const state = { browser: null, operator: null, board: null, order: null, job: null };

async function job(id) {
  return (await apiOk('GET', '/api/v1/jobs')).find((j) => j.id === id);
}

async function theListShowsALoadAsItAppears() {
  state.operator = await login(state.browser, ACCOUNTS.operator, { viewport: TABLET });
  const { page } = state.operator;
  await page.getByTestId('nav-tasks').click();
  await page.waitForURL('**/tasks');
  await page.getByTestId('tasks-none').waitFor();
  await page.evaluate(() => { window.sameDocument = true; });
  // The fleet board, open in another tab, shows the same wait on the machine's card.
  state.board = await state.operator.context.newPage();
  await state.board.goto('/fleet');

  const submitted = await apiOk('POST', '/api/v1/orders', {
    spec_toml: coasterSpec(ACCOUNTS.maker.name),
    source_name: 'coasters.toml',
    programs: { 'programs/coaster.nc': COASTER_PROGRAM },
  });
  state.order = submitted.order.id;
  await apiOk('POST', `/api/v1/orders/${state.order}/approve`, {});
  const loaded = page.locator('[data-testid^="loaded-"]').first();
  await loaded.waitFor();
  state.job = Number((await loaded.getAttribute('data-testid')).slice('loaded-'.length));
  check((await job(state.job)).state === 'awaiting_load', `job ${state.job} waits for its load`);
  const machine = (await job(state.job)).machine_id;
  const card = state.board.locator(`[data-testid="machine-card-${machine}"][data-task="load"]`);
  await card.waitFor();
  check(/Load/.test(await state.board.getByTestId(`task-badge-${machine}`).innerText()),
    'the card\'s badge names the load');
  await screenshot(state.board, 'operator-fleet-task-badge-820x1180');
  await state.board.close();
  const box = await loaded.boundingBox();
  check(box.height >= 48 && box.width >= 48, `"Loaded" is a big target: ${JSON.stringify(box)}`);
  await screenshot(page, 'operator-tasks-load-820x1180');
}

async function loadedSendsTheRun() {
  const { page } = state.operator;
  await page.getByTestId(`loaded-${state.job}`).click();
  await page.getByTestId(`task-load-${state.job}`).waitFor({ state: 'detached' });
  await page.getByTestId('flash').waitFor();
  await waitUntil('the run left awaiting_load', async () => (await job(state.job)).state !== 'awaiting_load');
}

async function theUnloadAppearsLiveAndIsScrappedInTwoSteps() {
  const { page } = state.operator;
  const card = page.getByTestId(`task-unload-${state.job}`);
  await card.waitFor({ timeout: 60_000 });
  check(await page.evaluate(() => window.sameDocument === true), 'the tasks page was reloaded');
  const units = (await job(state.job)).units;

  await page.getByTestId(`scrap-open-${state.job}`).click();
  const count = page.getByTestId(`scrap-count-${state.job}`);
  await count.waitFor();
  check(await count.inputValue() === '1', `the stepper starts at one piece: ${await count.inputValue()}`);
  await page.getByTestId(`scrap-more-${state.job}`).click();
  check(await count.inputValue() === '2', `"+" makes it two: ${await count.inputValue()}`);
  const chip = page.getByTestId(`scrap-reason-${state.job}-3`);
  const reason = await chip.getAttribute('value');
  await chip.locator('xpath=..').click();
  check(await chip.isChecked(), 'the tapped chip is chosen');

  // The list changes while the form is open (the other laser's load is confirmed over the
  // API): the open form and what was entered stay.
  const other = (await apiOk('GET', '/api/v1/tasks')).find((t) => t.kind === 'load' || t.kind === 'setup');
  check(other, 'the other laser waits for its load');
  await apiOk('POST', `/api/v1/jobs/${other.job_id}/load`, {});
  await page.getByTestId(`task-${other.id}`).waitFor({ state: 'detached' });
  check(await page.locator(`#scrap-unload-${state.job}`).evaluate((d) => d.open), 'the scrap form stayed open');
  check(await count.inputValue() === '2', `the count stayed: ${await count.inputValue()}`);
  check(await chip.isChecked(), 'the chosen reason stayed');
  await screenshot(page, 'operator-tasks-scrap-820x1180');

  await page.getByTestId(`scrap-confirm-${state.job}`).click();
  await card.waitFor({ state: 'detached' });
  await page.getByTestId('flash').waitFor();
  const done = await job(state.job);
  check(done.state === 'done' && done.scrapped === 2 && done.good === units - 2,
    `the run is done with 2 scrapped: ${JSON.stringify(done)}`);
  const scrapped = (await apiOk('GET', `/api/v1/orders/${state.order}/units`))
    .filter((u) => u.job_id === state.job && u.result === 'scrapped');
  check(scrapped.length === 2 && scrapped.every((u) => u.reason === reason),
    `two pieces scrapped as "${reason}": ${JSON.stringify(scrapped)}`);
  check(await page.evaluate(() => window.sameDocument === true), 'the tasks page was reloaded');
  await screenshot(page, 'operator-tasks-after-820x1180');
}

state.browser = await launch();
try {
  await runSteps([
    ['the tasks page shows a load as it appears', theListShowsALoadAsItAppears],
    ['"Loaded" sends the run', loadedSendsTheRun],
    ['the unload appears live and is inspected with scrap through the stepper and a chip', theUnloadAppearsLiveAndIsScrappedInTwoSteps],
  ], () => ({ operator: state.operator?.page, board: state.board }));
} finally {
  await state.browser.close();
}
