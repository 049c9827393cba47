// Types for playmark.js (@playmark/client). Policy times and positions are
// integer milliseconds; the HTTP API uses seconds for positions and
// durations and milliseconds for times.

// ---------------------------------------------------------------------------
// Checkpoint policy
// ---------------------------------------------------------------------------

export interface CheckpointConfig {
  /** Send when the position moved at least this much (ms). Default 30 000. */
  deltaMs?: number;
  /** While playing, send at least this often (ms) if the position changed. Default 60 000. */
  maxIntervalMs?: number;
}

export declare const DEFAULT_CHECKPOINT_CONFIG: Readonly<Required<CheckpointConfig>>;

export type CheckpointEvent = 'progress' | 'pause' | 'seek' | 'background' | 'stop';

export type PlayerInput =
  | { type: 'play' | 'tick' | 'pause' | 'seek' | 'background' | 'stop'; now: number; position: number }
  | { type: 'foreground' | 'offline' | 'online'; now: number }
  | { type: 'sent'; now: number; ok: boolean };

export type SkipReason = 'nothing' | 'not_playing' | 'below_delta' | 'unchanged' | 'queued_in_flight' | 'queued_offline';

/** A checkpoint to send now: `at` is the `updated_at` to send. */
export interface Send {
  position: number;
  event: CheckpointEvent;
  at: number;
}

export type PolicyResult = { send: Send; skip: null } | { send: null; skip: SkipReason };

export declare class CheckpointPolicy {
  constructor(config?: CheckpointConfig);
  /** The one waiting checkpoint (offline or behind a send in flight), or null. */
  readonly pending: Send | null;
  /** Whether a send is in flight. */
  readonly inFlight: boolean;
  readonly playing: boolean;
  readonly online: boolean;
  handle(input: PlayerInput): PolicyResult;
}

// ---------------------------------------------------------------------------
// Resume thresholds and guardrails
// ---------------------------------------------------------------------------

/** Thresholds; snake_case keys (as in the vectors) are accepted too. */
export interface ResumePolicy {
  /** Below this share watched (percent), start over. Default 5. */
  minResumePercent?: number;
  /** Above this share watched (percent), the title is finished. Default 90. */
  maxResumePercent?: number;
  /** Titles shorter than this (ms) start over. Default 300 000. */
  minResumeDurationMs?: number;
  min_resume_percent?: number;
  max_resume_percent?: number;
  min_resume_duration_ms?: number;
}

/** Guardrails; snake_case keys (as in the vectors) are accepted too. */
export interface HandoffConfig {
  /** Regressions smaller than this (ms) keep the local position. Default 10 000. */
  smallRegressionMs?: number;
  /** Backward jumps of at least this (ms) become a prompt. Default 300 000. */
  promptBackwardMs?: number;
  small_regression_ms?: number;
  prompt_backward_ms?: number;
}

export declare const DEFAULT_RESUME_POLICY: Readonly<{ minResumePercent: number; maxResumePercent: number; minResumeDurationMs: number }>;
export declare const DEFAULT_HANDOFF_CONFIG: Readonly<{ smallRegressionMs: number; promptBackwardMs: number }>;

/** The server's record as the policy sees it (ms). */
export interface PolicyRecord {
  position_ms: number;
  duration_ms: number | null;
  device_id: string;
  updated_at: number;
}

export type ResumeAction = 'resume' | 'prompt' | 'start_over';
export type ResumeReason = 'no_record' | 'not_started' | 'too_short' | 'finished' | 'in_progress' | 'kept_local';

export interface ResumeDecision {
  action: 'resume' | 'start_over';
  positionMs: number;
  reason: ResumeReason;
}

export interface HandoffDecision {
  action: ResumeAction;
  positionMs: number;
  reason: ResumeReason;
  /** For a prompt: the device's own position, the other choice. */
  alternativeMs: number | null;
}

