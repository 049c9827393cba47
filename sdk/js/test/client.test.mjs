// PlaymarkClient and Player against a real local HTTP server (node:http):
// wire format, retries, timeouts, error mapping, conflicts.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { PlaymarkClient, PlaymarkError, Player } from '../playmark.js';

/** Starts a server on 127.0.0.1 with `handler(req, body, res)`; records every request. */
async function startServer(handler) {
  const requests = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (data += chunk));
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      const entry = { method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body: data ? JSON.parse(data) : null };
      requests.push(entry);
      handler(entry, res, requests.length);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function json(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A client whose waits are recorded (and do not really wait). */
function clientFor(baseUrl, options = {}) {
  const waits = [];
  const client = new PlaymarkClient({
    baseUrl,
    random: () => 0.5,
    sleep: async (ms) => {
      waits.push(ms);
    },
    ...options,
  });
  return { client, waits };
}

const KEY = { account_id: 'acct-1', profile_id: 'A', video_id: 'V1' };
const record = (position, updated_at, device_id = 'tv') => ({ ...KEY, position, duration: 3600, device_id, updated_at });

describe('PlaymarkClient wire format', () => {
  test('update posts JSON in seconds and returns the answer', async (t) => {
    const srv = await startServer((req, res) => json(res, 200, { outcome: 'applied', record: record(req.body.position, req.body.updated_at) }));
    t.after(() => srv.close());
    const { client } = clientFor(srv.baseUrl + '/');
    const cp = { ...KEY, device_id: 'tv', position: 1200.5, duration: 3600, updated_at: 1000, event: 'pause' };
    const res = await client.update(cp);
    assert.deepEqual(res, { outcome: 'applied', record: record(1200.5, 1000) });
    assert.equal(srv.requests.length, 1);
    const [req] = srv.requests;
    assert.equal(req.method, 'POST');
    assert.equal(req.path, '/playback/update');
    assert.match(req.headers['content-type'], /^application\/json/);
    assert.deepEqual(req.body, cp);
  });

  test('markWatched sends the mark and only the fields it was given', async (t) => {
    const srv = await startServer((req, res) => json(res, 200, { outcome: 'applied', record: record(0, req.body.updated_at ?? 7) }));
    t.after(() => srv.close());
    const { client } = clientFor(srv.baseUrl);
    const mark = { ...KEY, device_id: 'phone', watched: true, duration: 3600, updated_at: 1000 };
    assert.deepEqual(await client.markWatched(mark), { outcome: 'applied', record: record(0, 1000) });
    await client.markWatched({ ...KEY, device_id: 'phone', watched: false });
    const r = srv.requests;
    assert.deepEqual([r[0].method, r[0].path, r[0].body], ['POST', '/playback/watched', mark]);
    assert.deepEqual(r[1].body, { ...KEY, device_id: 'phone', watched: false });
  });

  test('an episode\'s series_id and episode go with a mark, a checkpoint and batch items, and only when given', async (t) => {
    const srv = await startServer((req, res) => {
      if (req.path === '/playback/batch') return json(res, 200, { results: req.body.checkpoints.map(() => ({ outcome: 'applied', record: null })) });
      return json(res, 200, { outcome: 'applied', record: null });
    });
    t.after(() => srv.close());
    const { client } = clientFor(srv.baseUrl);
    const series = { series_id: 'show-1', episode: 0 };
    await client.markWatched({ ...KEY, device_id: 'tv', watched: true, ...series });
    await client.markWatched({ ...KEY, device_id: 'tv', watched: true, series_id: null, episode: undefined });
    await client.update({ ...KEY, device_id: 'tv', position: 5, ...series });
    await client.batch([{ ...KEY, device_id: 'tv', position: 5, ...series }, { ...KEY, device_id: 'tv', position: 6 }]);
    const r = srv.requests;
    assert.deepEqual(r[0].body, { ...KEY, device_id: 'tv', watched: true, series_id: 'show-1', episode: 0 });
    assert.deepEqual(r[1].body, { ...KEY, device_id: 'tv', watched: true });
    assert.deepEqual(r[2].body, { ...KEY, device_id: 'tv', position: 5, series_id: 'show-1', episode: 0 });
    assert.deepEqual(r[3].body.checkpoints, [{ ...KEY, device_id: 'tv', position: 5, ...series }, { ...KEY, device_id: 'tv', position: 6 }]);
  });

  test('history sends limit and cursor only when given, and answers as the server does', async (t) => {
    const page = { items: [{ ...record(3600, 9), finished_at: 9 }], next_cursor: 'h1.9.V1' };
    const srv = await startServer((req, res) => json(res, 200, page));
    t.after(() => srv.close());
    const { client } = clientFor(srv.baseUrl);
    const profile = { account_id: 'acct-1', profile_id: 'A' };
    assert.deepEqual(await client.history(profile), page);
    await client.history({ ...profile, video_id: 'ignored' }, { limit: 2, cursor: 'h1.9.V1' });
    await client.history({ profile_id: 'A' }, { cursor: null });
    const r = srv.requests;
    assert.deepEqual([r[0].method, r[0].path, r[0].query], ['GET', '/playback/history', profile]);
    assert.deepEqual(r[1].query, { ...profile, limit: '2', cursor: 'h1.9.V1' });
    assert.deepEqual(r[2].query, { profile_id: 'A' }, 'with --auth jwt the account may be left to the token');
  });

  test('historyPages follows next_cursor to the last page, one request per page as iterated', async (t) => {
    const pages = {
      '': { items: [record(1, 5), record(1, 4)], next_cursor: 'c1' },
      c1: { items: [record(1, 3), record(1, 2)], next_cursor: 'c2' },
      c2: { items: [record(1, 1)], next_cursor: null },
    };
    const srv = await startServer((req, res) => json(res, 200, pages[req.query.cursor ?? '']));
    t.after(() => srv.close());
    const { client } = clientFor(srv.baseUrl);
    const profile = { account_id: 'acct-1', profile_id: 'A' };
    const seen = [];
    for await (const page of client.historyPages(profile, { limit: 2 })) seen.push(page.items.map((i) => i.updated_at));
    assert.deepEqual(seen, [[5, 4], [3, 2], [1]]);
    assert.deepEqual(srv.requests.map((r) => r.query), [
      { ...profile, limit: '2' },
      { ...profile, limit: '2', cursor: 'c1' },
      { ...profile, limit: '2', cursor: 'c2' },
    ]);
    // From a cursor, and stopping early: no request past the pages asked for.
    for await (const page of client.historyPages(profile, { cursor: 'c1' })) {
      assert.deepEqual(page, pages.c1);
      break;
    }
    assert.equal(srv.requests.length, 4);
    assert.deepEqual(srv.requests[3].query, { ...profile, cursor: 'c1' });
  });

  test('continue-watching grouped by series sends group and answers records and next-ups as they come', async (t) => {
    const nextUp = { series_id: 'show-1', next_episode: 2, after: { ...record(3600, 7), series_id: 'show-1', episode: 1, finished_at: 7 } };
    const srv = await startServer((req, res) => json(res, 200, { items: [nextUp, record(10, 5)] }));
    t.after(() => srv.close());
    const { client } = clientFor(srv.baseUrl);
    const profile = { account_id: 'acct-1', profile_id: 'A' };
    const { items } = await client.continueWatching(profile, 5, { group: 'series' });
    assert.deepEqual(items, [nextUp, record(10, 5)]);
    assert.deepEqual(items.map((i) => 'next_episode' in i), [true, false]);
    await client.continueWatching(profile, undefined, { group: 'series' });
    await client.continueWatching(profile, 5, {});
    const r = srv.requests;
    assert.deepEqual([r[0].path, r[0].query], ['/playback/continue-watching', { ...profile, limit: '5', group: 'series' }]);
    assert.deepEqual(r[1].query, { ...profile, group: 'series' });
    assert.deepEqual(r[2].query, { ...profile, limit: '5' });
  });

  test('resume, continue-watching, forget, hide and batch', async (t) => {
    const srv = await startServer((req, res) => {
      if (req.path === '/playback/resume') return json(res, 200, { found: false, position: 0, action: 'start_over', reason: 'no_record' });
      if (req.path === '/playback/continue-watching') return json(res, 200, { items: [record(10, 5)] });
      if (req.path === '/playback/batch') return json(res, 200, { results: req.body.checkpoints.map(() => ({ outcome: 'applied', record: null })) });
      res.writeHead(204);
      res.end();
    });
    t.after(() => srv.close());
    const { client } = clientFor(srv.baseUrl);
    assert.equal((await client.resume(KEY)).action, 'start_over');
    await client.resume({ ...KEY, video_id: 'a:b' }, { deviceId: 'phone', localPosition: 61.5 });
    assert.deepEqual((await client.continueWatching({ account_id: 'acct-1', profile_id: 'A' }, 5)).items, [record(10, 5)]);
    await client.continueWatching({ account_id: 'acct-1', profile_id: 'A' });
    assert.equal(await client.forget(KEY), undefined);
    assert.equal(await client.hide(KEY), undefined);
    const batch = await client.batch([{ ...KEY, device_id: 'tv', position: 1 }, { ...KEY, device_id: 'tv', position: 2 }]);
    assert.equal(batch.results.length, 2);
    const r = srv.requests;
    assert.deepEqual([r[0].method, r[0].path, r[0].query], ['GET', '/playback/resume', KEY]);
    assert.deepEqual(r[1].query, { ...KEY, video_id: 'a:b', device_id: 'phone', local_position: '61.5' });
    assert.deepEqual([r[2].path, r[2].query], ['/playback/continue-watching', { account_id: 'acct-1', profile_id: 'A', limit: '5' }]);
    assert.deepEqual(r[3].query, { account_id: 'acct-1', profile_id: 'A' });
    assert.deepEqual([r[4].method, r[4].path, r[4].query], ['DELETE', '/playback/progress', KEY]);
    assert.deepEqual([r[5].method, r[5].path, r[5].body], ['POST', '/playback/hide', KEY]);
    assert.deepEqual([r[6].method, r[6].path, r[6].body.checkpoints.length], ['POST', '/playback/batch', 2]);
  });
});

describe('PlaymarkClient retries and errors', () => {
  test('a 503 is retried, honouring Retry-After up to the cap', async (t) => {
    const srv = await startServer((req, res, n) =>
      n === 1
        ? json(res, 503, { error: { code: 'unavailable', message: 'slow store' } }, { 'retry-after': '1' })
        : json(res, 200, { outcome: 'duplicate', record: record(1, 1) }),
    );
    t.after(() => srv.close());
    const { client, waits } = clientFor(srv.baseUrl, { retryAfterMaxMs: 40 });
    assert.equal((await client.update({ ...KEY, device_id: 'tv', position: 1 })).outcome, 'duplicate');
    assert.equal(srv.requests.length, 2);
    assert.deepEqual(waits, [40]);
    // Both attempts sent the same body: a retry is the same checkpoint.
    assert.deepEqual(srv.requests[0].body, srv.requests[1].body);
  });

  test('a 429 is retried after its Retry-After, and surfaces with its code when retries run out', async (t) => {
    const srv = await startServer((req, res, n) =>
      n <= 2
        ? json(res, 429, { error: { code: 'rate_limited', message: 'this device is sending faster than the server allows' } }, { 'retry-after': '1' })
        : json(res, 200, { outcome: 'applied', record: record(1, 1) }),
    );
    t.after(() => srv.close());
    const { client, waits } = clientFor(srv.baseUrl, { retryAfterMaxMs: 30 });
    assert.equal((await client.update({ ...KEY, device_id: 'tv', position: 1 })).outcome, 'applied');
    assert.deepEqual(waits, [30, 30]);
    const limited = await startServer((req, res) =>
      json(res, 429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'retry-after': '1' }),
    );
    t.after(() => limited.close());
    const err = await clientFor(limited.baseUrl, { retries: 0 }).client.update({ ...KEY, device_id: 'tv', position: 1 }).catch((e) => e);
    assert.equal(err.status, 429);
    assert.equal(err.code, 'rate_limited');
    assert.equal(err.retryAfterMs, 1000);
  });

  test('Retry-After below the cap is honoured as is, with the real clock', async (t) => {
    const srv = await startServer((req, res, n) =>
      n === 1 ? json(res, 503, { error: { code: 'unavailable', message: 'x' } }, { 'retry-after': '0.05' }) : json(res, 200, { items: [] }),
    );
    t.after(() => srv.close());
    const client = new PlaymarkClient({ baseUrl: srv.baseUrl });
    const start = performance.now();
    await client.continueWatching({ account_id: 'a', profile_id: 'A' });
    assert.ok(performance.now() - start >= 45, 'waited the Retry-After');
    assert.equal(srv.requests.length, 2);
  });

  test('without Retry-After, backoff is full jitter, exponential and bounded', async (t) => {
    const srv = await startServer((req, res) => json(res, 503, { error: { code: 'unavailable', message: 'storage did not confirm the write in time' } }));
    t.after(() => srv.close());
    const { client, waits } = clientFor(srv.baseUrl, { retries: 3, backoffBaseMs: 100, backoffMaxMs: 300 });
    const err = await client.update({ ...KEY, device_id: 'tv', position: 1 }).catch((e) => e);
    assert.ok(err instanceof PlaymarkError);
    assert.equal(err.status, 503);
    assert.equal(err.code, 'unavailable');
    assert.equal(err.message, 'storage did not confirm the write in time');
    assert.equal(srv.requests.length, 4, '1 attempt + 3 retries');
    // random() = 0.5 of min(300, 100 * 2^n)
    assert.deepEqual(waits, [50, 100, 150]);
  });

  test('full jitter draws in [0, ceiling)', async (t) => {
    const srv = await startServer((req, res) => json(res, 503, { error: { code: 'unavailable', message: 'x' } }));
    t.after(() => srv.close());
    const { client: c0, waits: w0 } = clientFor(srv.baseUrl, { random: () => 0 });
    const { client: c1, waits: w1 } = clientFor(srv.baseUrl, { random: () => 0.999 });
    await c0.resume(KEY).catch(() => {});
    await c1.resume(KEY).catch(() => {});
    assert.deepEqual(w0, [0, 0]);
    assert.deepEqual(w1, [99, 199]);
  });

  test('a 400 is not retried and maps code, field and message', async (t) => {
    const srv = await startServer((req, res) =>
      json(res, 400, { error: { code: 'invalid_request', message: 'position must be >= 0', field: 'position' } }),
    );
    t.after(() => srv.close());
    const { client, waits } = clientFor(srv.baseUrl);
    const err = await client.update({ ...KEY, device_id: 'tv', position: -1 }).catch((e) => e);
    assert.ok(err instanceof PlaymarkError);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'PlaymarkError');
    assert.deepEqual([err.status, err.code, err.field, err.message], [400, 'invalid_request', 'position', 'position must be >= 0']);
    assert.equal(srv.requests.length, 1);
    assert.deepEqual(waits, []);
  });

  test('a 409 is not retried and carries the standing record', async (t) => {
    const standing = record(1260, 5000, 'phone');
    const srv = await startServer((req, res) => json(res, 409, { error: { code: 'conflict', message: 'newer elsewhere' }, record: standing }));
    t.after(() => srv.close());
    const { client } = clientFor(srv.baseUrl);
    const err = await client.update({ ...KEY, device_id: 'tv', position: 600, resumed_from: 1000 }).catch((e) => e);
    assert.deepEqual([err.status, err.code, err.field], [409, 'conflict', null]);
    assert.deepEqual(err.record, standing);
    assert.equal(srv.requests.length, 1);
  });

  test('a bearer token is sent; after a 401 getToken is asked again and the request retried once', async (t) => {
    let served = 0;
    const srv = await startServer((req, res) => {
      served++;
      if (req.headers.authorization !== 'Bearer fresh') {
        return json(res, 401, { error: { code: 'unauthorized', message: 'the bearer token is not valid: the token has expired' } }, { 'www-authenticate': 'Bearer realm="playmark", error="invalid_token"' });
      }
      json(res, 200, { found: false, position: 0, action: 'start_over', reason: 'no_record' });
    });
    t.after(() => srv.close());
    const handed = ['stale', 'fresh'];
    let asked = 0;
    const { client } = clientFor(srv.baseUrl, { getToken: async () => handed[asked++] });
    const answer = await client.resume(KEY);
    assert.equal(answer.found, false);
    assert.deepEqual([asked, served], [2, 2], 'asked twice, sent twice');
    await client.resume(KEY);
    assert.deepEqual([asked, served], [2, 3], 'the fresh token is kept');
    assert.equal(srv.requests[2].headers.authorization, 'Bearer fresh');

    // A fixed token has no second chance: the 401 is the answer.
    const fixed = clientFor(srv.baseUrl, { token: 'stale' }).client;
    const err = await fixed.resume(KEY).catch((e) => e);
    assert.deepEqual([err.status, err.code], [401, 'unauthorized']);
  });

  test('other 4xx and 5xx are not retried; a body that is not JSON still maps', async (t) => {
    const srv = await startServer((req, res) => {
      if (req.path === '/playback/resume') return json(res, 500, { error: { code: 'internal', message: 'internal error; it has been logged' } });
      if (req.path === '/playback/hide') return json(res, 404, { error: { code: 'not_found', message: 'no such endpoint: /playback/hide' } }, { 'retry-after': '1' });
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<h1>Bad gateway</h1>');
    });
    t.after(() => srv.close());
    const { client, waits } = clientFor(srv.baseUrl);
    const e500 = await client.resume(KEY).catch((e) => e);
    assert.deepEqual([e500.status, e500.code], [500, 'internal']);
    const e404 = await client.hide(KEY).catch((e) => e);
    assert.deepEqual([e404.status, e404.code], [404, 'not_found']);
    const e502 = await client.continueWatching({ account_id: 'a', profile_id: 'A' }).catch((e) => e);
    assert.deepEqual([e502.status, e502.code], [502, 'http_502']);
    assert.equal(srv.requests.length, 3);
    assert.deepEqual(waits, []);
  });

  test('a request that gets no answer times out per attempt and is retried', async (t) => {
    const srv = await startServer(() => {
      /* never answers */
    });
    t.after(() => srv.close());
    const { client, waits } = clientFor(srv.baseUrl, { timeoutMs: 100, retries: 1 });
    const start = performance.now();
    const err = await client.update({ ...KEY, device_id: 'tv', position: 1 }).catch((e) => e);
    const elapsed = performance.now() - start;
    assert.ok(err instanceof PlaymarkError);
    assert.deepEqual([err.status, err.code], [0, 'timeout']);
    assert.equal(srv.requests.length, 2);
    assert.equal(waits.length, 1);
    assert.ok(elapsed >= 190 && elapsed < 1500, `two 100 ms attempts took ${elapsed} ms`);
  });

  test('a connection error is a network_error, retried a bounded number of times', async () => {
    // A port that was free a moment ago: nothing listens there.
    const srv = await startServer(() => {});
    const url = srv.baseUrl;
    await srv.close();
    const { client, waits } = clientFor(url, { retries: 2 });
    const err = await client.resume(KEY).catch((e) => e);
    assert.ok(err instanceof PlaymarkError);
    assert.deepEqual([err.status, err.code], [0, 'network_error']);
    assert.deepEqual(waits, [50, 100]);
  });
});

