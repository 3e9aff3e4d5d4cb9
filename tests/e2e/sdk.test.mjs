// The official OpenAI Node SDK against rackserve serve: chat and completions, streamed and
// not, usage, seeds, stop strings, logprobs, n, typed errors, reasoning_content, tools,
// response_format json_object and json_schema, tool_choice naming a function or required; greedy output equals `rackserve generate` token for token.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';
import { MODEL, client, generateReference, tokenize } from './helpers.mjs';

const openai = client();
const messages = [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Tell me a story about the sea.' }];

test('models list names the served model', async () => {
  const models = [];
  for await (const model of openai.models.list()) models.push(model);
  assert.equal(models.length, 1);
  assert.equal(models[0].id, MODEL);
  assert.equal(models[0].object, 'model');
});

test('chat non-stream: greedy tokens equal rackserve generate, usage counts the prompt', async () => {
  const promptTokens = await tokenize({ messages });
  const completion = await openai.chat.completions.create({
    model: MODEL, messages, temperature: 0, max_tokens: 12, ignore_eos: true, return_token_ids: true,
  });
  assert.equal(completion.object, 'chat.completion');
  assert.match(completion.id, /^chatcmpl-/);
  const choice = completion.choices[0];
  assert.equal(choice.message.role, 'assistant');
  assert.equal(typeof choice.message.content, 'string');
  assert.equal(choice.finish_reason, 'length');
  assert.deepEqual(choice.token_ids, generateReference(promptTokens, 12));
  assert.equal(completion.usage.prompt_tokens, promptTokens.length);
  assert.equal(completion.usage.completion_tokens, 12);
  assert.equal(completion.usage.total_tokens, promptTokens.length + 12);
});

test('chat stream: deltas concatenate to the non-stream text; usage chunk last', async () => {
  const request = { model: MODEL, messages, temperature: 0, max_tokens: 10, ignore_eos: true };
  const whole = await openai.chat.completions.create(request);
  const stream = await openai.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let role = null;
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.model, MODEL);
    if (chunk.usage) {
      assert.deepEqual(chunk.choices, []);
      usage = chunk.usage;
      continue;
    }
    const choice = chunk.choices[0];
    if (choice.delta.role) role = choice.delta.role;
    if (choice.delta.content) text += choice.delta.content;
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  assert.ok(chunks >= 3);
  assert.equal(role, 'assistant');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.deepEqual(
    { prompt: usage.prompt_tokens, completion: usage.completion_tokens, total: usage.total_tokens },
    { prompt: whole.usage.prompt_tokens, completion: 10, total: whole.usage.prompt_tokens + 10 });
});

