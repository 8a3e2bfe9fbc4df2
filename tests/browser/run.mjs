// Browser tests of the web client: Debian's Chromium (/usr/bin/chromium,
// headless) driven by playwright-core, against a real place-api (and
// place-worker) on the test profile's services, which must be running
// (tests/run.sh starts them; by hand: compose/services.sh start --profile
// test). Screenshots and logs go to tests/out/browser/. Ends with the line
// "N passed, N failed"; exit status 1 when something failed.
//   node tests/browser/run.mjs [--only SUBSTRING] [--headed]
//   CHROMIUM=/path/to/chromium overrides the browser.
import fs from 'node:fs';
import path from 'node:path';
import {chromium} from 'playwright-core';
import {Api, OUT, Worker, resetState} from './lib.mjs';
import {TESTS} from './tests.mjs';

const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;
const TEST_TIMEOUT_MS = 60000;

fs.mkdirSync(OUT, {recursive: true});
for (const f of fs.readdirSync(OUT)) if (/\.(png|log)$/.test(f)) fs.rmSync(path.join(OUT, f));

let passed = 0, failed = 0;
const t0 = Date.now();

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what} timed out after ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(t));
}

async function main() {
  resetState();
  // the api every test shares (a test may restart it on the same port)
  const api = await new Api('browser-api', {cooldown_seconds: 3}).start();
  // the worker is started by the first test that needs it
  const worker = new Worker('browser-worker');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: !args.includes('--headed'),
    // CI runs as root, where Chromium's sandbox cannot start
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--mute-audio'],
  });
  console.log(`chromium ${browser.version()}, api on ${api.url}`);

  for (const test of TESTS) {
    if (only && !test.name.includes(only)) continue;
    const contexts = [];
    const pageErrors = [];
    const trace = [];
    let pageNo = 0;
    const started = Date.now();
    const ctx = {
      api, worker, browser,
      // a fresh browser context (own cookies: a new guest) and a page in it
      async newPage(opts = {}) {
        const {url = api.url + '/', cookies, ...contextOpts} = opts;
        const context = await browser.newContext({viewport: {width: 1000, height: 700}, ...contextOpts});
        contexts.push(context);
        if (cookies) await context.addCookies(cookies.map((c) => ({url: api.url, ...c})));
        const page = await context.newPage();
        ctx.watch(page);
        if (url) await page.goto(url.startsWith('http') ? url : api.url + url);
        return page;
      },
      watch(page) {
        const n = ++pageNo;
        const t = () => ((Date.now() - started) / 1000).toFixed(3);
        page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
        // what each page said and heard, kept for the log of a failed test
        page.on('console', (m) => trace.push(`${t()} page${n} console.${m.type()}: ${m.text()}`));
        page.on('websocket', (ws) => {
          trace.push(`${t()} page${n} ws open ${ws.url()}`);
          ws.on('framesent', (f) => trace.push(`${t()} page${n} ws > ${String(f.payload).slice(0, 300)}`));
          ws.on('framereceived', (f) => trace.push(`${t()} page${n} ws < ${String(f.payload).slice(0, 300)}`));
          ws.on('close', () => trace.push(`${t()} page${n} ws closed`));
        });
      },
      async shot(page, name, opts = {}) {
        await page.screenshot({path: path.join(OUT, name + '.png'), ...opts});
      },
      pageErrors,
    };
    try {
      await withTimeout(test.fn(ctx), test.timeout || TEST_TIMEOUT_MS, test.name);
      if (pageErrors.length) throw new Error('uncaught errors in the page: ' + pageErrors.join('; '));
      passed++;
      console.log(`ok   browser.${test.name} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
    } catch (e) {
      failed++;
      console.log(`FAIL browser.${test.name} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
      console.log('  ' + String(e && e.stack || e).split('\n').slice(0, 6).join('\n  '));
      fs.writeFileSync(path.join(OUT, `FAILED-${test.name}.log`), trace.join('\n') + '\n');
      console.log(`  pages' console and WebSocket frames: ${path.join(OUT, `FAILED-${test.name}.log`)}`);
      // what the pages showed when it failed
      let n = 0;
      for (const c of contexts) {
        for (const p of c.pages()) {
          try { await p.screenshot({path: path.join(OUT, `FAILED-${test.name}-${++n}.png`)}); } catch (err) { /* closed */ }
        }
      }
    } finally {
      for (const c of contexts) await c.close().catch(() => {});
      // a test that stopped the shared api must leave it running
      if (!api.proc) await api.start().catch((e) => console.log('  cannot restart the api: ' + e.message));
    }
  }
  await browser.close();
  if (worker.proc) await worker.stop();
  await api.stop();
}

try {
  await main();
} catch (e) {
  failed++;
  console.log('FAIL browser.setup: ' + (e && e.stack || e));
}
console.log(`browser tests took ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${path.relative(process.cwd(), OUT) || OUT}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
