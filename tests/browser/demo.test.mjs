// The demo page in a real browser: Debian's Chromium, driven by playwright-core.
//
//   PLAYMARK_BIN=/work/main/target/debug/playmark node --test demo.test.mjs
//
// It starts `playmark serve` on a free loopback port over a fresh data
// directory, opens `/`, hands a title over from the TV to the Phone, makes
// the Phone's resume a prompt, checks the continue-watching row, and saves a
// screenshot to docs/demo.png. It marks an episode of the demo's series
// watched and plays what is next up, and pages through the history list.
// Then, against a node with --auth jwt, it plays with and without a pasted
// token.
//
// PLAYMARK_DEMO_PROXY=1 serves the page from the source tree
// (crates/server/assets, sdk/js) and forwards everything else to the binary:
// for working on the page with a binary that does not embed it yet.
// CHROMIUM_PATH overrides /usr/bin/chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, mkdir, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = process.env.PLAYMARK_BIN;
const PROXY = process.env.PLAYMARK_DEMO_PROXY === '1';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCREENSHOT = path.join(ROOT, 'docs', 'demo.png');
const KEY = { account_id: 'acct-demo', profile_id: 'A' };

/** Starts `playmark serve` (with `extra` flags) and waits for its "playmark listening" log line. */
async function startPlaymark(dataDir, extra = []) {
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--log-format', 'json', '--data-dir', dataDir, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail = [];
  const keep = (line) => {
    tail.push(line);
    if (tail.length > 50) tail.shift();
  };
  createInterface({ input: child.stderr }).on('line', keep);
  const lines = createInterface({ input: child.stdout });
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`playmark did not listen within 30 s:\n${tail.join('\n')}`)), 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`playmark exited (${code ?? signal}) before listening:\n${tail.join('\n')}`));
    });
    // Keep reading stdout for the whole run, so the server never blocks on logging.
    lines.on('line', (line) => {
      keep(line);
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      if (event.message === 'playmark listening' && event.addr) {
        clearTimeout(timer);
        resolve(event.addr);
      }
    });
  });
  child.removeAllListeners('exit');
  return {
    base: `http://${addr}`,
    tail,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const STATIC = {
  '/': 'crates/server/assets/index.html',
  '/demo.js': 'crates/server/assets/demo.js',
  '/demo.css': 'crates/server/assets/demo.css',
  '/sdk/playmark.js': 'sdk/js/playmark.js',
};

/** PLAYMARK_DEMO_PROXY: the page from the tree, the API from the binary. */
async function startProxy(upstream) {
  const target = new URL(upstream);
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const file = STATIC[url.pathname];
    if (file && req.method === 'GET') {
      const body = await readFile(path.join(ROOT, file));
      res.writeHead(200, { 'content-type': TYPES[path.extname(file) || '.html'] ?? TYPES['.html'], 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    const out = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    out.on('error', (e) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(e));
    });
    req.pipe(out);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Polls `fn` until it returns a truthy value. */
async function until(what, fn, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const clock = (sec) => `${Math.floor(sec / 60)}:${String(Math.floor(sec % 60)).padStart(2, '0')}`;

test('the demo hands a title over from the TV to the Phone and prompts before a big jump back', {
  timeout: 180_000,
}, async (t) => {
  assert.ok(BIN, 'set PLAYMARK_BIN to the playmark binary (e.g. target/debug/playmark); scripts/test does');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'playmark-browser-data-'));
  const profileDir = await mkdtemp(path.join(os.tmpdir(), 'playmark-browser-chromium-'));
  const playmark = await startPlaymark(dataDir);
  t.after(async () => {
    await playmark.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  let base = playmark.base;
  if (PROXY) {
    const proxy = await startProxy(playmark.base);
    t.after(() => proxy.stop());
    base = proxy.base;
  }
  const api = async (p, init) => {
    const res = await fetch(playmark.base + p, init);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const serverRecord = async (video_id) => {
    const q = new URLSearchParams({ ...KEY, video_id });
    const { body } = await api(`/playback/resume?${q}`);
    return body.found ? body.record : null;
  };

  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 1100 },
  });
  t.after(async () => {
    await context.close();
    await rm(profileDir, { recursive: true, force: true });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`${m.text()} (${m.location().url})`);
  });
  const position = async (d) => parseFloat(await page.textContent(`#position-${d}`));

  await page.goto(base + '/');
  await page.waitForSelector('#title-tv option[value="sintel"]', { state: 'attached' });
  assert.equal(await page.inputValue('#account'), 'acct-demo');
  assert.equal(await page.inputValue('#profile'), 'A');
  assert.equal(await page.isVisible('#prompt-tv'), false);
  assert.equal(await page.isVisible('#prompt-phone'), false);

  // 1. The TV plays Sintel at 60x until past 5 minutes, then pauses.
  await page.selectOption('#title-tv', 'sintel');
  await page.selectOption('#speed-tv', '60');
  await page.click('#play-tv');
  await page.waitForSelector('#device-tv[data-state="playing"]');
  await page.waitForFunction(() => parseFloat(document.querySelector('#position-tv').textContent) >= 300, null, { timeout: 30_000 });
  await page.click('#pause-tv');
  await page.waitForSelector('#device-tv[data-state="paused"]');
  const tvPaused = await position('tv');
  assert.ok(tvPaused >= 300 && tvPaused < 600, `the TV paused at ${tvPaused}`);
  const afterPause = await until('the TV pause on the server', async () => {
    const r = await serverRecord('sintel');
    return r && r.device_id === 'tv' && Math.abs(r.position - tvPaused) < 0.06 && r;
  });
  assert.equal(afterPause.duration, 888);
  assert.ok((await page.locator('#log-tv li[data-kind="sent"]').count()) >= 2, 'the TV log shows checkpoints sent');
  assert.ok((await page.locator('#log-tv li[data-kind="acked"]').count()) >= 1, 'the TV log shows acks');

  // 2. The Phone picks Sintel and plays: it resumes where the TV paused.
  await page.selectOption('#title-phone', 'sintel');
  await page.selectOption('#speed-phone', '1');
  await page.click('#play-phone');
  await page.waitForSelector('#device-phone[data-state="playing"]');
  const phoneStart = await position('phone');
  assert.ok(Math.abs(phoneStart - tvPaused) <= 1, `the Phone resumed at ${phoneStart}, the TV paused at ${tvPaused}`);
  assert.equal(await page.isVisible('#prompt-phone'), false);
  await page.click('#pause-phone');
  await page.waitForSelector('#device-phone[data-state="paused"]');

  // 3. The Phone skips 6 minutes ahead (seeks are written at once); then the
  //    TV, still at its own position, steps back a minute. The server now
  //    holds the TV's position, more than 5 minutes behind the Phone's own.
  for (let i = 0; i < 6; i++) await page.click('#seek-fwd-phone');
  const phoneLocal = await position('phone');
  assert.ok(phoneLocal >= tvPaused + 359, `the Phone is at ${phoneLocal}`);
  await until('the Phone seek on the server', async () => {
    const r = await serverRecord('sintel');
    return r && r.device_id === 'phone' && Math.abs(r.position - phoneLocal) < 0.06;
  });
  await page.click('#seek-back-tv');
  const tvBack = await position('tv');
  const tvBackRecord = await until('the TV seek back on the server', async () => {
    const r = await serverRecord('sintel');
    return r && r.device_id === 'tv' && Math.abs(r.position - tvBack) < 0.06 && r;
  });
  assert.ok(phoneLocal - tvBack >= 300, `${phoneLocal} - ${tvBack} must be at least 5 min`);

  // 4. The Phone presses Play: a jump back that large is asked, not applied.
  await page.click('#play-phone');
  await page.waitForSelector('#prompt-phone', { state: 'visible' });
  const promptText = await page.textContent('#prompt-phone');
  assert.match(promptText, new RegExp(`Resume from ${clock(tvBackRecord.position)}, watched on TV\\?`, 'i'));
  assert.ok(await page.isVisible('#prompt-accept-phone'));
  assert.ok(await page.isVisible('#prompt-keep-phone'));
  assert.equal(await page.getAttribute('#device-phone', 'data-state'), 'prompt');
  assert.ok(Math.abs((await position('phone')) - phoneLocal) < 0.2, 'the Phone did not move while asking');

  // The continue-watching row shows the title.
  await page.waitForSelector('#continue-watching [data-video-id="sintel"]');
  assert.ok(await page.isVisible('#continue-watching [data-video-id="sintel"] .hide'));
  assert.ok(await page.isVisible('#continue-watching [data-video-id="sintel"] .remove'));

  await mkdir(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // 5. "Resume there": the Phone plays from the TV's position.
  await page.click('#prompt-accept-phone');
  await page.waitForSelector('#prompt-phone', { state: 'hidden' });
  await page.waitForSelector('#device-phone[data-state="playing"]');
  assert.ok(Math.abs((await position('phone')) - tvBack) <= 1, 'the Phone jumped to the TV position');
  await page.click('#pause-phone');

  // 6. Hide and Remove in the continue-watching row.
  await page.click('#continue-watching [data-video-id="sintel"] .hide');
  await page.waitForSelector('#continue-watching [data-video-id="sintel"]', { state: 'detached' });
  assert.ok(await serverRecord('sintel'), 'hiding keeps the progress');
  await page.selectOption('#title-tv', 'tears-of-steel');
  await page.click('#play-tv');
  await page.waitForFunction(() => parseFloat(document.querySelector('#position-tv').textContent) >= 90, null, { timeout: 30_000 });
  await page.click('#pause-tv');
  await page.waitForSelector('#continue-watching [data-video-id="tears-of-steel"]');
  await page.click('#continue-watching [data-video-id="tears-of-steel"] .remove');
  await page.waitForSelector('#continue-watching [data-video-id="tears-of-steel"]', { state: 'detached' });
  assert.equal(await serverRecord('tears-of-steel'), null, 'removing forgets the progress');

  // 7. Mark watched: the title leaves the row, and its record stands at the end.
  await page.click('#play-tv');
  await page.waitForSelector('#device-tv[data-state="playing"]');
  const playedFrom = await position('tv');
  await page.waitForFunction((from) => parseFloat(document.querySelector('#position-tv').textContent) >= from + 2, playedFrom, { timeout: 30_000 });
  await page.click('#pause-tv');
  await page.waitForSelector('#continue-watching [data-video-id="tears-of-steel"] .watched');
  await page.click('#continue-watching [data-video-id="tears-of-steel"] .watched');
  await page.waitForSelector('#continue-watching [data-video-id="tears-of-steel"]', { state: 'detached' });
  const watched = await serverRecord('tears-of-steel');
  assert.equal(watched?.position, 734, 'a title marked watched stands at its end');
  assert.equal(watched?.device_id, 'web-demo');

  // 8. A series: the TV plays a minute and a half of episode 1 of the
  //    demo's series. Its checkpoints name the series, and so does its card.
  const episodeCard = '#continue-watching [data-video-id="series-e1"]';
  const nextUpCard = '#continue-watching .next-up[data-series-id="demo-series"][data-next-episode="2"]';
  await page.selectOption('#title-tv', 'series-e1');
  await page.click('#play-tv');
  await page.waitForSelector('#device-tv[data-state="playing"]');
  await page.waitForFunction(() => parseFloat(document.querySelector('#position-tv').textContent) >= 90, null, { timeout: 30_000 });
  await page.click('#pause-tv');
  await page.waitForSelector('#device-tv[data-state="paused"]');
  const episodePaused = await position('tv');
  const episodeRecord = await until('the episode pause on the server', async () => {
    const r = await serverRecord('series-e1');
    return r && r.device_id === 'tv' && Math.abs(r.position - episodePaused) < 0.06 && r;
  });
  assert.deepEqual([episodeRecord.series_id, episodeRecord.episode, episodeRecord.finished_at], ['demo-series', 1, undefined]);
  await page.waitForSelector(`${episodeCard}[data-series-id="demo-series"][data-episode="1"]`);
  assert.equal(await page.isVisible(nextUpCard), false);

  //    Marked watched from the row: next up, episode 2, takes its place.
  await page.click(`${episodeCard} .watched`);
  await page.waitForSelector(nextUpCard);
  await page.waitForSelector(episodeCard, { state: 'detached' });
  assert.ok(
    await page.$eval('#continue-watching > li:first-child', (el, sel) => el.matches(sel), nextUpCard.replace('#continue-watching ', '')),
    'the next-up card heads the row',
  );
  assert.match(await page.textContent(`${nextUpCard} .next-label`), /^Next up: episode 2$/);
  assert.equal(await page.textContent(`${nextUpCard} .poster`), 'Demo Series, episode 2');
  assert.equal(await page.getAttribute(nextUpCard, 'data-next-video-id'), 'series-e2');
  const finishedEpisode = await serverRecord('series-e1');
  assert.deepEqual(
    [finishedEpisode?.series_id, finishedEpisode?.episode, finishedEpisode?.position, finishedEpisode?.device_id],
    ['demo-series', 1, 600, 'web-demo'],
  );
  assert.equal(typeof finishedEpisode.finished_at, 'number', 'a finished title says when it was finished');

  // 9. History: the two titles marked watched, the episode first (newest
  //    finish), and no "More" while everything fits on one page.
  await page.waitForSelector('#history [data-video-id="series-e1"]');
  const historyIds = () => page.$$eval('#history [data-video-id]', (els) => els.map((el) => el.dataset.videoId));
  assert.deepEqual(await historyIds(), ['series-e1', 'tears-of-steel']);
  assert.equal(await page.isVisible('#history-more'), false);
  //    Four titles finished elsewhere, earlier: the list's first page (5)
  //    fills up, and "More" brings the sixth.
  const earlier = Date.now() - 3_600_000;
  for (let i = 1; i <= 4; i++) {
    const mark = { ...KEY, video_id: `elsewhere-${i}`, device_id: 'laptop', watched: true, duration: 1200, updated_at: earlier - i * 60_000 };
    const { status } = await api('/playback/watched', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(mark) });
    assert.equal(status, 200);
  }
  await page.waitForSelector('#history-more', { state: 'visible' });
  assert.deepEqual(await historyIds(), ['series-e1', 'tears-of-steel', 'elsewhere-1', 'elsewhere-2', 'elsewhere-3']);
  await page.click('#history-more');
  await page.waitForSelector('#history [data-video-id="elsewhere-4"]');
  assert.deepEqual(await historyIds(), ['series-e1', 'tears-of-steel', 'elsewhere-1', 'elsewhere-2', 'elsewhere-3', 'elsewhere-4']);
  await page.waitForSelector('#history-more', { state: 'hidden' });

  // 10. "Play on TV" on the next-up card starts episode 2 there; once it
  //     is in progress, its own card replaces next up.
  await page.click(`${nextUpCard} .play-next[data-device="tv"]`);
  await page.waitForSelector('#device-tv[data-state="playing"]');
  assert.equal(await page.inputValue('#title-tv'), 'series-e2');
  await page.waitForFunction(() => parseFloat(document.querySelector('#position-tv').textContent) >= 60, null, { timeout: 30_000 });
  await page.click('#pause-tv');
  await page.waitForSelector('#continue-watching [data-video-id="series-e2"][data-series-id="demo-series"][data-episode="2"]');
  await page.waitForSelector(nextUpCard, { state: 'detached' });
  const secondEpisode = await serverRecord('series-e2');
  assert.deepEqual([secondEpisode?.series_id, secondEpisode?.episode, secondEpisode?.device_id], ['demo-series', 2, 'tv']);
  assert.equal((await serverRecord('series-e1'))?.device_id, 'web-demo', 'leaving episode 1 sent nothing over the mark');

  assert.deepEqual(pageErrors, [], 'no errors in the page');
});

test('with --auth jwt the demo works once a token is pasted, and not before', { timeout: 120_000 }, async (t) => {
  assert.ok(BIN, 'set PLAYMARK_BIN to the playmark binary (e.g. target/debug/playmark); scripts/test does');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'playmark-browser-data-'));
  const profileDir = await mkdtemp(path.join(os.tmpdir(), 'playmark-browser-chromium-'));
  const secret = path.join(dataDir, 'secret');
  await writeFile(secret, 'browser-test-secret\n');
  const playmark = await startPlaymark(dataDir, ['--auth', 'jwt', '--jwt-secret-file', secret]);
  t.after(async () => {
    await playmark.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const token = execFileSync(BIN, ['token', '--secret-file', secret, '--account', KEY.account_id], { encoding: 'utf8' }).trim();
  const serverRecord = async (video_id) => {
    const q = new URLSearchParams({ ...KEY, video_id });
    const res = await fetch(`${playmark.base}/playback/resume?${q}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const body = await res.json();
    return body.found ? body.record : null;
  };

  const context = await chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  t.after(async () => {
    await context.close();
    await rm(profileDir, { recursive: true, force: true });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(playmark.base + '/');
  await page.waitForSelector('#title-tv option[value="sintel"]', { state: 'attached' });

  // Without a token every checkpoint is refused, and the log says why.
  await page.selectOption('#title-tv', 'sintel');
  await page.selectOption('#speed-tv', '60');
  await page.click('#play-tv');
  await page.waitForSelector('#log-tv li[data-kind="failed"]');
  assert.match(await page.textContent('#log-tv li[data-kind="failed"]'), /unauthorized/);
  await page.click('#pause-tv');
  assert.equal(await serverRecord('sintel'), null, 'nothing was written without a token');

  // With the token pasted, the checkpoints go through.
  await page.fill('#token', token);
  await page.dispatchEvent('#token', 'change');
  await page.click('#play-tv');
  await page.waitForFunction(() => parseFloat(document.querySelector('#position-tv').textContent) >= 120, null, { timeout: 30_000 });
  await page.click('#pause-tv');
  const paused = parseFloat(await page.textContent('#position-tv'));
  await until('the paused position on the server', async () => {
    const r = await serverRecord('sintel');
    return r && r.device_id === 'tv' && Math.abs(r.position - paused) < 0.06;
  });
  await page.waitForSelector('#continue-watching [data-video-id="sintel"]');
});
