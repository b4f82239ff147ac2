// Drives tempmx's /compat/tempmail-lol/v2 with the published tempmail.lol client
// (control/tests/compat_tempmail_lol.rs runs it). The client keeps its base URL in a
// constant (https://api.tempmail.lol/v2); the one change made here rewrites that prefix
// to tempmx's base URL in the node-fetch it calls, and refuses any other URL, so
// nothing leaves the loopback. Protocol on stdout: `READY <address>` (the Rust test then
// delivers a mail over SMTP), then `RESULT <json>`.
const REAL = "https://api.tempmail.lol/v2";
const BASE = `${process.env.TEMPMX_BASE}/compat/tempmail-lol/v2`;
const fetch = require("node-fetch");
function rebased(url, init) {
  if (typeof url !== "string" || !url.startsWith(REAL)) {
    return Promise.reject(new Error(`unexpected URL ${url}`));
  }
  return fetch(BASE + url.slice(REAL.length), init);
}
rebased.default = rebased;
rebased.__esModule = true;
require.cache[require.resolve("node-fetch")].exports = rebased;

const { TempMail } = require("tempmail.lol");

const deadline = setTimeout(() => {
  console.log("RESULT " + JSON.stringify({ error: "timed out" }));
  process.exit(2);
}, 45000);

async function main() {
  const out = {};
  const tm = new TempMail();
  const inbox = await tm.createInbox();
  out.inbox = inbox;
  const named = await tm.createInbox({ prefix: "shop", community: true });
  out.named = named.address;
  try {
    await tm.createInbox({ domain: "not-offered.example" });
    out.badDomain = "accepted";
  } catch (e) {
    out.badDomain = e.message;
  }
  out.empty = await tm.checkInbox(inbox.token);
  out.bogus = (await tm.checkInbox("bm9uZUB0ZW1wbXgudGVzdA.0000")) === undefined ? "expired" : "open";
  console.log(`READY ${inbox.address}`);
  let emails = [];
  for (let i = 0; i < 100 && emails.length === 0; i++) {
    emails = await tm.checkInbox(inbox.token);
    if (emails.length === 0) await new Promise((r) => setTimeout(r, 200));
  }
  out.emails = emails;
  clearTimeout(deadline);
  console.log("RESULT " + JSON.stringify(out));
  process.exit(0);
}
main().catch((e) => {
  console.log("RESULT " + JSON.stringify({ error: String(e && e.stack || e) }));
  process.exit(1);
});
