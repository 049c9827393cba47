// playmark.js: the JavaScript client for playmark, a cross-device playback
// resume service. One ES module with no dependencies; it runs in browsers,
// smart-TV runtimes and Node 20 (it needs fetch, AbortController, setTimeout).
//
// It implements docs/player-policy.md exactly like the Rust crate
// `playmark-client`:
//   - CheckpointPolicy: when a player sends its position;
//   - decideResume / decideHandoff: the resume thresholds and guardrails;
//   - PlaymarkClient: the HTTP API (timeouts, bounded retries, typed errors);
//   - Player: a CheckpointPolicy wired to a PlaymarkClient for one title.
//
// The policy works in integer milliseconds; the HTTP API in seconds.

/** Default checkpoint policy knobs (ms). */
export const DEFAULT_CHECKPOINT_CONFIG = Object.freeze({ deltaMs: 30000, maxIntervalMs: 60000 });
/** Default resume thresholds. */
export const DEFAULT_RESUME_POLICY = Object.freeze({
  minResumePercent: 5,
  maxResumePercent: 90,
  minResumeDurationMs: 300000,
});
/** Default resume guardrails (ms). */
export const DEFAULT_HANDOFF_CONFIG = Object.freeze({ smallRegressionMs: 10000, promptBackwardMs: 300000 });

const EVENT_OF = { pause: 'pause', seek: 'seek', background: 'background', stop: 'stop' };

// ---------------------------------------------------------------------------
// Checkpoint policy
// ---------------------------------------------------------------------------

/**
 * When to send a checkpoint: a pure state machine fed player inputs.
 * One per title being played. See docs/player-policy.md.
 */
export class CheckpointPolicy {
  #deltaMs;
  #maxIntervalMs;
  #playing = false;
  #online = true;
  #inFlight = false;
  #lastPosition = null;
  #lastAt = 0;
  #pending = null;

  constructor({ deltaMs = DEFAULT_CHECKPOINT_CONFIG.deltaMs, maxIntervalMs = DEFAULT_CHECKPOINT_CONFIG.maxIntervalMs } = {}) {
    this.#deltaMs = deltaMs;
    this.#maxIntervalMs = maxIntervalMs;
  }

  /** The checkpoint waiting to be sent (offline or behind a send in flight), or null. */
  get pending() {
    return this.#pending ? { ...this.#pending } : null;
  }

  /** Whether a send is in flight (sent, `sent` not fed back yet). */
  get inFlight() {
    return this.#inFlight;
  }

  /** Whether the policy thinks the player is playing. */
  get playing() {
    return this.#playing;
  }

  /** Whether the policy thinks the device is online. */
  get online() {
    return this.#online;
  }

