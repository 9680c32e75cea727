// What every browser script shares: the environment the Rust harness (tests/browser.rs) sets,
// launching Debian's chromium, logging in, the admin API, waiting for states, screenshots.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through tests/browser.rs (cargo test -p microfab --test browser)`);
  return value;
}

export const BASE = required('MICROFAB_URL');
export const TOKEN = required('MICROFAB_TOKEN');
export const ACCOUNTS = JSON.parse(required('MICROFAB_ACCOUNTS'));
export const PAGES = JSON.parse(process.env.MICROFAB_PAGES || '[]');
export const ARTIFACTS = required('MICROFAB_ARTIFACTS');
mkdirSync(ARTIFACTS, { recursive: true });

// Generous: the machine may be a loaded 2-core box. Nothing sleeps a guessed time; everything
// waits for a state with these as the limit.
export const TIMEOUT = 30_000;
export const SIZES = { tablet: { width: 1024, height: 768 }, desktop: { width: 1600, height: 1000 } };

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];

export async function launch() {
  return chromium.launch({
    executablePath: process.env.MICROFAB_CHROMIUM || '/usr/bin/chromium',
    args: CHROMIUM_FLAGS,
  });
}

/// A fresh browser context (its own cookies) with the page errors it meets recorded, so a
/// scenario can fail on a script error or a broken asset rather than on a missing element.
export async function newSession(browser, { locale = 'en-US', viewport = SIZES.tablet } = {}) {
  const context = await browser.newContext({ locale, viewport, baseURL: BASE });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`script error on ${page.url()}: ${error.message}`));
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.pathname.startsWith('/assets/') && response.status() >= 400) {
      page.problems.push(`asset ${url.pathname} answered ${response.status()}`);
    }
  });
  return { context, page };
}

/// Log in through the login form as `account` ({ name, password }); lands where the panel sends
/// that role.
export async function login(browser, account, options) {
  const session = await newSession(browser, options);
  const { page } = session;
  await page.goto('/login');
  await page.locator('input[name="name"]').fill(account.name);
  await page.locator('input[name="password"]').fill(account.password);
  await Promise.all([
    page.waitForURL((url) => url.pathname !== '/login'),
    page.locator('input[name="password"]').press('Enter'),
  ]);
  return session;
}

/// The CSRF token the page sends on its htmx requests (`<body hx-headers='{"X-CSRF-Token": ..}'>`).
export async function csrfToken(page) {
  const headers = await page.locator('body').getAttribute('hx-headers');
  if (!headers) throw new Error(`no hx-headers on the body of ${page.url()}`);
  return JSON.parse(headers)['X-CSRF-Token'];
}

/// The JSON API as the bootstrap admin: { status, body }.
export async function api(method, path, body) {
  const response = await fetch(BASE + path, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(method === 'GET' ? {} : { 'content-type': 'application/json' }),
    },
    body: method === 'GET' ? undefined : JSON.stringify(body ?? {}),
  });
  const text = await response.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: response.status, body: parsed };
}

export async function apiOk(method, path, body) {
  const { status, body: answer } = await api(method, path, body);
  if (status < 200 || status >= 300) {
    throw new Error(`${method} ${path}: ${status} ${JSON.stringify(answer)}`);
  }
  return answer;
}

/// Poll `probe` (async, returns a truthy value when done) until it holds; fails naming `what`.
export async function waitUntil(what, probe, timeout = 60_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`waited ${timeout / 1000} s, never: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

export async function screenshot(page, name) {
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/// Screenshots of the page as it is at both sizes: `<name>-1024x768.png`, `<name>-1600x1000.png`.
export async function screenshotBothSizes(page, name) {
  const before = page.viewportSize();
  for (const size of Object.values(SIZES)) {
    await page.setViewportSize(size);
    await screenshot(page, `${name}-${size.width}x${size.height}`);
  }
  await page.setViewportSize(before);
}

/// Run named steps in order; on the first failure, screenshot the open pages, print what failed
/// and exit non-zero (the harness shows this output).
export async function runSteps(steps, pagesToCapture) {
  for (const [name, run] of steps) {
    const started = Date.now();
    try {
      await run();
    } catch (error) {
      console.log(`FAIL ${name} (${Date.now() - started} ms)\n${error.stack || error}`);
      for (const [label, page] of Object.entries(pagesToCapture())) {
        if (!page || page.isClosed()) continue;
        try {
          const file = await screenshot(page, `FAILED-${label}`);
          console.log(`  ${label} was at ${page.url()} (${file})`);
          for (const problem of page.problems ?? []) console.log(`  ${label}: ${problem}`);
        } catch { /* the page may be gone with the browser */ }
      }
      process.exitCode = 1;
      return false;
    }
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  }
  return true;
}
