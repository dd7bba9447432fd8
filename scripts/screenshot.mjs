#!/usr/bin/env node
// Takes headless-Chromium screenshots of dashboard pages, for looking at them during development:
//   node scripts/screenshot.mjs URL PASSWORD OUTDIR [path ...] [--width=1280] [--top]  (--top: the first screen only)
// Logs in through the real login form first. Uses Debian's chromium via playwright-core.
import { chromium } from 'playwright-core';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const width = Number(process.argv.find((a) => a.startsWith('--width='))?.slice(8) ?? 1280);
const [base, password, out, ...paths] = args;
if (!base || !password || !out) {
  console.error('usage: node scripts/screenshot.mjs URL PASSWORD OUTDIR [path ...] [--width=1280]');
  process.exit(64);
}
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  await page.goto(`${base}/login`);
  await page.fill('#password', password);
  await Promise.all([
    page.waitForURL((u) => !u.pathname.startsWith('/login')),
    page.click('button[type=submit]'),
  ]);
  for (const p of paths.length ? paths : ['/', '/channels', '/logs', '/stats', '/config']) {
    await page.goto(`${base}${p}`);
    await page.waitForLoadState('networkidle');
    const file = `${out}/${p === '/' ? 'overview' : p.replace(/^\//, '').replace(/[/?&=]/g, '_')}-${width}.png`;
    await page.screenshot({ path: file, fullPage: !process.argv.includes('--top') });
    console.log(file);
  }
} finally {
  await browser.close();
}