  /**
   * Feeds one input; returns `{send, skip}`: the checkpoint to send now (and
   * `skip: null`), or `send: null` and why nothing goes out now.
   */
  handle(input) {
    const { type, now } = input;
    const position = input.position;
    switch (type) {
      case 'play':
        this.#playing = true;
        if (this.#lastPosition === null) this.#lastPosition = position;
        // The periodic clock restarts with playback.
        this.#lastAt = now;
        return skip('nothing');
      case 'tick': {
        if (!this.#playing) return skip('not_playing');
        const last = this.#lastPosition === null ? position : this.#lastPosition;
        const moved = Math.abs(position - last) >= this.#deltaMs;
        const periodic = Math.max(0, now - this.#lastAt) >= this.#maxIntervalMs && position !== last;
        if (moved || periodic) return this.#emit({ position, event: 'progress', at: now });
        return skip('below_delta');
      }
      case 'pause':
      case 'stop':
        this.#playing = false;
        return this.#emitIfMoved({ position, event: EVENT_OF[type], at: now });
      case 'seek':
      case 'background':
        return this.#emitIfMoved({ position, event: EVENT_OF[type], at: now });
      case 'foreground':
        return skip('nothing');
      case 'offline':
        this.#online = false;
        return skip('nothing');
      case 'online':
        this.#online = true;
        return this.#flush();
      case 'sent':
        // Acknowledged or failed, the slot is free. A failure is not retried:
        // the next checkpoint reconciles.
        this.#inFlight = false;
        return this.#flush();
      default:
        throw new TypeError(`unknown player input type: ${type}`);
    }
  }

  #emitIfMoved(send) {
    if (this.#lastPosition === send.position) return skip('unchanged');
    return this.#emit(send);
  }

  #emit(send) {
    this.#lastPosition = send.position;
    this.#lastAt = send.at;
    if (!this.#online) {
      this.#pending = send;
      return skip('queued_offline');
    }
    if (this.#inFlight) {
      this.#pending = send;
      return skip('queued_in_flight');
    }
    this.#inFlight = true;
    return { send: { ...send }, skip: null };
  }

  #flush() {
    if (!this.#online || this.#inFlight || !this.#pending) return skip('nothing');
    const send = this.#pending;
    this.#pending = null;
    this.#inFlight = true;
    return { send: { ...send }, skip: null };
  }
}

function skip(reason) {
  return { send: null, skip: reason };
}

// ---------------------------------------------------------------------------
// Resume thresholds and guardrails
// ---------------------------------------------------------------------------

function pick(obj, camel, snake, fallback) {
  if (obj && obj[camel] !== undefined && obj[camel] !== null) return obj[camel];
  if (obj && obj[snake] !== undefined && obj[snake] !== null) return obj[snake];
  return fallback;
}

function resumePolicyOf(p) {
  return {
    min: pick(p, 'minResumePercent', 'min_resume_percent', DEFAULT_RESUME_POLICY.minResumePercent),
    max: pick(p, 'maxResumePercent', 'max_resume_percent', DEFAULT_RESUME_POLICY.maxResumePercent),
    minDurationMs: pick(p, 'minResumeDurationMs', 'min_resume_duration_ms', DEFAULT_RESUME_POLICY.minResumeDurationMs),
  };
}

function handoffOf(h) {
  return {
    small: pick(h, 'smallRegressionMs', 'small_regression_ms', DEFAULT_HANDOFF_CONFIG.smallRegressionMs),
    prompt: pick(h, 'promptBackwardMs', 'prompt_backward_ms', DEFAULT_HANDOFF_CONFIG.promptBackwardMs),
  };
}

/**
 * The resume thresholds: where to resume given the server's record alone.
 * `record` is `{position_ms, duration_ms|null, device_id, updated_at}` or null.
 * Returns `{action: 'resume'|'start_over', positionMs, reason}`.
 */
export function decideResume(record, resumePolicy) {
  if (!record) return { action: 'start_over', positionMs: 0, reason: 'no_record' };
  const duration = record.duration_ms;
  if (duration === null || duration === undefined) {
    return { action: 'resume', positionMs: record.position_ms, reason: 'in_progress' };
  }
  const p = resumePolicyOf(resumePolicy);
  const pct = (record.position_ms * 100) / duration;
  if (pct > p.max) return { action: 'start_over', positionMs: 0, reason: 'finished' };
  if (duration < p.minDurationMs) return { action: 'start_over', positionMs: 0, reason: 'too_short' };
  if (pct < p.min) return { action: 'start_over', positionMs: 0, reason: 'not_started' };
  return { action: 'resume', positionMs: record.position_ms, reason: 'in_progress' };
}

/**
 * Step 3 of the guardrails: `server` is the answer of the thresholds
 * (`{action, positionMs, reason}`), `localMs` the device's own position.
 */
export function applyGuardrails(server, localMs, handoff) {
  if (localMs === null || localMs === undefined) return { ...server, alternativeMs: null };
  const h = handoffOf(handoff);
  const backward = localMs - server.positionMs;
  if (backward <= 0) return { ...server, alternativeMs: null };
  if (backward < h.small) return { action: 'resume', positionMs: localMs, reason: 'kept_local', alternativeMs: null };
  if (backward < h.prompt) return { ...server, alternativeMs: null };
  return { action: 'prompt', positionMs: server.positionMs, reason: server.reason, alternativeMs: localMs };
}

/**
 * The resume guardrails: where a device that knows its own position
 * (`localMs`, or null) should start, given the server's record.
 * Returns `{action: 'resume'|'prompt'|'start_over', positionMs, reason, alternativeMs}`.
 */
export function decideHandoff(record, localMs, { resumePolicy, handoff } = {}) {
  return applyGuardrails(decideResume(record, resumePolicy), localMs, handoff);
}

// ---------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------

/** Every failure of a PlaymarkClient call. `status` is 0 when no HTTP answer came. */
export class PlaymarkError extends Error {
  constructor({ status = 0, code = 'unknown', message = 'playmark request failed', field = null, record, retryAfterMs = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'PlaymarkError';
    this.status = status;
    this.code = code;
    this.field = field;
    if (record !== undefined) this.record = record;
    this.retryAfterMs = retryAfterMs;
  }
}

function parseRetryAfter(value, nowMs) {
  if (value === null || value === undefined || value === '') return null;
  const trimmed = String(value).trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - nowMs);
}

const defaultSleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The playmark HTTP API. Positions on the wire are seconds; times are ms. */
export class PlaymarkClient {
  constructor({
    baseUrl = '',
    timeoutMs = 2000,
    retries = 2,
    fetch = globalThis.fetch,
    backoffBaseMs = 100,
    backoffMaxMs = 2000,
    retryAfterMaxMs = 5000,
    random = Math.random,
    sleep = defaultSleep,
    token = null,
    getToken = null,
  } = {}) {
    if (typeof fetch !== 'function') throw new TypeError('PlaymarkClient needs a fetch function');
    if (getToken !== null && typeof getToken !== 'function') throw new TypeError('getToken must be an async function');
    // A fixed bearer token, or a provider asked for the first request and
    // again after a 401 (the request is then retried once).
    this._token = token;
    this._getToken = getToken;
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.timeoutMs = timeoutMs;
    this.retries = retries;
    this.backoffBaseMs = backoffBaseMs;
    this.backoffMaxMs = backoffMaxMs;
    this.retryAfterMaxMs = retryAfterMaxMs;
    this._random = random;
    this._sleep = sleep;
    // Browsers refuse `fetch` called with another `this`.
    this._fetch = (url, init) => fetch.call(globalThis, url, init);
  }

  /**
   * POST /playback/update. The checkpoint goes as it is (an episode's with
   * its `series_id` and `episode`). Resolves to `{outcome, record}`; a 409
   * rejects with the standing `record`.
   */
  update(checkpoint) {
    return this._request('POST', '/playback/update', { body: checkpoint });
  }

  /**
   * GET /playback/resume. `deviceId` and `localPosition` (seconds) let the
   * server apply the guardrails. Resolves to the server's answer.
   */
  resume({ account_id, profile_id, video_id }, { deviceId, localPosition } = {}) {
    const query = { account_id, profile_id, video_id };
    if (deviceId !== undefined && deviceId !== null) query.device_id = deviceId;
    if (localPosition !== undefined && localPosition !== null) query.local_position = localPosition;
    return this._request('GET', '/playback/resume', { query });
  }

  /**
   * GET /playback/continue-watching. Resolves to `{items}`. With
   * `group: 'series'`, a series is one item: its episode in progress (a
   * record), or `{series_id, next_episode, after}` once its latest episode
   * is finished (told apart by `next_episode`).
   */
  continueWatching({ account_id, profile_id }, limit, { group } = {}) {
    const query = { account_id, profile_id };
    if (limit !== undefined && limit !== null) query.limit = limit;
    if (group !== undefined && group !== null) query.group = group;
    return this._request('GET', '/playback/continue-watching', { query });
  }

  /**
   * GET /playback/history: the profile's finished titles, newest finish
   * first. Resolves to `{items, next_cursor}`; pass `next_cursor` back as
   * `cursor` for the next page (it is `null` after the last one).
   */
  history({ account_id, profile_id }, { limit, cursor } = {}) {
    const query = { account_id, profile_id };
    if (limit !== undefined && limit !== null) query.limit = limit;
    if (cursor !== undefined && cursor !== null) query.cursor = cursor;
    return this._request('GET', '/playback/history', { query });
  }

  /**
   * Every page of history from `cursor` (default: the newest) to the end,
   * one request per page as the loop asks: `for await (const page of
   * client.historyPages(key)) ...`. Each page is a `history()` answer.
   */
  async *historyPages(key, { limit, cursor } = {}) {
    let next = cursor ?? null;
    do {
      const page = await this.history(key, { limit, cursor: next });
      yield page;
      next = page?.next_cursor ?? null;
    } while (next !== null);
  }

  /** DELETE /playback/progress: forget one title. Resolves to undefined. */
  async forget({ account_id, profile_id, video_id }) {
    await this._request('DELETE', '/playback/progress', { query: { account_id, profile_id, video_id } });
  }

  /** POST /playback/hide: hide a title from continue-watching. Resolves to undefined. */
  async hide({ account_id, profile_id, video_id }) {
    await this._request('POST', '/playback/hide', { body: { account_id, profile_id, video_id } });
  }

  /**
   * POST /playback/watched: mark a title watched (`watched: true`) or not
   * watched, with its `series_id` and `episode` when it is an episode.
   * Merged like a checkpoint: resolves to `{outcome, record}`, and `stale`
   * when a newer write stands.
   */
  markWatched({ account_id, profile_id, video_id, device_id, watched, duration, updated_at, series_id, episode }) {
    const body = { account_id, profile_id, video_id, device_id, watched };
    if (duration !== undefined && duration !== null) body.duration = duration;
    if (updated_at !== undefined && updated_at !== null) body.updated_at = updated_at;
    if (series_id !== undefined && series_id !== null) body.series_id = series_id;
    if (episode !== undefined && episode !== null) body.episode = episode;
    return this._request('POST', '/playback/watched', { body });
  }

  /** POST /playback/batch. Resolves to `{results}`, one entry per checkpoint. */
  batch(checkpoints) {
    return this._request('POST', '/playback/batch', { body: { checkpoints } });
  }

  _url(path, query) {
    let url = this.baseUrl + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null) params.append(k, String(v));
      }
      const qs = params.toString();
      if (qs) url += '?' + qs;
    }
    return url;
  }

  _backoff(attempt) {
    const ceiling = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** attempt);
    return Math.floor(this._random() * ceiling);
  }

  /** Replaces the bearer token (for a server with `--auth jwt`); `null` sends none. */
  setToken(token) {
    this._token = token;
  }

  async _request(method, path, { query, body } = {}) {
    const url = this._url(path, query);
    const init = { method, headers: { accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (this._token === null && this._getToken) this._token = await this._getToken();
    try {
      return await this._withRetries(url, init);
    } catch (e) {
      // An expired or revoked token: ask the provider for a fresh one, once.
      if (e.status !== 401 || !this._getToken) throw e;
      this._token = await this._getToken();
      return this._withRetries(url, init);
    }
  }

  async _withRetries(url, base) {
    const init = this._token ? { ...base, headers: { ...base.headers, authorization: `Bearer ${this._token}` } } : base;
    for (let attempt = 0; ; attempt++) {
      let error;
      try {
        return await this._attempt(url, init);
      } catch (e) {
        error = e instanceof PlaymarkError ? e : new PlaymarkError({ code: 'network_error', message: String(e?.message ?? e), cause: e });
      }
      // 503 (storage slow, or the node shedding) and 429 (over the account's
      // rate) both say when to come back; every write is a conditional merge.
      const retryable = error.status === 0 || error.status === 503 || error.status === 429;
      if (!retryable || attempt >= this.retries) throw error;
      const wait =
        error.retryAfterMs !== null ? Math.min(error.retryAfterMs, this.retryAfterMaxMs) : this._backoff(attempt);
      await this._sleep(wait);
    }
  }

  async _attempt(url, init) {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    let response;
    let text;
    try {
      response = await this._fetch(url, { ...init, signal: controller.signal });
      text = await response.text();
    } catch (e) {
      if (timedOut) {
        throw new PlaymarkError({ code: 'timeout', message: `no answer within ${this.timeoutMs} ms (${init.method} ${url})`, cause: e });
      }
      throw new PlaymarkError({ code: 'network_error', message: `${init.method} ${url} failed: ${e?.message ?? e}`, cause: e });
    } finally {
      clearTimeout(timer);
    }
    let json = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (response.ok) {
      if (text && json === null) {
        throw new PlaymarkError({ status: response.status, code: 'invalid_response', message: `the server answered ${response.status} with a body that is not JSON` });
      }
      return json === null ? undefined : json;
    }
    const err = json && typeof json === 'object' && json.error ? json.error : {};
    const fields = {
      status: response.status,
      code: err.code ?? `http_${response.status}`,
      message: err.message ?? `${init.method} ${url} answered ${response.status}`,
      field: err.field ?? null,
      retryAfterMs: parseRetryAfter(response.headers.get('retry-after'), Date.now()),
    };
    if (json && typeof json === 'object' && 'record' in json) fields.record = json.record;
    throw new PlaymarkError(fields);
  }
}

// ---------------------------------------------------------------------------
// Player: the policy wired to the client
// ---------------------------------------------------------------------------

const toMs = (sec) => Math.round(Number(sec) * 1000);
const toSec = (ms) => ms / 1000;

/**
 * One title on one device: feeds player inputs to a CheckpointPolicy and
 * sends the checkpoints it decides on with a PlaymarkClient.
 *
 * Every input method handles the input at once and returns a promise of the
 * policy's answer `{send, skip}`, which settles when the send it started
 * (and any waiting checkpoint released after it) has settled. The promise
 * never rejects: outcomes go to `onLog`.
 */
export class Player {
  constructor({
    client,
    key,
    deviceId,
    durationSec,
    policy,
    now = () => Date.now(),
    onLog,
    onConflict,
    localPositionSec,
    resumePolicy,
    handoff,
    seriesId,
    episode,
  }) {
    if (!client) throw new TypeError('Player needs a client');
    if (!key || !key.account_id || !key.profile_id || !key.video_id) throw new TypeError('Player needs key {account_id, profile_id, video_id}');
    if (!deviceId) throw new TypeError('Player needs a deviceId');
    if ((seriesId === undefined || seriesId === null) !== (episode === undefined || episode === null)) {
      throw new TypeError('Player needs seriesId and episode together, or neither');
    }
    this.client = client;
    this.key = { account_id: key.account_id, profile_id: key.profile_id, video_id: key.video_id };
    this.deviceId = deviceId;
    this.durationSec = durationSec ?? null;
    /** The series the title belongs to and its episode (sent with every checkpoint), or null. */
    this.seriesId = seriesId ?? null;
    this.episode = episode ?? null;
    this.policy = policy instanceof CheckpointPolicy ? policy : new CheckpointPolicy(policy ?? {});
    this.now = now;
    this._onLog = onLog ?? null;
    this.onConflict = onConflict ?? null;
    this.resumePolicy = resumePolicy;
    this.handoff = handoff;
    /** The `updated_at` of the record this device resumed from or last wrote (sent as `resumed_from`). */
    this.resumedFrom = null;
    /** The last position (s) this device knows for the title. */
    this.positionSec = localPositionSec ?? null;
    /** The standing record of the last 409 conflict, until resolved. */
    this.conflict = null;
    this._chain = Promise.resolve();
  }

  play(positionSec) {
    return this._input('play', positionSec);
  }
  tick(positionSec) {
    return this._input('tick', positionSec);
  }
  pause(positionSec) {
    return this._input('pause', positionSec);
  }
  seek(positionSec) {
    return this._input('seek', positionSec);
  }
  background(positionSec) {
    return this._input('background', positionSec);
  }
  foreground() {
    return this._input('foreground');
  }
  stop(positionSec) {
    return this._input('stop', positionSec);
  }
  online() {
    return this._input('online');
  }
  offline() {
    return this._input('offline');
  }

  /** Resolves when no send is in flight (a checkpoint may still wait while offline). */
  idle() {
    return this._chain;
  }

  /**
   * Asks the server where to resume, with this device's id and the local
   * position it knows, and returns the decision (seconds):
   * `{found, action, position, reason, alternative, deviceId, record}`.
   * If the server did not apply the guardrails (an older server), they are
   * applied here to its answer. Remembers the record's `updated_at` as the
   * `resumed_from` of the next writes.
   */
  async resume() {
    const local = this.positionSec;
    const answer = await this.client.resume(this.key, { deviceId: this.deviceId, localPosition: local ?? undefined });
    const record = answer.record ?? null;
    if (record && typeof record.updated_at === 'number') {
      this.resumedFrom = Math.max(this.resumedFrom ?? 0, record.updated_at);
    }
    let decision = {
      action: answer.action,
      positionMs: toMs(answer.position ?? 0),
      reason: answer.reason ?? (answer.found ? 'in_progress' : 'no_record'),
      alternativeMs: answer.alternative === undefined || answer.alternative === null ? null : toMs(answer.alternative),
    };
    // Step 3 of the guardrails is idempotent on an answer that already went
    // through it, unless that answer is a prompt or kept the local position.
    if (local !== null && decision.action !== 'prompt' && decision.reason !== 'kept_local') {
      decision = applyGuardrails(decision, toMs(local), this.handoff);
    }
    return {
      found: Boolean(answer.found),
      action: decision.action,
      position: toSec(decision.positionMs),
      reason: decision.reason,
      alternative: decision.alternativeMs === null ? null : toSec(decision.alternativeMs),
      deviceId: answer.device_id ?? record?.device_id ?? null,
      record,
    };
  }

  /**
   * After a conflict, the viewer keeps this device's position: the conflicting
   * record counts as seen, so the next checkpoints apply.
   */
  keepLocal(record = this.conflict) {
    if (record && typeof record.updated_at === 'number') {
      this.resumedFrom = Math.max(this.resumedFrom ?? 0, record.updated_at);
    }
    this.conflict = null;
  }

  _log(entry) {
    if (!this._onLog) return;
    try {
      this._onLog(entry);
    } catch {
      // A logging callback must not break playback.
    }
  }

  _input(type, positionSec) {
    const input = { type, now: this.now() };
    if (positionSec !== undefined && positionSec !== null) {
      input.position = toMs(positionSec);
      this.positionSec = toSec(input.position);
    }
    const result = this.policy.handle(input);
    if (result.send) {
      return this._dispatch(result.send).then(() => result);
    }
    if (type !== 'sent') {
      this._log({ kind: 'skipped', input: type, reason: result.skip, position: positionSec ?? null });
    }
    return Promise.resolve(result);
  }

  _dispatch(send) {
    const body = {
      ...this.key,
      device_id: this.deviceId,
      position: toSec(send.position),
      updated_at: send.at,
      event: send.event,
    };
    if (this.durationSec !== null && this.durationSec !== undefined) body.duration = this.durationSec;
    if (this.resumedFrom !== null) body.resumed_from = this.resumedFrom;
    if (this.seriesId !== null) {
      body.series_id = this.seriesId;
      body.episode = this.episode;
    }
    this._log({ kind: 'sent', event: send.event, position: body.position, at: send.at, checkpoint: body });
    const done = this.client.update(body).then(
      (res) => {
        const record = res?.record ?? null;
        if (record && (res.outcome === 'applied' || res.outcome === 'duplicate')) {
          this.resumedFrom = record.updated_at;
          this.conflict = null;
        }
        this._log({ kind: 'acked', event: send.event, position: body.position, outcome: res?.outcome, record });
        return true;
      },
      (error) => {
        if (error && error.status === 409) {
          this.conflict = error.record ?? null;
          const entry = { kind: 'conflict', event: send.event, position: body.position, record: error.record ?? null, error };
          this._log(entry);
          if (this.onConflict) {
            try {
              this.onConflict(entry);
            } catch {
              // As for onLog.
            }
          }
        } else {
          this._log({ kind: 'failed', event: send.event, position: body.position, error });
        }
        return false;
      },
    );
    const chained = done.then((ok) => {
      const next = this.policy.handle({ type: 'sent', now: this.now(), ok });
      if (next.send) return this._dispatch(next.send);
      return undefined;
    });
    this._chain = chained;
    return chained;
  }
}
