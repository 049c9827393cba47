// The viewer's library through PlaymarkClient, against the real binary:
// series on checkpoints, history and its paging, continue-watching grouped
// by series.
//
//   PLAYMARK_BIN=/work/main/target/debug/playmark node --test test/library.test.mjs
//
// It starts `playmark serve` on a free loopback port over a fresh data
// directory (rate limits off: these tests write fast), and once more with
// --auth jwt. Without PLAYMARK_BIN they fail (they need the server);
// scripts/test sets it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';

import { PlaymarkClient } from '../playmark.js';

const BIN = process.env.PLAYMARK_BIN;

/** Starts `playmark serve` (with `extra` flags) and waits for its "playmark listening" log line. */
async function startPlaymark(dataDir, extra = []) {
  assert.ok(BIN, 'set PLAYMARK_BIN to the playmark binary (e.g. target/debug/playmark); scripts/test does');
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

/** The error a promise rejects with (the test fails if it resolves). */
async function failure(promise) {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error) => ({ error }),
  );
  assert.ok('error' in outcome, `expected an error, got ${JSON.stringify(outcome.value)}`);
  return outcome.error;
}

const ACCOUNT = 'acct-library';
// Every write names its time: an hour ago, a second apart, so orders do not
// depend on request timing.
const T0 = Date.now() - 3_600_000;
const at = (s) => T0 + s * 1000;
const ids = (items) => items.map((i) => i.video_id ?? `next:${i.series_id}:${i.next_episode}`);

