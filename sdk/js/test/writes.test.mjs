// Writes per viewer-hour: the checkpoint policy against a naive
// "update every 10 seconds" (docs/design.md#scale: a 30 min session is ~180
// updates), over a simulated 30-minute session with 1-second ticks, pauses,
// a seek and a trip to the background.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { CheckpointPolicy } from '../playmark.js';

const DELTA_MS = 30000;
const SESSION_S = 30 * 60;
const T0 = 1_764_270_000_000;

/** What the viewer does at a given second of the session (before that second's tick). */
const SCRIPT = new Map([
  [300, { type: 'pause' }],
  [420, { type: 'play' }],
  [600, { type: 'seek', by: 120 }],
  [900, { type: 'pause' }],
  [1080, { type: 'play' }],
  [1400, { type: 'pause' }],
  [1460, { type: 'play' }],
  [1600, { type: 'background' }],
  [1610, { type: 'foreground' }],
]);

function simulate() {
  const policy = new CheckpointPolicy({ deltaMs: DELTA_MS, maxIntervalMs: 60000 });
  let position = 0; // true position, ms
  let playing = true;
  let lastSent = null;
  let smart = 0;
  let naive = 0;
  let naiveWhilePlaying = 0;
  let worstGap = 0;
  const events = {};
  const feed = (input) => {
    const { send } = policy.handle(input);
    if (send) {
      smart++;
      lastSent = send.position;
      events[send.event] = (events[send.event] ?? 0) + 1;
      // The server answers before the next second.
      assert.equal(policy.handle({ type: 'sent', now: input.now + 50, ok: true }).send, null);
    }
  };
  feed({ type: 'play', now: T0, position: 0 });
  lastSent = 0; // the baseline: the server's record this session resumed from
  for (let s = 1; s <= SESSION_S; s++) {
    const now = T0 + s * 1000;
    if (playing) position += 1000;
    // Just before this second's tick the gap is at its largest.
    if (playing) {
      const gap = Math.abs(position - lastSent);
      worstGap = Math.max(worstGap, gap);
      assert.ok(gap <= DELTA_MS, `at ${s} s the last position sent (${lastSent}) is ${gap} ms behind ${position}`);
    }
    const action = SCRIPT.get(s);
    if (action) {
      if (action.type === 'pause') playing = false;
      if (action.type === 'play') playing = true;
      if (action.type === 'seek') position += action.by * 1000;
      feed({ type: action.type, now, position });
    }
    if (s === SESSION_S) {
      feed({ type: 'stop', now, position });
    } else {
      feed({ type: 'tick', now, position });
    }
    if (playing) {
      const gap = Math.abs(position - lastSent);
      assert.ok(gap < DELTA_MS, `after the tick at ${s} s the gap is ${gap} ms`);
    }
    // The naive client: every 10 s of the session, whatever the player does.
    if (s % 10 === 0) {
      naive++;
      if (playing) naiveWhilePlaying++;
    }
  }
  return { smart, naive, naiveWhilePlaying, worstGap, events };
}

test('the policy writes at least 3x less than every-10-seconds and stays within delta of the true position', (t) => {
  const { smart, naive, naiveWhilePlaying, worstGap, events } = simulate();
  assert.equal(naive, 180, 'a naive 30 min session is ~180 updates (docs/design.md#scale)');
  const perHour = (n) => (n * 3600) / SESSION_S;
  t.diagnostic(
    `writes per viewer-hour: policy ${perHour(smart)}, every 10 s ${perHour(naive)} (${perHour(naiveWhilePlaying)} counting only while playing); ` +
      `${(naive / smart).toFixed(2)}x fewer; events ${JSON.stringify(events)}; worst gap ${worstGap} ms`,
  );
  assert.ok(smart * 3 <= naive, `policy sent ${smart}, naive ${naive}`);
  // Every kind of trigger fired.
  for (const e of ['progress', 'pause', 'seek', 'background', 'stop']) assert.ok(events[e] >= 1, `a ${e} checkpoint was sent`);
  assert.ok(worstGap <= DELTA_MS);
});
