// Drives tempmx's /compat/mailtm with the published mail.tm client, unchanged apart from
// its two base URLs (control/tests/compat_mailtm.rs runs it). Protocol on stdout: one
// `READY <address>` line once the Mercure stream is open (the Rust test then delivers a
// mail over SMTP), then one `RESULT <json>` line with everything the client saw.
// With TEMPMX_ACT_BASE set (another node of a fleet), the message is marked seen and
// deleted through that node, so the Mercure events on TEMPMX_BASE come from its changes.
import Mailjs from "@cemalgnlts/mailjs";

const base = process.env.TEMPMX_BASE;
const deadline = setTimeout(() => {
  console.log("RESULT " + JSON.stringify({ error: "timed out" }));
  process.exit(2);
}, 45000);

function client(at = base) {
  const m = new Mailjs({ rateLimitRetries: 5 });
  m.baseUrl = `${at}/compat/mailtm`;
  m.baseMercure = `${at}/compat/mailtm/.well-known/mercure`;
  return m;
}

function waitFor(events, name) {
  return new Promise((resolve) => {
    if (events[name]) return resolve(events[name]);
    events.waiters.push([name, resolve]);
  });
}

const out = {};
const mailjs = client();
const domains = await mailjs.getDomains();
out.domains = { status: domains.statusCode, list: domains.data };
const domain = await mailjs.getDomain(domains.data[0].id);
out.domain = { status: domain.statusCode, domain: domain.data.domain };
const created = await mailjs.createOneAccount();
out.created = { status: created.status, statusCode: created.statusCode };
const address = created.data.username;
out.address = address;
const dup = await mailjs.register(address, "another-password");
out.duplicate = { statusCode: dup.statusCode, message: dup.message };
const bad = await client().login(address, "wrong-password");
out.badLogin = { statusCode: bad.statusCode, message: bad.message };
const me = await mailjs.me();
out.me = { statusCode: me.statusCode, address: me.data.address, id: me.data.id, quota: me.data.quota };

const events = { waiters: [] };
const record = (name) => (data) => {
  events[name] = data;
  for (const [n, resolve] of events.waiters) if (n === name) resolve(data);
};
const opened = new Promise((resolve) => mailjs.on("open", resolve));
mailjs.on("arrive", record("arrive"));
mailjs.on("seen", record("seen"));
mailjs.on("delete", record("delete"));
mailjs.on("error", (e) => { out.sseErrors = (out.sseErrors || 0) + 1; });
await opened;
console.log(`READY ${address}`);

const arrived = await waitFor(events, "arrive");
out.arrive = { type: arrived["@type"], id: arrived.id, subject: arrived.subject, from: arrived.from, intro: arrived.intro };
const list = await mailjs.getMessages();
out.list = { statusCode: list.statusCode, ids: list.data.map((m) => m.id) };
const msg = await mailjs.getMessage(arrived.id);
out.message = {
  statusCode: msg.statusCode,
  verifications: msg.data.verifications,
  html: msg.data.html,
  text: msg.data.text,
  to: msg.data.to,
  seen: msg.data.seen,
  attachments: msg.data.attachments,
  downloadUrl: msg.data.downloadUrl,
};
let actor = mailjs;
if (process.env.TEMPMX_ACT_BASE) {
  actor = client(process.env.TEMPMX_ACT_BASE);
  const login = await actor.loginWithToken(mailjs.token);
  out.actorLogin = { statusCode: login.statusCode };
}
const seen = await actor.setMessageSeen(arrived.id, true);
out.setSeen = { statusCode: seen.statusCode, seen: seen.data.seen };
const seenEvent = await waitFor(events, "seen");
out.seenEvent = { id: seenEvent.id, seen: seenEvent.seen };
const source = await mailjs.getSource(arrived.id);
out.source = { statusCode: source.statusCode, hasSubject: source.data.data.includes("Subject:") };
const del = await actor.deleteMessage(arrived.id);
out.deleteMessage = { statusCode: del.statusCode };
const delEvent = await waitFor(events, "delete");
out.deleteEvent = { id: delEvent.id, isDeleted: delEvent.isDeleted };
const after = await mailjs.getMessages();
out.afterDelete = { count: after.data.length };
const token = mailjs.token;
const gone = await mailjs.deleteMe();
out.deleteMe = { statusCode: gone.statusCode };
const again = client();
const reuse = await again.loginWithToken(token);
out.oldToken = { statusCode: reuse.statusCode };
clearTimeout(deadline);
console.log("RESULT " + JSON.stringify(out));
process.exit(0);