describe('the library against playmark serve', () => {
  let dataDir;
  let playmark;
  let client;
  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'playmark-sdk-library-'));
    playmark = await startPlaymark(dataDir, ['--account-rate', '0']);
    client = new PlaymarkClient({ baseUrl: playmark.base, retries: 0 });
  });
  after(async () => {
    await playmark?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  // Each test on a profile of its own.
  const profileOf = (name) => ({ account_id: ACCOUNT, profile_id: name });

  test('a title marked watched is in history, hidden too, until it is forgotten', async () => {
    const who = profileOf('watched');
    const title = { ...who, video_id: 'V1' };
    await client.update({ ...title, device_id: 'tv', position: 1200, duration: 3600, updated_at: at(0) });
    assert.deepEqual(await client.history(who), { items: [], next_cursor: null }, 'a title in progress is not history');
    const { outcome, record } = await client.markWatched({ ...title, device_id: 'phone', watched: true, duration: 3600, updated_at: at(1) });
    assert.equal(outcome, 'applied');
    assert.deepEqual(record, { ...title, position: 3600, duration: 3600, device_id: 'phone', updated_at: at(1), finished_at: at(1) });
    assert.deepEqual(await client.history(who), { items: [record], next_cursor: null });
    assert.deepEqual((await client.continueWatching(who)).items, []);
    // The resume answer's record says when it was finished too.
    assert.equal((await client.resume(title)).record.finished_at, at(1));

    await client.hide(title);
    assert.deepEqual((await client.history(who)).items, [record], 'hiding keeps a title in history');
    await client.forget(title);
    assert.deepEqual(await client.history(who), { items: [], next_cursor: null }, 'a forgotten title leaves history');
  });

  test('finished_at is the first finish: kept by a later finished write, cleared by a rewatch or an unwatched mark', async () => {
    const who = profileOf('finish-time');
    const title = { ...who, video_id: 'V1', device_id: 'tv', duration: 3600 };
    const finishedAt = async (write) => {
      const { record } = await write;
      return record.finished_at;
    };
    assert.equal(await finishedAt(client.update({ ...title, position: 3500, updated_at: at(0) })), at(0), '97 % is finished');
    assert.equal(await finishedAt(client.update({ ...title, position: 3550, updated_at: at(1) })), at(0), 'a later checkpoint at 98 % keeps it');
    assert.equal(await finishedAt(client.markWatched({ ...title, watched: true, updated_at: at(2) })), at(0), 'so does a watched mark');
    assert.equal(await finishedAt(client.update({ ...title, position: 300, updated_at: at(3) })), undefined, 'a rewatch clears it');
    assert.deepEqual((await client.history(who)).items, []);
    assert.equal(await finishedAt(client.update({ ...title, position: 3500, updated_at: at(4) })), at(4), 'finishing again is a new time');
    assert.deepEqual(ids((await client.history(who)).items), ['V1']);
    assert.equal(await finishedAt(client.markWatched({ ...title, watched: false, updated_at: at(5) })), undefined, 'an unwatched mark clears it');
    assert.deepEqual((await client.history(who)).items, []);
  });

  test('history pages with a cursor give every finished title once, newest finish first, even while others finish', async () => {
    const who = profileOf('paging');
    // Two finished in the same millisecond: ties go by video_id, byte-wise ('B' < 'b').
    const finishes = [
      ['ep-a', 1],
      ['ep-b', 2],
      ['ep-B', 2],
      ['ep-d', 3],
      ['ep-e', 4],
    ];
    for (const [video_id, s] of finishes) {
      await client.markWatched({ ...who, video_id, device_id: 'tv', watched: true, duration: 1800, updated_at: at(s) });
    }
    const order = ['ep-e', 'ep-d', 'ep-B', 'ep-b', 'ep-a'];

    const whole = await client.history(who, { limit: 5 });
    assert.deepEqual(ids(whole.items), order);
    assert.equal(whole.next_cursor, null, 'nothing after the fifth: no cursor');
    assert.deepEqual(whole.items.map((i) => i.finished_at), [at(4), at(3), at(2), at(2), at(1)]);

    const pages = [];
    for await (const page of client.historyPages(who, { limit: 2 })) pages.push(ids(page.items));
    assert.deepEqual(pages, [['ep-e', 'ep-d'], ['ep-B', 'ep-b'], ['ep-a']]);

    // A title finishes between two pages: the pages after the first neither
    // repeat nor skip anything, and the new title heads the next first page.
    const first = await client.history(who, { limit: 2 });
    assert.deepEqual(ids(first.items), ['ep-e', 'ep-d']);
    assert.equal(typeof first.next_cursor, 'string');
    await client.markWatched({ ...who, video_id: 'ep-f', device_id: 'tv', watched: true, duration: 1800 });
    await client.update({ ...who, video_id: 'ep-d', device_id: 'tv', position: 1790, duration: 1800, updated_at: at(6) });
    const rest = [];
    for await (const page of client.historyPages(who, { limit: 2, cursor: first.next_cursor })) rest.push(...ids(page.items));
    assert.deepEqual(rest, ['ep-B', 'ep-b', 'ep-a']);
    assert.deepEqual(ids((await client.history(who)).items), ['ep-f', ...order], 'a later finished checkpoint does not move ep-d');
  });

  test('history and continue-watching refuse what they do not take, naming it', async () => {
    const who = profileOf('refusals');
    for (const limit of [0, 101]) {
      const e = await failure(client.history(who, { limit }));
      assert.deepEqual([e.status, e.code, e.field], [400, 'invalid_request', 'limit'], `limit ${limit}`);
    }
    const cursor = await failure(client.history(who, { cursor: 'not-a-cursor' }));
    assert.deepEqual([cursor.status, cursor.code, cursor.field], [400, 'invalid_request', 'cursor']);
    const group = await failure(client.continueWatching(who, 20, { group: 'season' }));
    assert.deepEqual([group.status, group.code, group.field], [400, 'invalid_request', 'group']);
  });

  test('series_id and episode come together, on an update, a mark and a batch item', async () => {
    const title = { ...profileOf('pairs'), video_id: 'S-E1', device_id: 'tv' };
    const checks = [
      [() => client.update({ ...title, position: 60, episode: 1 }), 'series_id'],
      [() => client.update({ ...title, position: 60, series_id: 'S' }), 'episode'],
      [() => client.markWatched({ ...title, watched: true, episode: 1 }), 'series_id'],
      [() => client.markWatched({ ...title, watched: true, series_id: 'S' }), 'episode'],
      [() => client.update({ ...title, position: 60, series_id: 'a series', episode: 1 }), 'series_id'],
      [() => client.update({ ...title, position: 60, series_id: 'S', episode: -1 }), 'episode'],
      [() => client.update({ ...title, position: 60, series_id: 'S', episode: 2147483648 }), 'episode'],
    ];
    for (const [write, field] of checks) {
      const e = await failure(write());
      assert.deepEqual([e.status, e.code, e.field], [400, 'invalid_request', field]);
    }
    const { results } = await client.batch([
      { ...title, position: 60, series_id: 'S', episode: 2147483647, updated_at: at(0) },
      { ...title, video_id: 'S-E2', position: 60, episode: 2 },
    ]);
    assert.deepEqual([results[0].outcome, results[0].record.series_id, results[0].record.episode], ['applied', 'S', 2147483647]);
    assert.deepEqual([results[1].error.code, results[1].error.field], ['invalid_request', 'series_id']);
  });

  test('a title keeps its series through writes that do not name one, until one names another; a deletion forgets it', async () => {
    const title = { ...profileOf('persist'), video_id: 'S-E3', device_id: 'tv', duration: 1500 };
    const series = async (write) => {
      const { outcome, record } = await write;
      assert.equal(outcome, 'applied');
      return [record.series_id, record.episode];
    };
    assert.deepEqual(await series(client.update({ ...title, position: 60, series_id: 'S', episode: 3, updated_at: at(0) })), ['S', 3]);
    assert.deepEqual(await series(client.update({ ...title, position: 90, updated_at: at(1) })), ['S', 3], 'a checkpoint without them keeps them');
    assert.deepEqual(await series(client.batch([{ ...title, position: 120, updated_at: at(2) }]).then((b) => b.results[0])), ['S', 3]);
    assert.deepEqual(await series(client.markWatched({ ...title, watched: true, updated_at: at(3) })), ['S', 3], 'so does a mark');
    assert.deepEqual(await series(client.update({ ...title, position: 30, series_id: 'S2', episode: 1, updated_at: at(4) })), ['S2', 1]);
    const { record } = await client.resume(title);
    assert.deepEqual([record.series_id, record.episode], ['S2', 1]);

    await client.forget(title);
    // After the deletion's time (the server's clock), within the allowed skew.
    const { outcome, record: fresh } = await client.update({ ...title, position: 10, updated_at: Date.now() + 1000 });
    assert.equal(outcome, 'applied');
    assert.equal('series_id' in fresh || 'episode' in fresh, false, `the deletion forgot the series: ${JSON.stringify(fresh)}`);
  });

  test('continue-watching grouped by series: the episode in progress, or next up once it is finished', async () => {
    const who = profileOf('grouped');
    const episode = (n, position, s, extra = {}) =>
      client.update({ ...who, video_id: `S-E${n}`, device_id: 'tv', position, duration: 1500, series_id: 'S', episode: n, updated_at: at(s), ...extra });
    const grouped = async () => (await client.continueWatching(who, 20, { group: 'series' })).items;
    const plain = async () => ids((await client.continueWatching(who)).items);

    await client.update({ ...who, video_id: 'movie', device_id: 'tv', position: 600, duration: 6000, updated_at: at(0) });
    await episode(1, 600, 1);
    assert.deepEqual(ids(await grouped()), ['S-E1', 'movie']);

    // Episode 1 finished: the series is next up, episode 2.
    const { record: finished } = await episode(1, 1490, 2);
    let items = await grouped();
    assert.deepEqual(items[0], { series_id: 'S', next_episode: 2, after: finished });
    assert.deepEqual(ids(items), ['next:S:2', 'movie']);
    assert.deepEqual(await plain(), ['movie'], 'without group, nothing changes');

    // Episode 2 in progress: that record, and no next-up.
    const { record: second } = await episode(2, 60, 3);
    items = await grouped();
    assert.deepEqual(items[0], second);
    assert.deepEqual(ids(items), ['S-E2', 'movie']);
    assert.deepEqual(await plain(), ['S-E2', 'movie']);

    // The standalone title played again leads the row; then a rewatch of
    // episode 1 is the series' latest activity, and finishing it leads to 2.
    await client.update({ ...who, video_id: 'movie', device_id: 'tv', position: 660, duration: 6000, updated_at: at(4) });
    assert.deepEqual(ids(await grouped()), ['movie', 'S-E2']);
    await episode(1, 100, 5);
    assert.deepEqual(ids(await grouped()), ['S-E1', 'movie']);
    assert.deepEqual(await plain(), ['S-E1', 'movie', 'S-E2'], 'without group, every episode in progress');
    await episode(1, 1500, 6);
    items = await grouped();
    assert.deepEqual(ids(items), ['next:S:2', 'movie']);
    assert.equal(items[0].after.finished_at, at(6));
  });

  test('a series whose latest episode is hidden, unmarked or forgotten is left out of the grouped row', async () => {
    const who = profileOf('dismissed');
    for (const [i, series] of ['kept', 'hidden', 'unmarked', 'forgotten'].entries()) {
      await client.markWatched({ ...who, video_id: `${series}-e1`, device_id: 'tv', watched: true, duration: 1500, series_id: series, episode: 1, updated_at: at(i) });
    }
    const grouped = async () => ids((await client.continueWatching(who, 20, { group: 'series' })).items);
    assert.deepEqual(await grouped(), ['next:forgotten:2', 'next:unmarked:2', 'next:hidden:2', 'next:kept:2']);
    await client.hide({ ...who, video_id: 'hidden-e1' });
    await client.markWatched({ ...who, video_id: 'unmarked-e1', device_id: 'tv', watched: false, updated_at: at(10) });
    await client.forget({ ...who, video_id: 'forgotten-e1' });
    assert.deepEqual(await grouped(), ['next:kept:2']);
  });
});

