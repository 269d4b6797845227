// Drives the page `troupe serve` shows at / in headless Chromium (npm `playwright-core`, Debian
// `chromium`). Run by tests/test_web.cpp:
//   node browser_check.mjs <server url> <screenshot directory> <user-data dir>
// Sends a prompt with temperature 0, reads the streamed answer (and how many distinct lengths
// it went through), reloads (the conversation must come back from localStorage), stops a long
// answer with the Stop button, opens the cluster view and takes screenshots. Prints JSON.
import { chromium } from "playwright-core";

const [url, shots, userData] = process.argv.slice(2);
const context = await chromium.launchPersistentContext(userData, {
  executablePath: process.env.TROUPE_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
  viewport: { width: 1100, height: 700 },
});
const out = {};
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  await page.goto(url);
  await page.fill("#temperature", "0");
  await page.fill("#max_tokens", process.env.TROUPE_MAX_TOKENS || "40");
  await page.dispatchEvent("#max_tokens", "change");
  await page.fill("#prompt", "Tell me a story about a cat.");
  await page.press("#prompt", "Enter");
  // Watch the answer grow while it streams.
  const lengths = new Set();
  const answer = page.locator(".msg.assistant").last();
  for (let i = 0; i < 2000; ++i) {
    lengths.add((await answer.textContent()).length);
    if (await page.isDisabled("#stop")) break;
    await page.waitForTimeout(5);
  }
  await page.waitForSelector("#stop:disabled");
  out.answer = await page.evaluate(() => JSON.parse(localStorage.getItem("troupe.chat.v1")).messages[1].content);
  out.meta = await page.evaluate(() => JSON.parse(localStorage.getItem("troupe.chat.v1")).messages[1].meta);
  out.distinct_lengths = lengths.size;
  await page.screenshot({ path: `${shots}/chat.png` });

  await page.reload();
  out.after_reload = await page.locator(".msg").allTextContents();

  // A long answer, stopped once it has started.
  await page.fill("#max_tokens", "2000");
  await page.dispatchEvent("#max_tokens", "change");
  await page.fill("#prompt", "And then?");
  await page.press("#prompt", "Enter");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length === 2 &&
                                   document.querySelectorAll(".msg.assistant")[1].textContent.length > 0);
  await page.click("#stop");
  await page.waitForSelector("#stop:disabled");
  out.stopped_meta = await page.evaluate(() => JSON.parse(localStorage.getItem("troupe.chat.v1")).messages[3].meta);

  await page.click("#tab-cluster");
  await page.waitForSelector("#stages tr");
  await page.waitForTimeout(300);
  out.stage_rows = await page.locator("#stages tr").evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  out.cards = await page.locator("#cards .card").allTextContents();
  await page.screenshot({ path: `${shots}/cluster.png` });
  out.console_errors = consoleErrors;
} finally {
  await context.close();
}
console.log(JSON.stringify(out));
