// Helpers of the browser journeys: Debian's Chromium through playwright-core, signing in, antd
// selects, screenshots and an API client for checks and setup.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const BASE = process.env.TRELLIS_URL ?? 'http://127.0.0.1:8080';
export const PASSWORD = process.env.TRELLIS_PASSWORD ?? '';
export const SHOTS = process.env.TRELLIS_SCREENSHOTS ?? '';
const CHROMIUM = process.env.TRELLIS_CHROMIUM ?? '/usr/bin/chromium';

/** Pages opened so far (screenshotted when a journey fails). */
export const openPages = [];

export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/**
 * A page that fails the journey on any uncaught error in the app. `reducedMotion: 'reduce'` is a
 * person who asked their system for less motion: the app then opens dialogs and menus without
 * animation (the builder journey runs so; the CLM journey keeps the animations).
 */
export async function newPage(browser, { locale = 'en-US', width = 1280, height = 800, reducedMotion = 'no-preference' } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, locale, reducedMotion });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.errors = [];
  openPages.push(page);
  page.on('pageerror', (e) => page.errors.push(e.message));
  return page;
}

export async function signIn(page, username, password, lang = 'en') {
  await page.goto(`${BASE}/login`);
  await page.evaluate((l) => localStorage.setItem('trellis.lang', l), lang);
  await page.reload();
  const zh = lang === 'zh-CN';
  await page.getByLabel(zh ? '用户名' : 'Username').fill(username);
  await page.getByLabel(zh ? '密码' : 'Password').fill(password);
  await page.getByRole('button', { name: zh ? '登 录' : 'Sign in' }).or(page.getByRole('button', { name: '登录' })).first().click();
  await page.waitForURL(`${BASE}/`);
}

/**
 * The open dialog once antd's opening animation is over. Typing into or clicking a modal that is
 * still zooming in has, on a loaded machine, left its button without effect (an install that never
 * reached the server); waiting for the motion classes to go away removes that race.
 */
export async function settledDialog(page) {
  await page.locator('.ant-modal:not(.ant-zoom)').last().waitFor();
  return page.getByRole('dialog');
}

/** Open the antd select labelled `label` (inside `scope`) and pick the option showing `option`. */
export async function choose(page, label, option, scope = page) {
  await pick(page, scope.getByLabel(label, { exact: true }).first(), option);
}

/** Open the select `opener` and click `option`, reopening it if a re-render closed it meanwhile. */
export async function pick(page, opener, option) {
  for (let attempt = 1; ; attempt++) {
    // Let a dropdown that is still closing go first, so the option is picked from this one.
    for (let i = 0; i < 20 && (await page.locator('.ant-select-dropdown:visible').count()) > 0; i++) await page.waitForTimeout(100);
    await opener.click();
    const item = page.locator('.ant-select-dropdown:visible').last().locator('.ant-select-item-option').filter({ hasText: option }).first();
    try {
      await item.click({ timeout: 4000 });
      return;
    } catch (error) {
      if (attempt >= 4) throw error;
      await page.keyboard.press('Escape');
    }
  }
}

/** Open the "More" menu of an app card and pick `item` from the menu that just opened. */
export async function cardMenu(page, app, item) {
  for (let attempt = 1; ; attempt++) {
    // A menu still closing from an earlier click goes first.
    for (let i = 0; i < 20 && (await page.locator('.ant-dropdown:visible').count()) > 0; i++) await page.waitForTimeout(100);
    await page.getByTestId(`app-card-${app}`).getByRole('button', { name: 'More' }).click();
    try {
      await page.locator('.ant-dropdown:visible').last().getByRole('menuitem', { name: item }).click({ timeout: 4000 });
      return;
    } catch (error) {
      if (attempt >= 3) throw error;
      await page.keyboard.press('Escape');
    }
  }
}

export async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.waitForTimeout(600);
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

export function expect(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`);
}

export async function api(method, path, token, body) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export async function token(username, password) {
  const response = await fetch(`${BASE}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
  return (await response.json()).token;
}