/** A small last-write-wins backend with the stale-device guard, enough for Player tests. */
function fakeBackend({ delayFirstMs = 0 } = {}) {
  let standing = null;
  return (req, res, n) => {
    const answer = () => {
      if (req.path === '/playback/resume') {
        if (!standing) return json(res, 200, { found: false, position: 0, action: 'start_over', reason: 'no_record' });
        return json(res, 200, { found: true, position: standing.position, action: 'resume', reason: 'in_progress', record: standing });
      }
      const b = req.body;
      const rec = { account_id: b.account_id, profile_id: b.profile_id, video_id: b.video_id, position: b.position, device_id: b.device_id, updated_at: b.updated_at };
      if (b.duration !== undefined) rec.duration = b.duration;
      if (
        standing &&
        b.event !== 'seek' &&
        b.resumed_from !== undefined &&
        standing.updated_at > b.resumed_from &&
        standing.device_id !== b.device_id &&
        b.position < standing.position - 300
      ) {
        return json(res, 409, { error: { code: 'conflict', message: 'newer progress from another device' }, record: standing });
      }
      if (standing && standing.updated_at >= rec.updated_at) return json(res, 200, { outcome: 'stale', record: standing });
      standing = rec;
      return json(res, 200, { outcome: 'applied', record: rec });
    };
    if (n === 1 && delayFirstMs) setTimeout(answer, delayFirstMs);
    else answer();
  };
}

