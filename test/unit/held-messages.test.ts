/** lib/hyco/held-messages.ts on a real loopback WebSocket pair. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HeldMessages, messageBytes } from "../../lib/hyco/held-messages.ts";
import { waitFor } from "../helpers/index.ts";
import { wsPair } from "../helpers/ws-pair.ts";

describe("HeldMessages", () => {
  it("keeps the messages given and those arriving, in order, with the WebSocket paused", async (t) => {
    const { client, server } = await wsPair(t);
    const held = new HeldMessages(server, [Buffer.from("a"), Buffer.alloc(0)]);
    assert.equal(server.isPaused, true);
    client.send(Buffer.from("b"));
    client.send(Buffer.from("c"));
    // Paused: nothing more is read off the socket until the hold is taken.
    await new Promise((r) => setTimeout(r, 50));
    const late: string[] = [];
    server.on("message", (m) => late.push(String(m)));
    const taken = held.take();
    assert.equal(server.isPaused, false, "take resumes the WebSocket");
    // What was read before the pause is held; the rest arrives as ordinary messages after take.
    await waitFor(() => taken.length + late.length === 4, "all four messages");
    assert.deepEqual([...taken.map(String), ...late], ["a", "", "b", "c"]);
  });

  it("gives its messages once; a second take is empty and leaves the WebSocket alone", async (t) => {
    const { server } = await wsPair(t);
    const held = new HeldMessages(server, [Buffer.from("x")]);
    assert.deepEqual(held.take().map(String), ["x"]);
    server.pause();
    assert.deepEqual(held.take(), []);
    assert.equal(server.isPaused, true, "a second take does not resume");
  });
});

describe("messageBytes", () => {
  it("turns every ws binaryType into one Buffer", () => {
    const bytes = Buffer.from([1, 2, 3]);
    assert.equal(messageBytes(bytes), bytes, "a Buffer is passed through, not copied");
    assert.deepEqual(messageBytes([Buffer.from([1]), Buffer.from([2, 3])]), bytes);
    assert.deepEqual(messageBytes(new Uint8Array([1, 2, 3]).buffer), bytes);
  });
});