export declare function decideResume(record: PolicyRecord | null, resumePolicy?: ResumePolicy): ResumeDecision;

/** Step 3 of the guardrails, applied to an answer of the thresholds. */
export declare function applyGuardrails(
  server: { action: ResumeAction; positionMs: number; reason: ResumeReason },
  localMs: number | null | undefined,
  handoff?: HandoffConfig,
): HandoffDecision;

export declare function decideHandoff(
  record: PolicyRecord | null,
  localMs: number | null | undefined,
  options?: { resumePolicy?: ResumePolicy; handoff?: HandoffConfig },
): HandoffDecision;

// ---------------------------------------------------------------------------
// HTTP client (wire types: positions and durations in seconds)
//
// The wire names and fields below are checked against the server's OpenAPI
// document (docs/openapi.json) by test/types.test.mjs.
// ---------------------------------------------------------------------------

/** What happened to a checkpoint (a stale-device refusal is a 409 `conflict` error instead). */
export type UpdateOutcome = 'applied' | 'stale' | 'duplicate';

/** The server's stable error codes. */
export type ErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'payload_too_large'
  | 'request_timeout'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'internal'
  | 'unavailable'
  | 'overloaded';

export interface TitleKey {
  account_id: string;
  profile_id: string;
  video_id: string;
}

export interface ProfileKey {
  account_id: string;
  profile_id: string;
}

/** A record that stands on the server. */
export interface PlaybackRecord extends TitleKey {
  position: number;
  duration?: number;
  device_id: string;
  updated_at: number;
  /** The series the title belongs to, once a write named one (kept until a write names another; a deletion forgets it). */
  series_id?: string;
  /** The title's ordinal in `series_id`. */
  episode?: number;
  /** When the title first became finished (ms); present exactly while it is finished. */
  finished_at?: number;
}

/** The body of POST /playback/update (each item of POST /playback/batch too). */
export interface Checkpoint extends TitleKey {
  device_id: string;
  position: number;
  duration?: number;
  updated_at?: number;
  event?: CheckpointEvent;
  /** The `updated_at` of the record the device resumed from or last wrote (stale-device guard). */
  resumed_from?: number;
  /** The series the title is an episode of; with `episode`, or neither. */
  series_id?: string;
  /** The episode's ordinal in `series_id`, 0 to 2147483647; with `series_id`, or neither. */
  episode?: number;
}

/** `POST /playback/watched`: a title marked watched (`true`) or not watched. */
export interface Mark extends TitleKey {
  device_id: string;
  watched: boolean;
  duration?: number;
  updated_at?: number;
  /** The series the title is an episode of; with `episode`, or neither. */
  series_id?: string;
  /** The episode's ordinal in `series_id`, 0 to 2147483647; with `series_id`, or neither. */
  episode?: number;
}

/**
 * In a continue-watching row grouped by series: the series' latest episode
 * is finished, so play the next one. The player maps `next_episode` to a
 * title from its own catalog. Told apart from a record by `next_episode`.
 */
export interface NextUp {
  series_id: string;
  /** The finished episode's ordinal plus one. */
  next_episode: number;
  /** The finished episode's record. */
  after: PlaybackRecord;
}

/** An item of a continue-watching row grouped by series: a title to resume, or a series' next episode. */
export type ShelfItem = PlaybackRecord | NextUp;

/** GET /playback/continue-watching with `group: 'series'`. */
export interface ContinueWatchingRow {
  /** Newest activity first: titles and series episodes in progress, and next-up series. */
  items: ShelfItem[];
}

export interface ContinueWatchingOptions {
  /** `'series'`: at most one item per series (its episode in progress, or what is next up). */
  group?: 'series';
}

/** One page of GET /playback/history. */
export interface HistoryPage {
  /** Finished titles, newest `finished_at` first (ties by `video_id`). */
  items: PlaybackRecord[];
  /** The `cursor` of the next page; `null` when this page is the last. */
  next_cursor: string | null;
}

