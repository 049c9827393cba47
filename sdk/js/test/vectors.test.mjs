// Runs every case of the shared vectors (vectors/player-policy.json) through
// CheckpointPolicy and decideHandoff. Every SDK runs the same cases.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { CheckpointPolicy, decideHandoff, decideResume } from '../playmark.js';

const vectors = JSON.parse(readFileSync(new URL('../../../vectors/player-policy.json', import.meta.url), 'utf8'));

const resumePolicy = {
  minResumePercent: vectors.resume_policy.min_resume_percent,
  maxResumePercent: vectors.resume_policy.max_resume_percent,
  minResumeDurationMs: vectors.resume_policy.min_resume_duration_ms,
};
const handoff = {
  smallRegressionMs: vectors.handoff_config.small_regression_ms,
  promptBackwardMs: vectors.handoff_config.prompt_backward_ms,
};

describe('checkpoint policy vectors', () => {
  test('there are cases', () => assert.ok(vectors.checkpoint_policy.length > 0));
  for (const c of vectors.checkpoint_policy) {
    test(c.name, () => {
      const policy = new CheckpointPolicy({ deltaMs: c.config.delta_ms, maxIntervalMs: c.config.max_interval_ms });
      c.steps.forEach((step, i) => {
        const out = policy.handle(step.input);
        assert.deepEqual(out.send, step.send, `step ${i}: ${JSON.stringify(step.input)}`);
        // Exactly one of send/skip.
        assert.equal(out.send === null, typeof out.skip === 'string', `step ${i}: send xor skip`);
      });
    });
  }
});

describe('handoff vectors', () => {
  test('there are cases', () => assert.ok(vectors.handoff.length > 0));
  for (const c of vectors.handoff) {
    test(c.name, () => {
      const got = decideHandoff(c.record, c.local_ms, { resumePolicy, handoff });
      assert.deepEqual(
        { action: got.action, position_ms: got.positionMs, reason: got.reason, alternative_ms: got.alternativeMs },
        c.expect,
      );
      // The vectors' snake_case config is accepted as is.
      const snake = decideHandoff(c.record, c.local_ms, { resumePolicy: vectors.resume_policy, handoff: vectors.handoff_config });
      assert.deepEqual(snake, got);
    });
  }
});

describe('skip reasons', () => {
  test('each input that sends nothing says why', () => {
    const p = new CheckpointPolicy();
    assert.equal(p.handle({ type: 'tick', now: 0, position: 0 }).skip, 'not_playing');
    assert.equal(p.handle({ type: 'play', now: 0, position: 0 }).skip, 'nothing');
    assert.equal(p.handle({ type: 'tick', now: 1000, position: 1000 }).skip, 'below_delta');
    assert.ok(p.handle({ type: 'seek', now: 2000, position: 50000 }).send);
    assert.equal(p.handle({ type: 'seek', now: 2500, position: 50000 }).skip, 'unchanged');
    assert.equal(p.handle({ type: 'pause', now: 3000, position: 51000 }).skip, 'queued_in_flight');
    assert.deepEqual(p.pending, { position: 51000, event: 'pause', at: 3000 });
    assert.equal(p.handle({ type: 'offline', now: 3100 }).skip, 'nothing');
    assert.deepEqual(p.handle({ type: 'sent', now: 3200, ok: true }), { send: null, skip: 'nothing' });
    assert.equal(p.handle({ type: 'stop', now: 4000, position: 52000 }).skip, 'queued_offline');
    assert.deepEqual(p.handle({ type: 'online', now: 5000 }).send, { position: 52000, event: 'stop', at: 4000 });
    assert.equal(p.pending, null);
    assert.equal(p.handle({ type: 'foreground', now: 6000 }).skip, 'nothing');
  });

  test('the thresholds alone', () => {
    const r = (position_ms, duration_ms) => ({ position_ms, duration_ms, device_id: 'tv', updated_at: 1 });
    assert.deepEqual(decideResume(r(180000, 3600000)), { action: 'resume', positionMs: 180000, reason: 'in_progress' });
    assert.equal(decideResume(r(179000, 3600000)).reason, 'not_started');
    assert.equal(decideResume(r(3240000, 3600000)).reason, 'in_progress');
    assert.equal(decideResume(r(3240001, 3600000)).reason, 'finished');
    assert.equal(decideResume(r(150000, 300000)).reason, 'in_progress');
    assert.equal(decideResume(r(120000, 299000)).reason, 'too_short');
    assert.equal(decideResume(r(300000, 3600000), { minResumePercent: 10 }).reason, 'not_started');
    assert.deepEqual(decideResume(null), { action: 'start_over', positionMs: 0, reason: 'no_record' });
  });
});
