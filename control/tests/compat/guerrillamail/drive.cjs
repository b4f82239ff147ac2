// Drives tempmx's /compat/guerrillamail with the Guerrilla Mail client of the published
// e2e-mailbox package (control/tests/compat_guerrillamail.rs runs it), changed only in
// its base URL (the service's `API_URL` field). Protocol on stdout: `READY <address>`
// (the Rust test then delivers a mail over SMTP), then `RESULT <json>`.
const GuerrillaMailService = require("e2e-mailbox/lib/services/guerrillaMailService").default;

const deadline = setTimeout(() => {
  console.log("RESULT " + JSON.stringify({ error: "timed out" }));
  process.exit(2);
}, 45000);

async function main() {
  const out = {};
  const g = new GuerrillaMailService();
  g.API_URL = `${process.env.TEMPMX_BASE}/compat/guerrillamail/ajax.php`;
  const address = await g.createEmailAddress();
  out.address = address;
  out.emptyList = await g.fetchEmailList();
  console.log(`READY ${address}`);
  let list = [];
  for (let i = 0; i < 100 && list.length === 0; i++) {
    list = await g.fetchEmailList();
    if (list.length === 0) await new Promise((r) => setTimeout(r, 200));
  }
  out.list = list;
  const id = list[0].mail_id;
  out.email = await g.fetchEmailById(id);
  out.unknown = await g.fetchEmailById("1");
  out.deleted = await g.deleteEmailById(id);
  out.afterDelete = await g.fetchEmailList();
  out.set = await g.setEmailAddress("chosen.name@anything.example");
  out.afterSet = await g.fetchEmailList();
  out.forgot = await g.forgetEmailAddress(out.set.email_addr);
  out.afterForget = await g.fetchEmailList();
  clearTimeout(deadline);
  console.log("RESULT " + JSON.stringify(out));
  process.exit(0);
}
main().catch((e) => {
  console.log("RESULT " + JSON.stringify({ error: String(e && e.stack || e) }));
  process.exit(1);
});