test('completions: greedy parity with rackserve generate, stream equals non-stream', async () => {
  const prompt = 'The quick brown fox jumps over the';
  const promptTokens = await tokenize({ prompt });
  const completion = await openai.completions.create({
    model: MODEL, prompt, temperature: 0, max_tokens: 16, ignore_eos: true, return_token_ids: true,
  });
  assert.equal(completion.object, 'text_completion');
  assert.deepEqual(completion.choices[0].token_ids, generateReference(promptTokens, 16));
  assert.equal(completion.usage.prompt_tokens, promptTokens.length);
  const stream = await openai.completions.create({ model: MODEL, prompt, temperature: 0, max_tokens: 16, ignore_eos: true, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, completion.choices[0].text);
  // A prompt given as token ids is served exactly like its text.
  const byIds = await openai.completions.create({ model: MODEL, prompt: promptTokens, temperature: 0, max_tokens: 16, ignore_eos: true });
  assert.equal(byIds.choices[0].text, completion.choices[0].text);
});

test('seed: same seed gives the same text, another seed another text', async () => {
  const request = { model: MODEL, prompt: 'Hello world', temperature: 1.0, max_tokens: 16, ignore_eos: true };
  const first = await openai.completions.create({ ...request, seed: 1234 });
  const again = await openai.completions.create({ ...request, seed: 1234 });
  assert.equal(again.choices[0].text, first.choices[0].text);
  const others = await Promise.all([1, 2, 3].map((seed) => openai.completions.create({ ...request, seed })));
  assert.ok(others.some((other) => other.choices[0].text !== first.choices[0].text));
});

test('stop strings end the text before the stop string', async () => {
  const request = { model: MODEL, prompt: 'Please write a short poem about the sea.', temperature: 0, max_tokens: 24, ignore_eos: true };
  const full = (await openai.completions.create(request)).choices[0].text;
  // A stop string taken from the middle of the greedy text, made of plain letters.
  const match = /[A-Za-z]{2}/.exec(full.slice(4));
  assert.ok(match, `no letters to stop on in ${JSON.stringify(full)}`);
  const stop = match[0];
  const stopped = await openai.completions.create({ ...request, stop: [stop, 'never-appears'] });
  assert.equal(stopped.choices[0].text, full.slice(0, full.indexOf(stop)));
  assert.equal(stopped.choices[0].finish_reason, 'stop');
});

test('logprobs: chat top_logprobs and completions logprobs', async () => {
  const chat = await openai.chat.completions.create({
    model: MODEL, messages, temperature: 0, max_tokens: 6, ignore_eos: true, logprobs: true, top_logprobs: 3,
  });
  const content = chat.choices[0].logprobs.content;
  assert.equal(content.length, 6);
  for (const entry of content) {
    assert.equal(entry.top_logprobs.length, 3);
    assert.ok(entry.logprob <= 0);
    // Greedy: the sampled token is the most likely one.
    assert.ok(Math.abs(entry.logprob - entry.top_logprobs[0].logprob) < 1e-5);
    assert.ok(entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob);
    assert.ok(Array.isArray(entry.bytes));
  }
  const completion = await openai.completions.create({ model: MODEL, prompt: 'Hello', temperature: 0, max_tokens: 5, ignore_eos: true, logprobs: 2 });
  const logprobs = completion.choices[0].logprobs;
  assert.equal(logprobs.tokens.length, 5);
  assert.equal(logprobs.token_logprobs.length, 5);
  assert.equal(logprobs.top_logprobs.length, 5);
  assert.ok(Object.keys(logprobs.top_logprobs[0]).length <= 2);
});

test('n = 2 gives two choices and counts both in usage', async () => {
  const completion = await openai.chat.completions.create({
    model: MODEL, messages, n: 2, temperature: 1.0, seed: 7, max_tokens: 8, ignore_eos: true,
  });
  assert.deepEqual(completion.choices.map((choice) => choice.index), [0, 1]);
  assert.equal(completion.usage.completion_tokens, 16);
});

test('reasoning: enable_thinking opens <think>, the text goes to reasoning_content', async () => {
  const request = { model: MODEL, messages, temperature: 0, max_tokens: 8, ignore_eos: true, chat_template_kwargs: { enable_thinking: true } };
  const thinkingPrompt = await tokenize({ messages, chat_template_kwargs: { enable_thinking: true } });
  const plainPrompt = await tokenize({ messages });
  assert.ok(thinkingPrompt.length > plainPrompt.length);
  const completion = await openai.chat.completions.create(request);
  const message = completion.choices[0].message;
  const reasoning = message.reasoning_content ?? '';
  assert.ok(reasoning.length + message.content.length > 0);
  if (!reasoning.includes('</think>') && message.content === '') assert.ok(reasoning.length > 0);
  let streamedReasoning = '';
  let streamedContent = '';
  for await (const chunk of await openai.chat.completions.create({ ...request, stream: true })) {
    const delta = chunk.choices[0]?.delta ?? {};
    streamedReasoning += delta.reasoning_content ?? '';
    streamedContent += delta.content ?? '';
  }
  assert.equal(streamedReasoning, reasoning);
  assert.equal(streamedContent, message.content);
});

test('typed errors: unknown model, bad n, context overflow, wrong key', async () => {
  await assert.rejects(openai.chat.completions.create({ model: 'no-such-model', messages }), (error) => {
    assert.ok(error instanceof OpenAI.NotFoundError);
    assert.equal(error.status, 404);
    return true;
  });
  await assert.rejects(openai.chat.completions.create({ model: MODEL, messages, n: 1000 }), (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.param, 'n');
    return true;
  });
  await assert.rejects(openai.completions.create({ model: MODEL, prompt: 'Hello', max_tokens: 100000 }), OpenAI.BadRequestError);
  await assert.rejects(openai.completions.create({ model: MODEL, prompt: 'Hello '.repeat(200), max_tokens: 4 }), (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.code, 'context_length_exceeded');
    return true;
  });
  await assert.rejects(client('wrong-key').models.list(), OpenAI.AuthenticationError);
  await assert.rejects(openai.chat.completions.create({ model: MODEL, messages: [] }), OpenAI.BadRequestError);
});

test('tools: offered tools are accepted', async () => {
  const tools = [{
    type: 'function',
    function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
  }];
  const completion = await openai.chat.completions.create({ model: MODEL, messages, tools, max_tokens: 4 });
  assert.equal(completion.choices[0].message.role, 'assistant');
  // The tiny model's template renders no tools and has no tool-call format: plain text comes back.
  assert.equal(completion.choices[0].message.tool_calls, undefined);
  await assert.rejects(openai.chat.completions.create({ model: MODEL, messages, tools: [{ type: 'function', function: {} }] }),
    OpenAI.BadRequestError);
});

