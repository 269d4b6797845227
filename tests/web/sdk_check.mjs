// Drives `troupe serve` with the official OpenAI SDK (npm `openai`) and checks the shapes of
// what it returns. Run by tests/test_web.cpp:
//   node sdk_check.mjs <base url ending in /v1> <served model name> <comma-separated token ids>
// Prints one JSON object (what the C++ test compares with the references); exits 1 with the
// failed check on stderr.
import OpenAI from "openai";
import assert from "node:assert/strict";

const [baseURL, model, tokenList] = process.argv.slice(2);
const tokens = tokenList.split(",").map(Number);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const out = {};

async function rejects(promise, status, pattern) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.status, status, `expected HTTP ${status}, got ${e.status}: ${e.message}`);
    assert.match(e.message, pattern);
    return e.message;
  }
  assert.fail(`expected HTTP ${status} (${pattern})`);
}

// /v1/models: id, created, owned_by.
const models = await client.models.list();
assert.equal(models.data[0].id, model);
assert.equal(typeof models.data[0].created, "number");
assert.equal(models.data[0].owned_by, "troupe");

// echo + max_tokens 0 + logprobs on a token-id prompt: the prompt's own log-probabilities.
const echo = await client.completions.create({ model, prompt: tokens, echo: true, max_tokens: 0, logprobs: 5, temperature: 0 });
const lp = echo.choices[0].logprobs;
assert.equal(lp.tokens.length, tokens.length);
assert.equal(lp.token_logprobs[0], null);
assert.equal(echo.choices[0].text, lp.tokens.join(""));
assert.equal(echo.usage.prompt_tokens, tokens.length);
assert.equal(echo.usage.completion_tokens, 0);
out.echo = { token_logprobs: lp.token_logprobs, top_logprobs: lp.top_logprobs, text_offset: lp.text_offset };

// Arrays of prompts (token ids and text): one choice each, in order.
const two = await client.completions.create({ model, prompt: [tokens.slice(0, 5), "Once upon a time"], max_tokens: 4, temperature: 0 });
assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
assert.equal(two.usage.completion_tokens, 8);
out.two_prompts = two.choices.map((c) => c.text);

// Completions with logprobs, streaming, with stream_options.include_usage.
const plain = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 8, temperature: 0, logprobs: 2 });
assert.equal(plain.choices[0].logprobs.tokens.length, 8);
assert.equal(plain.choices[0].logprobs.tokens.join(""), plain.choices[0].text);
const stream = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 8, temperature: 0, logprobs: 2,
                                                 stream: true, stream_options: { include_usage: true } });
let streamedText = "", streamedLogprobs = [], usage = null, chunks = 0;
for await (const chunk of stream) {
  ++chunks;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    streamedText += c.text;
    if (c.logprobs) streamedLogprobs.push(...c.logprobs.token_logprobs);
  }
}
assert.equal(streamedText, plain.choices[0].text);
assert.deepEqual(streamedLogprobs, plain.choices[0].logprobs.token_logprobs);
assert.deepEqual(usage, plain.usage);
out.completion_logprobs = plain.choices[0].logprobs.token_logprobs;

// Chat with logprobs and top_logprobs, streaming and not.
const messages = [{ role: "user", content: "Tell me a story." }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
const content = chat.choices[0].logprobs.content;
assert.equal(content.length, chat.usage.completion_tokens);
assert.equal(content.map((c) => c.token).join(""), chat.choices[0].message.content);
for (const c of content) {
  assert.equal(c.top_logprobs.length, 3);
  assert.ok(c.logprob <= 0);
  assert.ok(c.top_logprobs[0].logprob >= c.logprob - 1e-9);
  assert.deepEqual(c.bytes, [...Buffer.from(c.token)]);
}
const chatStream = await client.chat.completions.create({ model, messages, max_tokens: 6, temperature: 0, logprobs: true,
                                                          top_logprobs: 3, stream: true, stream_options: { include_usage: true } });
let chatText = "", chatLogprobs = [], chatUsage = null;
for await (const chunk of chatStream) {
  if (chunk.usage) chatUsage = chunk.usage;
  for (const c of chunk.choices) {
    chatText += c.delta.content ?? "";
    if (c.logprobs) chatLogprobs.push(...c.logprobs.content.map((x) => x.logprob));
  }
}
assert.equal(chatText, chat.choices[0].message.content);
assert.deepEqual(chatLogprobs, content.map((c) => c.logprob));
assert.deepEqual(chatUsage, chat.usage);

// The model name is checked; tool calls are refused saying so; n: 2 stays a clear 400.
out.wrong_model = await rejects(client.completions.create({ model: "gpt-4o", prompt: "hi", max_tokens: 1 }), 404,
                                new RegExp(`'gpt-4o' is not served here; this server serves '${model}'`));
out.tool_history = await rejects(client.chat.completions.create({ model, max_tokens: 1, messages: [
  { role: "user", content: "What is the weather?" },
  { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "weather", arguments: "{}" } }] },
  { role: "tool", tool_call_id: "call_1", content: "sunny" }] }), 400, /tools \(function calling\) are not supported/);
out.n2 = await rejects(client.completions.create({ model, prompt: "hi", max_tokens: 1, n: 2 }), 400, /'n' must be 1/);
// An assistant turn with content null (no tool calls) is history, not an error.
const nullTurn = await client.chat.completions.create({ model, max_tokens: 2, messages: [
  { role: "user", content: "Hi" }, { role: "assistant", content: null }, { role: "user", content: "Hello?" }] });
assert.equal(nullTurn.object, "chat.completion");

console.log(JSON.stringify(out));