export interface HistoryOptions {
  /** 1 to 100; default 20. */
  limit?: number;
  /** A `next_cursor` from a previous page, as is; absent or null: the newest. */
  cursor?: string | null;
}

export interface UpdateResult {
  outcome: UpdateOutcome;
  record: PlaybackRecord | null;
}

export interface ResumeAnswer {
  found: boolean;
  position: number;
  action: ResumeAction;
  reason: ResumeReason;
  /** The device the record came from (servers with the guardrails). */
  device_id?: string;
  /** For a prompt: the local position (seconds). */
  alternative?: number;
  record?: PlaybackRecord;
}

/** An error answer's body. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string };
  /** For `conflict`: the standing record. */
  record?: PlaybackRecord;
}

export interface BatchResult {
  results: Array<UpdateResult | ErrorBody>;
}

export declare class PlaymarkError extends Error {
  constructor(init?: {
    status?: number;
    code?: string;
    message?: string;
    field?: string | null;
    record?: PlaybackRecord | null;
    retryAfterMs?: number | null;
    cause?: unknown;
  });
  readonly name: 'PlaymarkError';
  /** The HTTP status; 0 when no answer came (`network_error`, `timeout`). */
  status: number;
  /** The server's error code, or a client-side one: `network_error`, `timeout`, `invalid_response`, `http_<status>`. */
  code: ErrorCode | 'network_error' | 'timeout' | 'invalid_response' | `http_${number}`;
  /** The field at fault, for `invalid_request`. */
  field: string | null;
  /** For a 409 conflict: the standing record. */
  record?: PlaybackRecord | null;
  /** The Retry-After header, in ms, when present. */
  retryAfterMs: number | null;
}

export interface PlaymarkClientOptions {
  /** e.g. `http://127.0.0.1:8080`; empty for the page's own origin. */
  baseUrl?: string;
  /** Per attempt. Default 2000. */
  timeoutMs?: number;
  /** Extra attempts after network errors, timeouts, 503s and 429s. Default 2. */
  retries?: number;
  fetch?: typeof globalThis.fetch;
  /** Full-jitter backoff: a random wait below min(backoffMaxMs, backoffBaseMs * 2^attempt). Defaults 100 and 2000. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Cap on a honoured Retry-After. Default 5000. */
  retryAfterMaxMs?: number;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** A bearer token for a server with `--auth jwt`. */
  token?: string | null;
  /** Gives a bearer token: asked for the first request, and again after a 401 (the request is then retried once). */
  getToken?: (() => Promise<string>) | null;
}

export declare class PlaymarkClient {
  constructor(options?: PlaymarkClientOptions);
  readonly baseUrl: string;
  timeoutMs: number;
  retries: number;
  update(checkpoint: Checkpoint): Promise<UpdateResult>;
  resume(key: TitleKey, options?: { deviceId?: string; localPosition?: number }): Promise<ResumeAnswer>;
  continueWatching(key: ProfileKey, limit?: number | null, options?: { group?: undefined }): Promise<{ items: PlaybackRecord[] }>;
  /** With `group: 'series'`: one item per series, a record or a NextUp (`'next_episode' in item`). */
  continueWatching(key: ProfileKey, limit: number | null | undefined, options: ContinueWatchingOptions): Promise<ContinueWatchingRow>;
  /** GET /playback/history: one page of the profile's finished titles, newest finish first. */
  history(key: ProfileKey, options?: HistoryOptions): Promise<HistoryPage>;
  /** Every page of history from `options.cursor` (default: the newest) to the last, fetched as iterated. */
  historyPages(key: ProfileKey, options?: HistoryOptions): AsyncGenerator<HistoryPage, void, undefined>;
  forget(key: TitleKey): Promise<void>;
  hide(key: TitleKey): Promise<void>;
  /** Marks a title watched or not watched; merged like a checkpoint (`stale` when a newer write stands). */
  markWatched(mark: Mark): Promise<UpdateResult>;
  batch(checkpoints: Checkpoint[]): Promise<BatchResult>;
  /** Replaces the bearer token; `null` sends none. */
  setToken(token: string | null): void;
}