// The tools the forced-call tests offer: one without parameters, one whose single boolean
// bounds the arguments (so a decoded call always ends within max_tokens).
const forcedCallTools = [
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } },
  {
    type: 'function',
    function: {
      name: 'get_weather',
      parameters: { type: 'object', properties: { sunny: { type: 'boolean' } }, required: ['sunny'], additionalProperties: false },
    },
  },
];

// tool_choice "required": the answer is decoded as a list of calls of the tools (each its name
// first, then arguments under that tool's parameters) and comes back as those calls with
// finish_reason "tool_calls". Boolean-only parameters and one call bound the document, so it stops.
test('tool_choice required: calls of the offered tools, arguments under their parameters', async () => {
  const tools = forcedCallTools;
  const request = { model: MODEL, messages, tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 64 };
  const assertCall = (call) => {
    assert.ok(['get_time', 'get_weather'].includes(call.function.name), call.function.name);
    const args = JSON.parse(call.function.arguments);
    if (call.function.name === 'get_time') assert.deepEqual(args, {});
    else assert.deepEqual(Object.keys(args), ['sunny']) && assert.equal(typeof args.sunny, 'boolean');
  };
  for (const sampling of [{ temperature: 0 }, { temperature: 1.0, seed: 11, n: 3 }]) {
    const completion = await openai.chat.completions.create({ ...request, ...sampling });
    for (const choice of completion.choices) {
      assert.equal(choice.finish_reason, 'tool_calls');
      assert.equal(choice.message.content, null);
      assert.equal(choice.message.tool_calls.length, 1);
      assert.match(choice.message.tool_calls[0].id, /^call_/);
      assertCall(choice.message.tool_calls[0]);
    }
  }
  // Streamed: the deltas accumulate to the same call.
  const whole = await openai.chat.completions.create({ ...request, temperature: 0 });
  const calls = [];
  let finishReason = null;
  for await (const chunk of await openai.chat.completions.create({ ...request, temperature: 0, stream: true })) {
    const choice = chunk.choices[0];
    finishReason = choice?.finish_reason ?? finishReason;
    assert.ok(!choice?.delta?.content, 'no content beside the calls');
    for (const delta of choice?.delta?.tool_calls ?? []) {
      if (delta.id) calls[delta.index] = { id: delta.id, function: { name: delta.function.name, arguments: '' } };
      calls[delta.index].function.arguments += delta.function?.arguments ?? '';
    }
  }
  assert.equal(finishReason, 'tool_calls');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].function.name, whole.choices[0].message.tool_calls[0].function.name);
  assert.equal(calls[0].function.arguments, whole.choices[0].message.tool_calls[0].function.arguments);
  // Parallel calls allowed: every call returned is one of the tools (the list may run to max_tokens).
  const parallel = await openai.chat.completions.create({ ...request, parallel_tool_calls: true, temperature: 1.0, seed: 5 });
  const choice = parallel.choices[0];
  assert.ok(['tool_calls', 'length'].includes(choice.finish_reason), choice.finish_reason);
  assert.ok(choice.message.tool_calls.length >= 1);
  for (const call of choice.message.tool_calls.slice(0, choice.finish_reason === 'length' ? -1 : undefined)) assertCall(call);

  await assert.rejects(openai.chat.completions.create({ model: MODEL, messages, tool_choice: 'required' }), (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.param, 'tool_choice');
    return true;
  });
});

