// Shared by the e2e suites: the server under test (from run_suite.sh's environment), raw
// HTTP helpers for what the SDK hides (SSE framing, /tokenize, /metrics), and the
// reference `rackserve generate` for greedy parity.
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';

export const URL = process.env.RACKSERVE_URL;
export const API_KEY = process.env.RACKSERVE_API_KEY;
export const MODEL = process.env.RACKSERVE_MODEL;
export const MODEL_DIR = process.env.RACKSERVE_MODEL_DIR;
export const BINARY = process.env.RACKSERVE_BINARY;

export function client(apiKey = API_KEY) {
  return new OpenAI({ baseURL: `${URL}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });
}

export async function post(path, body, { apiKey = API_KEY, signal, raw = false } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  return fetch(`${URL}${path}`, { method: 'POST', headers, body: raw ? body : JSON.stringify(body), signal });
}

export async function tokenize(body) {
  const response = await post('/tokenize', body);
  if (response.status !== 200) throw new Error(`tokenize: ${response.status} ${await response.text()}`);
  return (await response.json()).tokens;
}

// Metric values by name (labels ignored) from GET /metrics.
export async function metrics() {
  const text = await (await fetch(`${URL}/metrics`)).text();
  const values = {};
  for (const line of text.split('\n')) {
    const match = /^(rackserve_[a-z_]+)\{[^}]*\} (\S+)$/.exec(line);
    if (match) values[match[1]] = Number(match[2]);
  }
  return values;
}

// Reads an SSE response to the end; returns the parsed JSON payloads and whether [DONE] came last.
export async function readSse(response) {
  const text = await response.text();
  const events = text.split('\n\n').filter((event) => event.length > 0);
  const payloads = [];
  let done = false;
  for (const event of events) {
    if (!event.startsWith('data: ')) throw new Error(`bad SSE event: ${JSON.stringify(event)}`);
    const data = event.slice('data: '.length);
    if (data === '[DONE]') {
      done = true;
      continue;
    }
    if (done) throw new Error('event after [DONE]');
    payloads.push(JSON.parse(data));
  }
  return { payloads, done };
}

// Greedy continuation of `tokens` by the reference CLI (`rackserve generate`, no server).
export function generateReference(tokens, maxTokens) {
  const output = execFileSync(BINARY, ['generate', '--model', MODEL_DIR, '--device', 'cpu', '--tokens', tokens.join(','),
    '--max-tokens', String(maxTokens)], { encoding: 'utf8' });
  return JSON.parse(output).tokens;
}

export async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
