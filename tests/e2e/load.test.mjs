// Concurrency and robustness: 64 concurrent streams with exact usage, 16 streams aborted
// mid-way whose KV pages come back (seen through /metrics), and a barrage of bad requests
// sent alongside good ones: every bad one gets its 4xx error object, every good one completes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MODEL, URL, metrics, post, readSse, tokenize, waitFor } from './helpers.mjs';

const prompts = ['Hello world', 'The weather is nice', 'Tell me a story', 'Count from one to ten', 'Good morning'];

async function streamCompletion(index) {
  const prompt = prompts[index % prompts.length];
  const maxTokens = 8 + (index % 24);
  const response = await post('/v1/completions', {
    model: MODEL, prompt, max_tokens: maxTokens, ignore_eos: true, temperature: 0.8, seed: index,
    stream: true, stream_options: { include_usage: true },
  });
  assert.equal(response.status, 200);
  const { payloads, done } = await readSse(response);
  assert.ok(done, 'stream ended with [DONE]');
  const usage = payloads.at(-1).usage;
  const finish = payloads.flatMap((payload) => payload.choices).map((choice) => choice.finish_reason).filter(Boolean);
  return { prompt, maxTokens, usage, finish };
}

test('64 concurrent streaming requests complete with exact usage', async () => {
  const promptLengths = new Map();
  for (const prompt of prompts) promptLengths.set(prompt, (await tokenize({ prompt })).length);
  const results = await Promise.all(Array.from({ length: 64 }, (_, index) => streamCompletion(index)));
  for (const { prompt, maxTokens, usage, finish } of results) {
    assert.equal(usage.completion_tokens, maxTokens);
    assert.equal(usage.prompt_tokens, promptLengths.get(prompt));
    assert.equal(usage.total_tokens, usage.prompt_tokens + maxTokens);
    assert.deepEqual(finish, ['length']);
  }
});

test('16 streams aborted mid-way free their KV pages', async () => {
  const before = await metrics();
  const aborted = Array.from({ length: 16 }, async (_, index) => {
    const controller = new AbortController();
    const response = await post('/v1/completions', {
      model: MODEL, prompt: prompts[index % prompts.length], max_tokens: 110, ignore_eos: true, stream: true,
    }, { signal: controller.signal });
    assert.equal(response.status, 200);
    const reader = response.body.getReader();
    let received = '';
    while (!received.includes('"text"')) {  // at least one generated chunk arrived
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream ended before it was aborted');
      received += Buffer.from(value).toString();
    }
    controller.abort();
  });
  await Promise.all(aborted);
  // Stats are snapshots published during the engine's step, so the gauges and the abort
  // counter may briefly disagree: wait until all of them show the 16 aborts.
  let last = null;
  try {
    await waitFor(async () => {
      last = await metrics();
      return last.rackserve_requests_running === 0 && last.rackserve_requests_waiting === 0 &&
        last.rackserve_kv_pages_used === 0 &&
        last.rackserve_requests_finished_total - before.rackserve_requests_finished_total === 16;
    }, 10_000, 'the 16 aborted requests to end and free every page');
  } catch (error) {
    throw new Error(`${error.message}; last /metrics: ${JSON.stringify(last)}`);
  }
  // They ended because they were cancelled, far from their 110 tokens each.
  const generated = last.rackserve_generation_tokens_total - before.rackserve_generation_tokens_total;
  assert.ok(generated < 16 * 110 / 2, `the aborted requests generated ${generated} tokens`);
  assert.ok(last.rackserve_requests_aborted_total - before.rackserve_requests_aborted_total >= 1);
});

const badRequests = [
  ['malformed JSON', '/v1/chat/completions', '{"messages": [', 400],
  ['empty body', '/v1/completions', '', 400],
  ['body is an array', '/v1/completions', '[1, 2, 3]', 400],
  ['invalid UTF-8', '/v1/completions', Buffer.from([0x7b, 0x22, 0x70, 0x72, 0x6f, 0x6d, 0x70, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), 400],
  ['deep nesting', '/v1/completions', '['.repeat(100000), 400],
  ['messages not an array', '/v1/chat/completions', '{"messages": "hi"}', 400],
  ['message without role', '/v1/chat/completions', '{"messages": [{"content": "hi"}]}', 400],
  ['unknown role', '/v1/chat/completions', '{"messages": [{"role": "wizard", "content": "hi"}]}', 400],
  ['image content part', '/v1/chat/completions', '{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}', 422],
  ['negative max_tokens', '/v1/completions', '{"prompt": "hi", "max_tokens": -5}', 400],
  ['temperature as string', '/v1/completions', '{"prompt": "hi", "temperature": "hot"}', 400],
  ['temperature out of range', '/v1/completions', '{"prompt": "hi", "temperature": 7}', 400],
  ['n out of range', '/v1/completions', '{"prompt": "hi", "n": 0}', 400],
  ['huge integer', '/v1/completions', '{"prompt": "hi", "max_tokens": 1e300}', 400],
  ['token id beyond the vocabulary', '/v1/completions', '{"prompt": [1, 2, 99999]}', 400],
  ['negative token id', '/v1/completions', '{"prompt": [-1]}', 400],
  ['prompt over the context', '/v1/completions', JSON.stringify({ prompt: 'word '.repeat(400) }), 400],
  ['stop not strings', '/v1/completions', '{"prompt": "hi", "stop": [1, 2]}', 400],
  ['stream_options without stream', '/v1/completions', '{"prompt": "hi", "stream_options": {"include_usage": true}}', 400],
  ['top_logprobs without logprobs', '/v1/chat/completions', '{"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}', 400],
  ['logprobs over the limit', '/v1/completions', '{"prompt": "hi", "logprobs": 1000}', 400],
  ['unknown model', '/v1/completions', '{"model": "other", "prompt": "hi"}', 404],
  ['detokenize bad ids', '/detokenize', '{"tokens": [1, "x"]}', 400],
  ['tokenize without prompt', '/tokenize', '{}', 400],
];

test('bad requests get error objects while good requests run alongside', async () => {
  const good = Array.from({ length: 8 }, (_, index) => streamCompletion(index));
  const bad = badRequests.map(async ([name, path, body, status]) => {
    const response = await post(path, body, { raw: true });
    const text = await response.text();
    assert.equal(response.status, status, `${name}: ${text}`);
    const error = JSON.parse(text).error;
    assert.equal(typeof error.message, 'string', name);
    assert.equal(typeof error.type, 'string', name);
  });
  await Promise.all(bad);
  for (const result of await Promise.all(good)) assert.equal(result.usage.completion_tokens, result.maxTokens);
  assert.equal((await fetch(`${URL}/health`)).status, 200);
});