// tool_choice naming a function: the answer is decoded under its parameters and comes back as
// one call of it (not through the model family's markup, which the tiny model has none of).
// The one boolean property bounds the document (as in the json_schema test), so it stops.
test('tool_choice naming a function: one call whose arguments follow its parameters', async () => {
  const tools = forcedCallTools;
  const request = { model: MODEL, messages, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } };
  const assertArguments = (text, finishReason) => {
    assert.equal(finishReason, 'stop', text);
    assert.deepEqual(Object.keys(JSON.parse(text)), ['sunny']);
    assert.equal(typeof JSON.parse(text).sunny, 'boolean');
  };
  for (const sampling of [{ temperature: 0 }, { temperature: 1.0, seed: 7, n: 2 }]) {
    const completion = await openai.chat.completions.create({ ...request, ...sampling });
    for (const choice of completion.choices) {
      assert.equal(choice.message.content, null);
      assert.equal(choice.message.tool_calls.length, 1);
      const call = choice.message.tool_calls[0];
      assert.match(call.id, /^call_/);
      assert.equal(call.type, 'function');
      assert.equal(call.function.name, 'get_weather');
      assertArguments(call.function.arguments, choice.finish_reason);
    }
  }
  // Streamed: the deltas of call 0 accumulate to the same call.
  const whole = await openai.chat.completions.create({ ...request, temperature: 0 });
  const call = { id: null, name: null, arguments: '' };
  let finishReason = null;
  for await (const chunk of await openai.chat.completions.create({ ...request, temperature: 0, stream: true })) {
    const choice = chunk.choices[0];
    finishReason = choice?.finish_reason ?? finishReason;
    assert.ok(!choice?.delta?.content, 'no content beside the forced call');
    for (const delta of choice?.delta?.tool_calls ?? []) {
      assert.equal(delta.index, 0);
      if (delta.id) {
        assert.equal(call.id, null, 'only the first delta carries the id');
        call.id = delta.id;
        call.name = delta.function.name;
      }
      call.arguments += delta.function?.arguments ?? '';
    }
  }
  assert.match(call.id, /^call_/);
  assert.equal(call.name, 'get_weather');
  assert.equal(call.arguments, whole.choices[0].message.tool_calls[0].function.arguments);
  assertArguments(call.arguments, finishReason);
  // A function without parameters is called with an (empty) object.
  const time = await openai.chat.completions.create({
    ...request, tool_choice: { type: 'function', function: { name: 'get_time' } }, temperature: 0,
  });
  assert.equal(time.choices[0].message.tool_calls[0].function.name, 'get_time');
  assert.deepEqual(JSON.parse(time.choices[0].message.tool_calls[0].function.arguments), {});

  await assert.rejects(openai.chat.completions.create({
    ...request, tool_choice: { type: 'function', function: { name: 'get_news' } },
  }), (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.param, 'tool_choice');
    return true;
  });
  await assert.rejects(openai.chat.completions.create({
    ...request,
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', not: {} } } }],
  }), (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.param, 'tools[0].function.parameters');
    assert.match(error.message, /'not'/);
    return true;
  });
});

// Checks one json_object answer: a whole JSON object when the model stopped, else (cut by
// max_tokens) the start of one.
function assertJsonObjectAnswer(content, finishReason) {
  assert.equal(typeof content, 'string');
  if (finishReason === 'stop') {
    const parsed = JSON.parse(content);
    assert.ok(parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed), content);
  } else {
    assert.equal(finishReason, 'length');
    assert.ok(content.length > 0);
    assert.ok(content.startsWith('{'), content);
  }
}

test('response_format json_object: the answer is a JSON object (or its start when cut)', async () => {
  const request = { model: MODEL, messages, response_format: { type: 'json_object' }, max_tokens: 64 };
  for (const sampling of [{ temperature: 0 }, { temperature: 1.0, seed: 3 }, { temperature: 1.0, seed: 4, n: 2 }]) {
    const completion = await openai.chat.completions.create({ ...request, ...sampling });
    for (const choice of completion.choices) assertJsonObjectAnswer(choice.message.content, choice.finish_reason);
  }
  // Streamed: the deltas make the same answer.
  const whole = await openai.chat.completions.create({ ...request, temperature: 0 });
  let streamed = '';
  let finishReason = null;
  for await (const chunk of await openai.chat.completions.create({ ...request, temperature: 0, stream: true })) {
    streamed += chunk.choices[0]?.delta?.content ?? '';
    finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
  }
  assert.equal(streamed, whole.choices[0].message.content);
  assertJsonObjectAnswer(streamed, finishReason);
});

