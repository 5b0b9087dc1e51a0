/**
 * The light site (sim/light-site.ts) of the gateway tests and the load generator, through the relay
 * emulator: it answers with the module's own listener side (lib/hyco/logical-port-listener.ts), so
 * its refusals carry the module's close codes, and its echo keeps the bytes a sender pipelined
 * behind the preamble.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import { describe, it, type TestContext } from "node:test";
import { CLOSE_CODES } from "../../lib/hyco/logical-port-listener.ts";
import { encodePreamble } from "../../lib/hyco/preamble.ts";
import { connectSender } from "../../lib/hyco/sender.ts";
import { openLogicalPort } from "../../lib/hyco/tunnel.ts";
import { LightSite, type LightSiteStreams } from "../../sim/light-site.ts";
import { waitFor } from "../helpers/index.ts";
import { relayWithHybridConnection } from "../helpers/relay-emulator-clients.ts";

async function site(t: TestContext, streams: LightSiteStreams) {
  const { listen, send } = await relayWithHybridConnection(t, "site-light");
  const light = new LightSite({ ...listen, streams });
  t.after(() => light.close());
  await light.startOnline();
  return { light, sender: send };
}

describe("light site", () => {
  it("echoes what came behind the preamble first, then live messages", async (t) => {
    const { light, sender } = await site(t, "echo");
    const ws = await connectSender(sender);
    const parts: Buffer[] = [];
    ws.on("message", (d: Buffer) => parts.push(d));
    ws.send(Buffer.concat([encodePreamble("any"), Buffer.from("one,")]));
    ws.send(Buffer.from("two"));
    await waitFor(() => Buffer.concat(parts).length >= 3 + 7, "echo");
    const all = Buffer.concat(parts);
    assert.deepEqual([...all.subarray(0, 3)], [1, 0, 0]);
    assert.equal(all.subarray(3).toString(), "one,two");
    assert.equal(light.accepted, 1);
    ws.close();
  });

  it("refuses with the module's close codes: unknown port 1008, unreachable target 1011, $standby 1008", async (t) => {
    const closed = net.createServer();
    closed.listen(0, "127.0.0.1");
    await once(closed, "listening");
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const { sender } = await site(t, { targets: { dead: deadPort } });
    await assert.rejects(openLogicalPort(sender, "nope"), {
      code: "RF_ERR_TUNNEL_REFUSED",
      closeCode: CLOSE_CODES.policy,
    });
    await assert.rejects(openLogicalPort(sender, "dead"), {
      code: "RF_ERR_TUNNEL_REFUSED",
      closeCode: CLOSE_CODES.targetFailed,
    });
    await assert.rejects(openLogicalPort(sender, "$standby"), {
      code: "RF_ERR_TUNNEL_REFUSED",
      closeCode: CLOSE_CODES.policy,
    });
  });
});