describe('the library with --auth jwt', () => {
  test('history needs playback:read and takes the account from the token', { timeout: 60_000 }, async (t) => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'playmark-sdk-library-'));
    const secret = path.join(dataDir, 'secret');
    await writeFile(secret, 'sdk-library-test-secret\n');
    const playmark = await startPlaymark(dataDir, ['--auth', 'jwt', '--jwt-secret-file', secret, '--account-rate', '0']);
    t.after(async () => {
      await playmark.stop();
      await rm(dataDir, { recursive: true, force: true });
    });
    const token = (scope) =>
      execFileSync(BIN, ['token', '--secret-file', secret, '--account', ACCOUNT, '--scope', scope], { encoding: 'utf8' }).trim();
    const writer = new PlaymarkClient({ baseUrl: playmark.base, retries: 0, token: token('playback:write') });
    const reader = new PlaymarkClient({ baseUrl: playmark.base, retries: 0, token: token('playback:read') });
    const who = { profile_id: 'A' };

    const { record } = await writer.markWatched({ ...who, video_id: 'V1', device_id: 'tv', watched: true, duration: 1800, updated_at: at(0) });
    assert.equal(record.account_id, ACCOUNT);
    assert.deepEqual(await reader.history(who), { items: [record], next_cursor: null });
    assert.deepEqual(await reader.history({ account_id: ACCOUNT, ...who }), { items: [record], next_cursor: null });
    const e = await failure(writer.history(who));
    assert.deepEqual([e.status, e.code], [403, 'forbidden']);
  });
});
