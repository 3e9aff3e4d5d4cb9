// The official Anthropic TypeScript SDK against rackserve serve's /v1/messages: messages,
// streams (the raw event order checked too), usage and count_tokens, stop_sequences, system
// prompts, tools, thinking, max_tokens past the context, typed errors in Anthropic's shape,
// x-api-key auth; the greedy text equals the OpenAI chat endpoint's, whose tokens equal
// `rackserve generate`. The server runs tools_chat_template.jinja (the tiny model's
// template plus tools), see run_suite.sh.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { API_KEY, MODEL, URL, client as openaiClient, generateReference, tokenize } from './helpers.mjs';

const anthropic = new Anthropic({ baseURL: URL, apiKey: API_KEY, maxRetries: 0, timeout: 120_000 });
const openai = openaiClient();

const system = 'You are a helpful assistant.';
const messages = [{ role: 'user', content: 'Tell me a story about the sea.' }];
const openaiMessages = [{ role: 'system', content: system }, ...messages];
const weatherTool = {
  name: 'weather',
  description: 'Weather now',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

// The text of a message's text blocks.
const textOf = (message) => message.content.filter((block) => block.type === 'text').map((block) => block.text).join('');

// POSTs a raw body to an Anthropic route; returns the response.
function postRaw(path, body, headers = {}) {
  return fetch(`${URL}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'x-api-key': API_KEY, 'anthropic-version': '2023-06-01', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

// Named SSE events of a whole response: [{event, data}], each data.type equal to its event name.
async function readNamedEvents(response) {
  const events = [];
  for (const chunk of (await response.text()).split('\n\n').filter((text) => text.length > 0)) {
    const [eventLine, dataLine, ...rest] = chunk.split('\n');
    assert.equal(rest.length, 0, chunk);
    assert.match(eventLine, /^event: /);
    assert.match(dataLine, /^data: /);
    const event = { event: eventLine.slice('event: '.length), data: JSON.parse(dataLine.slice('data: '.length)) };
    assert.equal(event.data.type, event.event);
    events.push(event);
  }
  return events;
}

test('messages.create: a message with text, usage and stop_reason max_tokens', async () => {
  const count = await anthropic.messages.countTokens({ model: MODEL, system, messages });
  const message = await anthropic.messages.create({ model: MODEL, max_tokens: 6, system, messages, temperature: 0 });
  assert.match(message.id, /^msg_/);
  assert.equal(message.type, 'message');
  assert.equal(message.role, 'assistant');
  assert.equal(message.model, MODEL);
  assert.equal(message.content.length, 1);
  assert.equal(message.content[0].type, 'text');
  assert.equal(typeof message.content[0].text, 'string');
  assert.equal(message.stop_reason, 'max_tokens');
  assert.equal(message.stop_sequence, null);
  assert.equal(message.usage.output_tokens, 6);
  assert.equal(message.usage.input_tokens + message.usage.cache_read_input_tokens, count.input_tokens);
});

test('greedy parity: the text equals the OpenAI chat endpoint\'s, whose tokens equal rackserve generate', async () => {
  const promptTokens = await tokenize({ messages: openaiMessages });
  const count = await anthropic.messages.countTokens({ model: MODEL, system, messages });
  assert.equal(count.input_tokens, promptTokens.length, 'both APIs render the same prompt');
  const message = await anthropic.messages.create({ model: MODEL, max_tokens: 12, system, messages, temperature: 0 });
  const chat = await openai.chat.completions.create({
    model: MODEL, messages: openaiMessages, temperature: 0, max_tokens: 12, return_token_ids: true,
  });
  assert.equal(textOf(message), chat.choices[0].message.content);
  assert.equal(message.usage.output_tokens, chat.usage.completion_tokens);
  const reference = generateReference(promptTokens, 12);
  assert.deepEqual(chat.choices[0].token_ids, reference.slice(0, chat.choices[0].token_ids.length));
});

test('messages.stream: text events and finalMessage() equal the non-stream message', async () => {
  const request = { model: MODEL, max_tokens: 10, system, messages, temperature: 0 };
  const whole = await anthropic.messages.create(request);
  let streamed = '';
  const stream = anthropic.messages.stream(request).on('text', (text) => { streamed += text; });
  const final = await stream.finalMessage();
  assert.equal(streamed, textOf(whole));
  assert.deepEqual(final.content, whole.content);
  assert.equal(final.stop_reason, whole.stop_reason);
  assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
  assert.equal(final.usage.input_tokens + final.usage.cache_read_input_tokens,
    whole.usage.input_tokens + whole.usage.cache_read_input_tokens);
  assert.match(final.id, /^msg_/);
});

test('raw stream: Anthropic\'s event order, named events, ping after message_start', async () => {
  const response = await postRaw('/v1/messages', { model: MODEL, max_tokens: 5, system, messages, temperature: 0, stream: true });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/event-stream/);
  const names = (await readNamedEvents(response)).map((event) => event.event);
  assert.deepEqual(names.slice(0, 3), ['message_start', 'ping', 'content_block_start']);
  assert.deepEqual(names.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
  assert.ok(names.slice(3, -3).every((name) => name === 'content_block_delta'), names.join(','));
});

test('stop_sequences end the text before the stop sequence', async () => {
  const request = { model: MODEL, max_tokens: 24, system, messages, temperature: 0 };
  const full = textOf(await anthropic.messages.create(request));
  const match = /[A-Za-z]{2}/.exec(full.slice(4));
  assert.ok(match, `no letters to stop on in ${JSON.stringify(full)}`);
  const stop = match[0];
  const stopped = await anthropic.messages.create({ ...request, stop_sequences: [stop, 'never-appears'] });
  assert.equal(textOf(stopped), full.slice(0, full.indexOf(stop)));
  assert.equal(stopped.stop_reason, 'stop_sequence');
  assert.equal(stopped.stop_sequence, stop);
  const final = await anthropic.messages.stream({ ...request, stop_sequences: [stop] }).finalMessage();
  assert.equal(final.stop_reason, 'stop_sequence');
  assert.equal(final.stop_sequence, stop);
  assert.equal(textOf(final), textOf(stopped));
});

test('system prompt: string and text blocks render the same prompt; count_tokens sees it', async () => {
  const plain = await anthropic.messages.countTokens({ model: MODEL, messages });
  const withSystem = await anthropic.messages.countTokens({ model: MODEL, system, messages });
  const asBlocks = await anthropic.messages.countTokens({ model: MODEL, system: [{ type: 'text', text: system }], messages });
  assert.ok(withSystem.input_tokens > plain.input_tokens);
  assert.equal(asBlocks.input_tokens, withSystem.input_tokens);
});

test('tools: accepted and rendered into the prompt; a tool round trip is accepted; tool_choice none hides them', async () => {
  const question = [{ role: 'user', content: 'Weather in Paris?' }];
  const without = await anthropic.messages.countTokens({ model: MODEL, messages: question });
  const withTools = await anthropic.messages.countTokens({ model: MODEL, messages: question, tools: [weatherTool] });
  assert.ok(withTools.input_tokens > without.input_tokens, `${withTools.input_tokens} > ${without.input_tokens}`);
  const hidden = await anthropic.messages.countTokens({ model: MODEL, messages: question, tools: [weatherTool], tool_choice: { type: 'none' } });
  assert.equal(hidden.input_tokens, without.input_tokens);

  // The same tools through the OpenAI route: the same prompt, and the same answer text
  // (both read it with the server's tool-call parser).
  const openaiTools = [{ type: 'function', function: { name: weatherTool.name, description: weatherTool.description, parameters: weatherTool.input_schema } }];
  assert.equal((await tokenize({ messages: question, tools: openaiTools })).length, withTools.input_tokens);
  const answer = await anthropic.messages.create({ model: MODEL, max_tokens: 4, messages: question, tools: [weatherTool], temperature: 0 });
  assert.ok(['max_tokens', 'end_turn', 'tool_use'].includes(answer.stop_reason));
  const chat = await openai.chat.completions.create({ model: MODEL, max_tokens: 4, messages: question, tools: openaiTools, temperature: 0 });
  assert.equal(textOf(answer), chat.choices[0].message.content ?? '');

  const roundTrip = [
    ...question,
    { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Paris' } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '18C' }] },
  ];
  const afterTool = await anthropic.messages.countTokens({ model: MODEL, messages: roundTrip, tools: [weatherTool] });
  assert.ok(afterTool.input_tokens > withTools.input_tokens);
  const openaiRoundTrip = [
    ...question,
    { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', tool_call_id: 'toolu_1', content: '18C' },
  ];
  assert.equal((await tokenize({ messages: openaiRoundTrip, tools: openaiTools })).length, afterTool.input_tokens);
  const reply = await anthropic.messages.create({ model: MODEL, max_tokens: 4, messages: roundTrip, tools: [weatherTool], temperature: 0 });
  assert.equal(reply.usage.input_tokens + reply.usage.cache_read_input_tokens, afterTool.input_tokens);
});

// tool_choice any / tool: the answer is decoded as calls of the tools (tool_call_list.h) and
// comes back as tool_use blocks with stop_reason "tool_use"; output_config.format: the text is
// a document under the schema. Boolean-only inputs and one call bound the documents.
test('tool_choice any / tool and output_config.format: constrained answers', async () => {
  const question = [{ role: 'user', content: 'Weather in Paris?' }];
  const sunnyTool = {
    name: 'sunny', input_schema: { type: 'object', properties: { today: { type: 'boolean' } }, required: ['today'] },
  };
  const clockTool = { name: 'clock', input_schema: { type: 'object', properties: {} } };
  for (const tool_choice of [{ type: 'any', disable_parallel_tool_use: true }, { type: 'tool', name: 'sunny', disable_parallel_tool_use: true }]) {
    const request = { model: MODEL, max_tokens: 64, messages: question, tools: [clockTool, sunnyTool], tool_choice, temperature: 0 };
    const message = await anthropic.messages.create(request);
    assert.equal(message.stop_reason, 'tool_use');
    const uses = message.content.filter((block) => block.type === 'tool_use');
    assert.equal(uses.length, 1);
    assert.equal(textOf(message), '');
    assert.match(uses[0].id, /^toolu_/);
    if (tool_choice.type === 'tool') assert.equal(uses[0].name, 'sunny');
    if (uses[0].name === 'sunny') assert.equal(typeof uses[0].input.today, 'boolean');
    else assert.deepEqual(uses[0].input, {});
    const streamed = await anthropic.messages.stream(request).finalMessage();
    assert.deepEqual(streamed.content.map((block) => [block.type, block.name, block.input]), message.content.map((block) => [block.type, block.name, block.input]));
  }
  await assert.rejects(
    anthropic.messages.create({ model: MODEL, max_tokens: 4, messages: question, tools: [weatherTool], tool_choice: { type: 'tool', name: 'rain' } }),
    Anthropic.BadRequestError);

  const format = { type: 'json_schema', schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false } };
  const structured = await anthropic.messages.create({ model: MODEL, max_tokens: 64, messages: question, output_config: { format }, temperature: 0 });
  assert.equal(structured.stop_reason, 'end_turn');
  assert.equal(typeof JSON.parse(textOf(structured)).ok, 'boolean');
});

test('thinking: enabled opens <think> in the prompt and the answer starts with a thinking block', async () => {
  const thinking = { type: 'enabled', budget_tokens: 1024 };
  const plain = await anthropic.messages.countTokens({ model: MODEL, messages });
  const opened = await anthropic.messages.countTokens({ model: MODEL, messages, thinking });
  assert.ok(opened.input_tokens > plain.input_tokens);
  const request = { model: MODEL, max_tokens: 8, messages, thinking, temperature: 0 };
  const message = await anthropic.messages.create(request);
  assert.equal(message.content[0].type, 'thinking');
  assert.equal(message.content[0].signature, '');
  assert.ok(message.content[0].thinking.length > 0);
  const final = await anthropic.messages.stream(request).finalMessage();
  assert.deepEqual(final.content, message.content);
});

test('max_tokens past the context is cut to the room left', async () => {
  // A prompt whose greedy answer (of this tiny model) runs to the end of the context.
  const longSystem = 'You are a helpful assistant. Answer in one long paragraph, never stop early.';
  const count = await anthropic.messages.countTokens({ model: MODEL, system: longSystem, messages });
  const message = await anthropic.messages.create({ model: MODEL, max_tokens: 64000, system: longSystem, messages, temperature: 0 });
  assert.equal(message.stop_reason, 'model_context_window_exceeded');
  const models = await openai.models.list();
  assert.equal(count.input_tokens + message.usage.output_tokens, models.data[0].max_model_len);
});

test('errors: typed SDK errors and Anthropic\'s error shape', async () => {
  await assert.rejects(anthropic.messages.create({ model: MODEL, messages }), (error) => {
    assert.ok(error instanceof Anthropic.BadRequestError);
    assert.equal(error.status, 400);
    assert.equal(error.type, 'invalid_request_error');
    assert.match(error.message, /max_tokens/);
    return true;
  });
  const wrongKey = new Anthropic({ baseURL: URL, apiKey: 'wrong-key', maxRetries: 0 });
  await assert.rejects(wrongKey.messages.create({ model: MODEL, max_tokens: 4, messages }), (error) => {
    assert.ok(error instanceof Anthropic.AuthenticationError);
    assert.equal(error.type, 'authentication_error');
    return true;
  });
  await assert.rejects(anthropic.messages.create({ model: 'claude-no-such-model', max_tokens: 4, messages }), Anthropic.NotFoundError);
  const image = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } };
  await assert.rejects(
    anthropic.messages.create({ model: MODEL, max_tokens: 4, messages: [{ role: 'user', content: [image] }] }),
    (error) => {
      assert.ok(error instanceof Anthropic.BadRequestError);
      assert.match(error.message, /"image" content blocks are not supported/);
      return true;
    });
  await assert.rejects(
    anthropic.messages.create({ model: MODEL, max_tokens: 4, messages, tools: [{ type: 'bash_20250124', name: 'bash' }] }),
    Anthropic.BadRequestError);

  // The raw bodies (curl_checks.sh checks those httplib writes itself: 404, 413).
  const missing = await postRaw('/v1/messages', { model: MODEL, messages });
  assert.equal(missing.status, 400);
  const body = await missing.json();
  assert.equal(body.type, 'error');
  assert.equal(body.error.type, 'invalid_request_error');
  assert.match(body.error.message, /'max_tokens' is required/);
  const noKey = await postRaw('/v1/messages/count_tokens', { model: MODEL, messages }, { 'x-api-key': '' });
  assert.equal(noKey.status, 401);
  assert.equal((await noKey.json()).error.type, 'authentication_error');
});

test('auth: Authorization: Bearer works on /v1/messages, x-api-key on the OpenAI routes', async () => {
  const bearer = new Anthropic({ baseURL: URL, apiKey: null, authToken: API_KEY, maxRetries: 0 });
  const message = await bearer.messages.create({ model: MODEL, max_tokens: 2, messages, temperature: 0 });
  assert.equal(message.type, 'message');
  const models = await fetch(`${URL}/v1/models`, { headers: { 'x-api-key': API_KEY } });
  assert.equal(models.status, 200);
});

test('the server keeps serving after the errors', async () => {
  const message = await anthropic.messages.create({ model: MODEL, max_tokens: 3, messages, temperature: 0 });
  assert.equal(message.usage.output_tokens, 3);
  const models = await openai.models.list();
  assert.equal(models.data[0].id, MODEL);
});
