// Tensor parallelism through the server: run_suite.sh starts this suite's server with
// --device cpu --tp 2 (two CPU ranks meeting in the in-process communicator). 8 concurrent
// greedy streams through the official SDK must give exactly the tokens of the single-rank
// reference (`rackserve generate`, --tp 1), and the server must report its two ranks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MODEL, client, generateReference, tokenize } from './helpers.mjs';

const openai = client();
const prompts = ['Hello world', 'The weather is nice', 'Tell me a story', 'Count from one to ten',
  'Good morning', 'Once upon a time', 'The sea was calm', 'A B C D E F'];

test('8 concurrent greedy streams at --tp 2 equal rackserve generate --tp 1', async () => {
  const runs = prompts.map(async (prompt, index) => {
    const maxTokens = 10 + index;
    const stream = await openai.completions.create({
      model: MODEL, prompt, temperature: 0, max_tokens: maxTokens, ignore_eos: true, stream: true,
      stream_options: { include_usage: true }, return_token_ids: true,
    });
    const tokens = [];
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices ?? []) tokens.push(...(choice.token_ids ?? []));
    }
    return { prompt, maxTokens, tokens, usage };
  });
  for (const { prompt, maxTokens, tokens, usage } of await Promise.all(runs)) {
    const promptTokens = await tokenize({ prompt });
    assert.equal(usage.completion_tokens, maxTokens, prompt);
    assert.deepEqual(tokens, generateReference(promptTokens, maxTokens), prompt);
  }
});

test('non-stream greedy chat at --tp 2 equals rackserve generate --tp 1', async () => {
  const messages = [{ role: 'user', content: 'Tell me a story about the sea.' }];
  const promptTokens = await tokenize({ messages });
  const completion = await openai.chat.completions.create({
    model: MODEL, messages, temperature: 0, max_tokens: 16, ignore_eos: true, return_token_ids: true,
  });
  assert.deepEqual(completion.choices[0].token_ids, generateReference(promptTokens, 16));
});
