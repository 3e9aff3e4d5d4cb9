// A full queue answers at once: with room for 2 unfinished requests (run_suite.sh starts
// this suite's server with --max-queued-requests 2), a burst of 12 gets 200s and 503s with
// Retry-After and an error object, nothing hangs, and the server serves again afterwards.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MODEL, post } from './helpers.mjs';

test('a burst beyond the queue gets 503 + Retry-After, never hangs', async () => {
  const started = Date.now();
  const responses = await Promise.all(Array.from({ length: 12 }, () =>
    post('/v1/completions', { model: MODEL, prompt: 'Hello', max_tokens: 110, ignore_eos: true })));
  const statuses = responses.map((response) => response.status);
  assert.ok(statuses.every((status) => status === 200 || status === 503), statuses.join(','));
  assert.ok(statuses.filter((status) => status === 200).length >= 2, statuses.join(','));
  const rejected = responses.filter((response) => response.status === 503);
  assert.ok(rejected.length >= 1, statuses.join(','));
  for (const response of rejected) {
    assert.equal(response.headers.get('retry-after'), '1');
    const error = (await response.json()).error;
    assert.equal(error.type, 'service_unavailable_error');
  }
  for (const response of responses.filter((r) => r.status === 200)) assert.equal((await response.json()).usage.completion_tokens, 110);
  assert.ok(Date.now() - started < 60_000);
  const after = await post('/v1/completions', { model: MODEL, prompt: 'Hello', max_tokens: 4 });
  assert.equal(after.status, 200);
});