describe('Player', () => {
  test('sends what the policy decides, one at a time, with resumed_from and duration', async (t) => {
    const srv = await startServer(fakeBackend({ delayFirstMs: 100 }));
    t.after(() => srv.close());
    let clock = 1_000_000;
    const log = [];
    const player = new Player({
      client: new PlaymarkClient({ baseUrl: srv.baseUrl }),
      key: KEY,
      deviceId: 'tv',
      durationSec: 3600,
      now: () => clock,
      onLog: (e) => log.push(e),
    });
    await player.play(0);
    clock += 10_000;
    await player.tick(10);
    clock += 20_000;
    const first = player.tick(30); // sent; the server holds it 100 ms
    clock += 1_000;
    const paused = await player.pause(31); // queued behind it
    assert.deepEqual(paused, { send: null, skip: 'queued_in_flight' });
    await first;
    await player.idle();
    assert.equal(srv.requests.length, 2);
    const [a, b] = srv.requests.map((r) => r.body);
    assert.deepEqual(a, { ...KEY, device_id: 'tv', position: 30, updated_at: 1_030_000, event: 'progress', duration: 3600 });
    assert.deepEqual(b, { ...KEY, device_id: 'tv', position: 31, updated_at: 1_031_000, event: 'pause', duration: 3600, resumed_from: 1_030_000 });
    assert.equal(player.resumedFrom, 1_031_000);
    assert.deepEqual(
      log.map((e) => [e.kind, e.event ?? e.input, e.reason ?? e.outcome ?? null]),
      [
        ['skipped', 'play', 'nothing'],
        ['skipped', 'tick', 'below_delta'],
        ['sent', 'progress', null],
        ['skipped', 'pause', 'queued_in_flight'],
        ['acked', 'progress', 'applied'],
        ['sent', 'pause', null],
        ['acked', 'pause', 'applied'],
      ],
    );
  });

  test('an episode\'s checkpoints carry its series_id and episode; one without the other is refused', async (t) => {
    const srv = await startServer(fakeBackend());
    t.after(() => srv.close());
    const client = new PlaymarkClient({ baseUrl: srv.baseUrl });
    let clock = 1000;
    const player = new Player({ client, key: KEY, deviceId: 'tv', now: () => clock, seriesId: 'show-1', episode: 0 });
    assert.deepEqual([player.seriesId, player.episode], ['show-1', 0]);
    await player.play(0);
    clock = 2000;
    await player.pause(40);
    assert.deepEqual(srv.requests[0].body, { ...KEY, device_id: 'tv', position: 40, updated_at: 2000, event: 'pause', series_id: 'show-1', episode: 0 });
    const plain = new Player({ client, key: KEY, deviceId: 'tv', now: () => clock, seriesId: null, episode: null });
    await plain.play(0);
    clock = 3000;
    await plain.pause(50);
    assert.equal('series_id' in srv.requests[1].body || 'episode' in srv.requests[1].body, false);
    assert.throws(() => new Player({ client, key: KEY, deviceId: 'tv', seriesId: 'show-1' }), TypeError);
    assert.throws(() => new Player({ client, key: KEY, deviceId: 'tv', episode: 2 }), TypeError);
  });

  test('offline keeps the latest checkpoint and sends it when back online', async (t) => {
    const srv = await startServer(fakeBackend());
    t.after(() => srv.close());
    let clock = 0;
    const player = new Player({ client: new PlaymarkClient({ baseUrl: srv.baseUrl }), key: KEY, deviceId: 'phone', now: () => clock });
    await player.play(0);
    await player.offline();
    clock = 30_000;
    assert.equal((await player.tick(30)).skip, 'queued_offline');
    clock = 40_000;
    assert.equal((await player.pause(40)).skip, 'queued_offline');
    assert.equal(srv.requests.length, 0);
    clock = 90_000;
    await player.online();
    assert.equal(srv.requests.length, 1);
    assert.deepEqual(srv.requests[0].body, { ...KEY, device_id: 'phone', position: 40, updated_at: 40_000, event: 'pause' });
  });

  test('a 409 conflict is surfaced, and keepLocal lets the next checkpoint through', async (t) => {
    const srv = await startServer(fakeBackend());
    t.after(() => srv.close());
    const client = new PlaymarkClient({ baseUrl: srv.baseUrl });
    let clock = 1000;
    const log = [];
    const conflicts = [];
    const tv = new Player({
      client,
      key: KEY,
      deviceId: 'tv',
      durationSec: 3600,
      now: () => clock,
      onLog: (e) => log.push(e),
      onConflict: (e) => conflicts.push(e),
    });
    // The TV writes 600 s, then the phone watches on to 1260 s.
    await tv.play(500);
    clock = 2000;
    await tv.pause(600);
    assert.equal(tv.resumedFrom, 2000);
    clock = 3000;
    await client.update({ ...KEY, device_id: 'phone', position: 1260, duration: 3600, updated_at: clock });
    // The TV, never told, carries on from 600 s: its write is refused.
    clock = 4000;
    await tv.play(600);
    clock = 34_000;
    await tv.tick(630);
    assert.equal(srv.requests.at(-1).body.resumed_from, 2000);
    const conflict = log.at(-1);
    assert.equal(conflict.kind, 'conflict');
    assert.deepEqual([conflict.record.device_id, conflict.record.position, conflict.error.status], ['phone', 1260, 409]);
    assert.equal(conflicts.length, 1);
    assert.equal(tv.conflict.position, 1260);
    // The viewer keeps the TV's position: the next checkpoint applies.
    tv.keepLocal();
    assert.equal(tv.conflict, null);
    assert.equal(tv.resumedFrom, 3000);
    clock = 64_000;
    await tv.tick(660);
    assert.equal(srv.requests.at(-1).body.resumed_from, 3000);
    assert.deepEqual([log.at(-1).kind, log.at(-1).outcome], ['acked', 'applied']);
  });

  test('a failed send is logged and dropped; the next checkpoint goes out', async (t) => {
    let fail = true;
    const srv = await startServer((req, res) => {
      if (fail) {
        fail = false;
        return json(res, 400, { error: { code: 'invalid_request', message: 'position must not be beyond duration (10 s)', field: 'position' } });
      }
      return json(res, 200, { outcome: 'applied', record: { ...KEY, ...req.body } });
    });
    t.after(() => srv.close());
    let clock = 0;
    const log = [];
    const player = new Player({ client: new PlaymarkClient({ baseUrl: srv.baseUrl }), key: KEY, deviceId: 'tv', now: () => clock, onLog: (e) => log.push(e) });
    await player.play(0);
    clock = 5000;
    await player.seek(50);
    const failed = log.find((e) => e.kind === 'failed');
    assert.equal(failed.error.field, 'position');
    clock = 6000;
    await player.pause(51);
    assert.equal(srv.requests.length, 2);
    assert.equal(log.at(-1).kind, 'acked');
  });

  test('resume sends the device and its local position, and applies the guardrails an older server did not', async (t) => {
    let answer;
    const srv = await startServer((req, res) => json(res, 200, answer));
    t.after(() => srv.close());
    const client = new PlaymarkClient({ baseUrl: srv.baseUrl });
    const standing = record(600, 7000, 'tv');
    const phone = new Player({ client, key: KEY, deviceId: 'phone', durationSec: 3600, localPositionSec: 1200 });

    // An older server: no device_id, no prompt.
    answer = { found: true, position: 600, action: 'resume', reason: 'in_progress', record: standing };
    let d = await phone.resume();
    assert.deepEqual(srv.requests[0].query, { ...KEY, device_id: 'phone', local_position: '1200' });
    assert.deepEqual(
      { ...d, record: undefined },
      { found: true, action: 'prompt', position: 600, reason: 'in_progress', alternative: 1200, deviceId: 'tv', record: undefined },
    );
    assert.equal(phone.resumedFrom, 7000);

    // A server with the guardrails: its answer stands.
    answer = { found: true, position: 600, action: 'prompt', reason: 'in_progress', device_id: 'tv', alternative: 1200, record: standing };
    d = await phone.resume();
    assert.deepEqual([d.action, d.position, d.alternative, d.deviceId], ['prompt', 600, 1200, 'tv']);

    // A small regression keeps the local position.
    answer = { found: true, position: 1195, action: 'resume', reason: 'in_progress', device_id: 'tv', record: record(1195, 8000) };
    d = await phone.resume();
    assert.deepEqual([d.action, d.position, d.reason], ['resume', 1200, 'kept_local']);

    // No local position: no local_position parameter, the server's answer.
    const fresh = new Player({ client, key: KEY, deviceId: 'tv' });
    answer = { found: true, position: 600, action: 'resume', reason: 'in_progress', record: standing };
    d = await fresh.resume();
    assert.deepEqual(srv.requests.at(-1).query, { ...KEY, device_id: 'tv' });
    assert.deepEqual([d.action, d.position, d.alternative], ['resume', 600, null]);
  });
});
