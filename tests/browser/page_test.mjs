// The verification page in a real browser: Debian's headless Chromium, driven by puppeteer-core
// (which never downloads a browser). Starts gradserve-server with HTTP on a free port, opens
// the seed link and checks the verdict, the finding, the table and the chart; then fills the
// form by keyboard alone. Keeps a screenshot of the seed case.
//
//   node page_test.mjs SERVER_BINARY SCREENSHOT.png
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import puppeteer from "puppeteer-core";

const [binary, screenshot] = process.argv.slice(2);
if (!binary || !screenshot) throw new Error("usage: node page_test.mjs SERVER_BINARY SCREENSHOT.png");

const freePort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

function startServer(port) {
  const server = spawn(binary, ["--listen=127.0.0.1:0", `--http_listen=127.0.0.1:${port}`],
                       { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`no "HTTP on" line in 20 s: ${seen}`)), 20000);
    server.stdout.on("data", (d) => {
      seen += d;
      if (seen.includes("HTTP on ")) { clearTimeout(timer); resolve(server); }
    });
    server.on("exit", (code) => reject(new Error(`gradserve-server exited with ${code}: ${seen}`)));
  });
}

const port = await freePort();
const server = await startServer(port);
const profile = mkdtempSync(join(tmpdir(), "gradserve-chromium-"));
const browser = await puppeteer.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         `--user-data-dir=${profile}`],
});
let failed = false;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 900 });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  // 1. The teacher's link prefills the form and runs it.
  const base = `http://127.0.0.1:${port}/`;
  await page.goto(`${base}?logits=1.75,1.75&target_probs=0,1&candidate=6.125,2.625`);
  await page.waitForSelector("[data-verdict]", { timeout: 15000 });
  const seed = await page.evaluate(() => ({
    verdict: document.querySelector("[data-verdict]").dataset.verdict,
    finding: document.querySelector(".finding code")?.textContent,
    message: document.querySelector(".finding div")?.textContent,
    cells: [...document.querySelectorAll("#output table td")].map((td) => td.textContent),
    candidateBars: [...document.querySelectorAll("#chart rect.bar-candidate")].map((r) => ({
      y: +r.getAttribute("y"), h: +r.getAttribute("height") })),
    rightBars: [...document.querySelectorAll("#chart rect.bar-right")].map((r) => ({
      y: +r.getAttribute("y"), h: +r.getAttribute("height") })),
    zeroY: +[...document.querySelectorAll("#chart line")].find((l) => l.getAttribute("stroke") === "#9aa3b2").getAttribute("y1"),
    chartTitle: document.querySelector("#chart svg title")?.textContent,
    logits: document.getElementById("logits").value,
    probsChecked: document.getElementById("kind-probs").checked,
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  assert.equal(seed.logits, "1.75,1.75");
  assert.equal(seed.probsChecked, true);
  assert.equal(seed.verdict, "WRONG");
  assert.equal(seed.finding, "JACOBIAN_AT_LOGITS");
  assert.match(seed.message, /\(0\.5, -0\.5\) = a - t/);
  assert.deepEqual(seed.cells, ["0.5", "-0.5"]);
  // Two classes, a candidate and a right bar each: candidate 6.125 and 2.625 above zero, right
  // 0.5 above and -0.5 below, bar heights in proportion to the values.
  assert.equal(seed.candidateBars.length, 2);
  assert.equal(seed.rightBars.length, 2);
  const [c0, c1] = seed.candidateBars, [r0, r1] = seed.rightBars;
  assert.ok(Math.abs(c0.y + c0.h - seed.zeroY) < 0.5 && Math.abs(c1.y + c1.h - seed.zeroY) < 0.5);
  assert.ok(Math.abs(r0.y + r0.h - seed.zeroY) < 0.5, "right class 0 bar rises from zero");
  assert.ok(Math.abs(r1.y - seed.zeroY) < 0.5, "right class 1 bar hangs below zero");
  assert.ok(Math.abs(c0.h / c1.h - 6.125 / 2.625) < 0.01, `candidate heights ${c0.h} ${c1.h}`);
  assert.ok(Math.abs(r0.h / r1.h - 1) < 0.01);
  assert.match(seed.chartTitle, /row 0/);

  // 2. By keyboard alone: Tab into the logits, type, Tab through, Ctrl+Enter submits.
  await page.goto(base);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "logits");
  await page.keyboard.type("2, 1, 0.1");
  await page.keyboard.press("Tab");  // the target kind radio group
  assert.equal(await page.evaluate(() => document.activeElement.name), "target_kind");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "targets");
  await page.keyboard.type("0");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "candidate");
  // softmax(2, 1, 0.1) - (1, 0, 0)
  const e = [Math.exp(2), Math.exp(1), Math.exp(0.1)], s = e[0] + e[1] + e[2];
  await page.keyboard.type(`${e[0] / s - 1}, ${e[1] / s}, ${e[2] / s}`);
  await page.keyboard.down("Control");
  await page.keyboard.press("Enter");
  await page.keyboard.up("Control");
  await page.waitForSelector("[data-verdict]", { timeout: 15000 });
  assert.equal(await page.$eval("[data-verdict]", (b) => b.dataset.verdict), "RIGHT");
  assert.equal(await page.$$eval(".finding", (f) => f.length), 0);
  assert.match(page.url(), /logits=2,1,0\.1/, "the address bar holds a link to this check");

  // 3. A server error is shown, not swallowed.
  await page.goto(`${base}?logits=1,2&labels=5`);
  await page.waitForSelector(".error", { timeout: 15000 });
  assert.match(await page.$eval(".error", (d) => d.textContent), /INVALID_ARGUMENT/);
  assert.deepEqual(errors.filter((m) => !/status of 400/.test(m)), [], "no script errors");
  console.log(`page_test: 3 checks passed; screenshot ${screenshot}`);
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  server.kill("SIGTERM");
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