// A prompt that opened <think> (enable_thinking) thinks first, unconstrained: the constraint
// starts after "</think>" (one token in the test tokenizer), and the thinking is reasoning_content.
// With thinking off the answer is the JSON from its first token and there is no reasoning.
test('response_format json_object: thinks first when the prompt opened <think>', async () => {
  const request = { model: MODEL, messages, response_format: { type: 'json_object' }, max_tokens: 48, temperature: 0 };
  const thinking = await openai.chat.completions.create({ ...request, chat_template_kwargs: { enable_thinking: true } });
  const message = thinking.choices[0].message;
  assert.ok((message.reasoning_content ?? '').length > 0, JSON.stringify(message));
  if (message.content) assert.ok(/^\s*\{/.test(message.content), message.content);
  if (thinking.choices[0].finish_reason === 'stop') assert.equal(typeof JSON.parse(message.content), 'object');
  const plain = await openai.chat.completions.create({ ...request, chat_template_kwargs: { enable_thinking: false } });
  assert.ok(plain.choices[0].message.reasoning_content == null, JSON.stringify(plain.choices[0].message));
  assertJsonObjectAnswer(plain.choices[0].message.content, plain.choices[0].finish_reason);
});

// Every answer is a prefix of a document of the schema; a stopped one parses with the keys and
// types the schema requires. Whitespace runs are bounded by the grammar (8 bytes), so the
// one-property schema leaves even the random test model no way but to finish within
// 1+8 + 7+8 + 1+8 + 5+8 + 1+8 + 1 = 56 tokens and stop.
// vLLM's structured_outputs (extra body fields): choice on chat and completions (also the older
// guided_choice), json on chat; the answers are exactly a choice / parse under the schema.
test('structured_outputs (vLLM): choice and json', async () => {
  const choices = ['positive', 'negative', 'neutral'];
  for (const sampling of [{ temperature: 0 }, { temperature: 1.0, seed: 3, n: 3 }]) {
    const chat = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 32, structured_outputs: { choice: choices }, ...sampling });
    for (const choice of chat.choices) {
      assert.equal(choice.finish_reason, 'stop');
      assert.ok(choices.includes(choice.message.content), choice.message.content);
    }
    const completion = await openai.completions.create({ model: MODEL, prompt: 'The sentiment is', max_tokens: 32, guided_choice: choices, ...sampling });
    for (const choice of completion.choices) {
      assert.equal(choice.finish_reason, 'stop');
      assert.ok(choices.includes(choice.text), choice.text);
    }
  }
  const json = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false };
  const structured = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 64, temperature: 0, structured_outputs: { json } });
  assert.equal(structured.choices[0].finish_reason, 'stop');
  assert.equal(typeof JSON.parse(structured.choices[0].message.content).ok, 'boolean');
  await assert.rejects(openai.chat.completions.create({ model: MODEL, messages, structured_outputs: { regex: 'a+' } }), (error) => {
    assert.ok(error instanceof OpenAI.UnprocessableEntityError);
    assert.equal(error.param, 'structured_outputs.regex');
    return true;
  });
});

test('response_format json_schema: the answer parses and has the required keys with their types', async () => {
  const small = {
    type: 'object', properties: { sunny: { type: 'boolean' } }, required: ['sunny'], additionalProperties: false,
  };
  const schema = {
    type: 'object',
    properties: {
      city: { enum: ['Paris', 'Rome'] },
      sunny: { type: 'boolean' },
      hours: { type: 'array', items: { type: 'null' }, maxItems: 2 },
      note: { anyOf: [{ type: 'null' }, { type: 'boolean' }] },
    },
    required: ['city', 'sunny', 'hours'],
    additionalProperties: false,
  };
  const request = (json) => ({
    model: MODEL, messages, response_format: { type: 'json_schema', json_schema: { name: 'weather', strict: true, schema: json } },
  });
  let stopped = 0;
  for (const sampling of [{ temperature: 0 }, { temperature: 1.0, seed: 5, n: 2 }, { temperature: 1.0, seed: 6, n: 2 }]) {
    const completion = await openai.chat.completions.create({ ...request(small), ...sampling });
    for (const choice of completion.choices) {
      assert.equal(choice.finish_reason, 'stop', choice.message.content);
      assert.deepEqual(Object.keys(JSON.parse(choice.message.content)), ['sunny']);
      assert.equal(typeof JSON.parse(choice.message.content).sunny, 'boolean');
    }
    const rich = await openai.chat.completions.create({ ...request(schema), ...sampling });
    for (const choice of rich.choices) {
      const content = choice.message.content;
      assert.ok(content.startsWith('{'), content);
      if (choice.finish_reason !== 'stop') continue;
      ++stopped;
      const parsed = JSON.parse(content);
      assert.ok(['Paris', 'Rome'].includes(parsed.city), content);
      assert.equal(typeof parsed.sunny, 'boolean');
      assert.ok(Array.isArray(parsed.hours) && parsed.hours.length <= 2 && parsed.hours.every((h) => h === null));
      assert.ok(!('note' in parsed) || parsed.note === null || typeof parsed.note === 'boolean');
      assert.deepEqual(Object.keys(parsed).filter((key) => !(key in schema.properties)), []);
    }
  }
  console.log(`json_schema: ${stopped} of 5 answers under the larger schema stopped within the context`);
  await assert.rejects(openai.chat.completions.create({
    ...request(small),
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', not: {} } } },
  }), (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.param, 'response_format.json_schema.schema');
    assert.match(error.message, /'not'/);
    return true;
  });
});