// ---------------------------------------------------------------------------
// Player
// ---------------------------------------------------------------------------

export type PlayerInputType = 'play' | 'tick' | 'pause' | 'seek' | 'background' | 'foreground' | 'stop' | 'online' | 'offline';

export type PlayerLogEntry =
  | { kind: 'sent'; event: CheckpointEvent; position: number; at: number; checkpoint: Checkpoint }
  | { kind: 'skipped'; input: PlayerInputType; reason: SkipReason; position: number | null }
  | { kind: 'acked'; event: CheckpointEvent; position: number; outcome: UpdateResult['outcome']; record: PlaybackRecord | null }
  | { kind: 'failed'; event: CheckpointEvent; position: number; error: PlaymarkError }
  | { kind: 'conflict'; event: CheckpointEvent; position: number; record: PlaybackRecord | null; error: PlaymarkError };

export type ConflictEntry = Extract<PlayerLogEntry, { kind: 'conflict' }>;

/** The decision of Player.resume(), in seconds. */
export interface PlayerResumeDecision {
  found: boolean;
  action: ResumeAction;
  position: number;
  reason: ResumeReason;
  alternative: number | null;
  /** The device the record came from. */
  deviceId: string | null;
  record: PlaybackRecord | null;
}

export interface PlayerOptions {
  client: PlaymarkClient;
  key: TitleKey;
  deviceId: string;
  durationSec?: number | null;
  /** A policy, or its config. */
  policy?: CheckpointPolicy | CheckpointConfig;
  /** The client's clock (ms). Default Date.now. */
  now?: () => number;
  onLog?: (entry: PlayerLogEntry) => void;
  onConflict?: (entry: ConflictEntry) => void;
  /** The position (s) this device already knows for the title. */
  localPositionSec?: number | null;
  /** Guardrails applied by resume() when the server did not. */
  handoff?: HandoffConfig;
  resumePolicy?: ResumePolicy;
  /** The series the title is an episode of, sent as `series_id` with every checkpoint; with `episode`, or neither. */
  seriesId?: string | null;
  /** The episode's ordinal in the series, sent as `episode`; with `seriesId`, or neither. */
  episode?: number | null;
}

export declare class Player {
  constructor(options: PlayerOptions);
  readonly client: PlaymarkClient;
  readonly key: TitleKey;
  readonly deviceId: string;
  durationSec: number | null;
  /** The series sent with every checkpoint, or null. */
  seriesId: string | null;
  /** The episode sent with every checkpoint, or null. */
  episode: number | null;
  readonly policy: CheckpointPolicy;
  /** The `updated_at` sent as `resumed_from`, or null. */
  resumedFrom: number | null;
  /** The last position (s) this device knows, or null. */
  positionSec: number | null;
  /** The standing record of an unresolved 409 conflict. */
  conflict: PlaybackRecord | null;
  play(positionSec: number): Promise<PolicyResult>;
  tick(positionSec: number): Promise<PolicyResult>;
  pause(positionSec: number): Promise<PolicyResult>;
  seek(positionSec: number): Promise<PolicyResult>;
  background(positionSec: number): Promise<PolicyResult>;
  foreground(): Promise<PolicyResult>;
  stop(positionSec: number): Promise<PolicyResult>;
  online(): Promise<PolicyResult>;
  offline(): Promise<PolicyResult>;
  /** Resolves when no send is in flight. */
  idle(): Promise<void>;
  /** GET /playback/resume with this device and its local position; never applies it by itself. */
  resume(): Promise<PlayerResumeDecision>;
  /** After a conflict, keep this device's position: the next checkpoints apply. */
  keepLocal(record?: PlaybackRecord | null): void;
}
