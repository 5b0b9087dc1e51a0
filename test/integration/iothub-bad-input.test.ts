/**
 * Bad input against the IoT Hub emulator over real sockets: bad, expired and misdirected SAS
 * tokens, unknown topics, QoS 2, malformed JSON, oversize twins, garbage bytes. Each gets a clear
 * status or disconnect, the state does not change, and the hub keeps serving good clients.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import mqttPacket, { type Packet } from "mqtt-packet";
import { createHubSasToken } from "../../sim/iothub-emulator/auth.ts";
import { type IotHubEmulator, startIotHubEmulator } from "../../sim/iothub-emulator/index.ts";
import { waitFor } from "../helpers/index.ts";

interface RawClient {
  socket: TLSSocket;
  packets: Packet[];
  closed: Promise<void>;
  isClosed(): boolean;
  send(p: Packet): void;
  next(cmd: Packet["cmd"]): Promise<Packet>;
}

function rawClient(emu: IotHubEmulator): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: emu.host, port: emu.mqttPort, ca: emu.caCert }, () => resolve(client));
    socket.once("error", reject);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const packets: Packet[] = [];
    let closed = false;
    parser.on("packet", (p: Packet) => packets.push(p));
    socket.on("data", (b: Buffer) => parser.parse(b));
    socket.on("error", () => undefined);
    const closedP = new Promise<void>((r) =>
      socket.on("close", () => {
        closed = true;
        r();
      }),
    );
    const client: RawClient = {
      socket,
      packets,
      closed: closedP,
      isClosed: () => closed,
      send: (p) => socket.write(mqttPacket.generate(p)),
      next: (cmd) => waitFor(() => packets.find((p) => p.cmd === cmd), `${cmd} packet`, { timeoutMs: 5000 }),
    };
  });
}

function connectPacket(emu: IotHubEmulator, clientId: string, password: string): Packet {
  return {
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: 4,
    clean: false,
    keepalive: 60,
    clientId,
    username: `${emu.hostName}/${clientId}/?api-version=2021-04-12`,
    password: Buffer.from(password),
  };
}

function moduleToken(
  emu: IotHubEmulator,
  d: string,
  m: string,
  opts: { key?: string; nowSeconds?: number } = {},
) {
  const key = opts.key ?? (emu.hub.module(d, m).primaryKey as string);
  return createHubSasToken(`${emu.hostName}/devices/${d}/modules/${m}`, key, {
    ...(opts.nowSeconds === undefined ? {} : { nowSeconds: opts.nowSeconds }),
  });
}

async function connected(emu: IotHubEmulator, d: string, m: string): Promise<RawClient> {
  const c = await rawClient(emu);
  c.send(connectPacket(emu, `${d}/${m}`, moduleToken(emu, d, m)));
  const ack = (await c.next("connack")) as { returnCode?: number };
  assert.equal(ack.returnCode, 0);
  return c;
}

async function refusedWith(
  emu: IotHubEmulator,
  clientId: string,
  password: string,
): Promise<number | undefined> {
  const c = await rawClient(emu);
  c.send(connectPacket(emu, clientId, password));
  const ack = (await c.next("connack")) as { returnCode?: number };
  await c.closed;
  return ack.returnCode;
}

describe("IoT Hub emulator under bad input", () => {
  let emu: IotHubEmulator;
  const D = "bad-dev";
  const M = "relayListener";

  before(async () => {
    emu = await startIotHubEmulator();
    emu.provisionDevice(D, { iotEdge: true });
    emu.hub.createModule(emu.hub.device(D), M);
    emu.hub.createModule(emu.hub.device(D), "other");
  });
  after(() => emu?.close());

  /** The hub still accepts a correct client and answers its twin GET. */
  async function stillServes(): Promise<void> {
    const c = await connected(emu, D, M);
    c.send({
      cmd: "publish",
      topic: "$iothub/twin/GET/?$rid=ok",
      payload: " ",
      qos: 0,
      dup: false,
      retain: false,
    });
    const res = (await c.next("publish")) as { topic: string };
    assert.match(res.topic, /^\$iothub\/twin\/res\/200\/\?\$rid=ok/);
    c.socket.end();
  }

  test("a token signed with the wrong key is CONNACK 5", async () => {
    const token = moduleToken(emu, D, M, { key: Buffer.alloc(32, 7).toString("base64") });
    assert.equal(await refusedWith(emu, `${D}/${M}`, token), 5);
    await stillServes();
  });

  test("an expired token is CONNACK 5", async () => {
    const token = moduleToken(emu, D, M, { nowSeconds: Math.floor(Date.now() / 1000) - 7200 });
    assert.equal(await refusedWith(emu, `${D}/${M}`, token), 5);
  });

  test("a valid token of another identity, and an unknown identity, are CONNACK 5", async () => {
    assert.equal(await refusedWith(emu, `${D}/other`, moduleToken(emu, D, M)), 5);
    assert.equal(await refusedWith(emu, `${D}/ghost`, moduleToken(emu, D, M)), 5);
    assert.equal(await refusedWith(emu, `${D}/${M}`, "not a token"), 5);
  });

  test("publishing to an unknown topic or as another identity closes the connection", async () => {
    const a = await connected(emu, D, M);
    a.send({
      cmd: "publish",
      topic: "devices/elsewhere/messages/events/",
      payload: "x",
      qos: 0,
      dup: false,
      retain: false,
    });
    await a.closed;
    const b = await connected(emu, D, M);
    b.send({ cmd: "publish", topic: "$iothub/nonsense", payload: "x", qos: 0, dup: false, retain: false });
    await b.closed;
    await stillServes();
  });

  test("a second connection with the same client id closes the first", async () => {
    const first = await connected(emu, D, M);
    const second = await connected(emu, D, M);
    await first.closed;
    assert.equal(second.isClosed(), false);
    assert.equal(emu.hub.module(D, M).connectionState, "Connected");
    second.socket.end();
  });

  test("a subscription to a foreign topic is refused in SUBACK", async () => {
    const c = await connected(emu, D, M);
    c.send({
      cmd: "subscribe",
      messageId: 1,
      subscriptions: [
        { topic: "$iothub/twin/res/#", qos: 0 },
        { topic: "devices/other-device/messages/devicebound/#", qos: 1 },
      ],
    });
    const ack = (await c.next("suback")) as { granted: number[] };
    assert.deepEqual(ack.granted, [0, 0x80]);
    c.socket.end();
  });

  test("QoS 2 closes the connection and changes nothing", async () => {
    const before = emu.hub.twinProperties(D, M);
    const c = await connected(emu, D, M);
    c.send({
      cmd: "publish",
      topic: "$iothub/twin/PATCH/properties/reported/?$rid=q2",
      payload: '{"qos2":true}',
      qos: 2,
      messageId: 5,
      dup: false,
      retain: false,
    });
    await c.closed;
    assert.deepEqual(emu.hub.twinProperties(D, M), before);
  });

  test("malformed and oversize reported patches get an error response and change nothing", async () => {
    const before = emu.hub.twinProperties(D, M);
    const c = await connected(emu, D, M);
    const send = (rid: string, payload: string) =>
      c.send({
        cmd: "publish",
        topic: `$iothub/twin/PATCH/properties/reported/?$rid=${rid}`,
        payload,
        qos: 0,
        dup: false,
        retain: false,
      });
    send("bad-json", "{not json");
    send("too-big", JSON.stringify({ blob: "x".repeat(33_000) }));
    send("bad-key", JSON.stringify({ "has space": 1 }));
    await waitFor(() => c.packets.filter((p) => p.cmd === "publish").length >= 3, "three twin responses");
    for (const p of c.packets.filter((x) => x.cmd === "publish") as Array<{
      topic: string;
      payload: Buffer;
    }>) {
      assert.match(p.topic, /^\$iothub\/twin\/res\/400\//);
      const body = JSON.parse(p.payload.toString()) as { errorCode?: number; message?: string };
      assert.equal(typeof body.errorCode, "number");
      assert.ok(body.message);
    }
    assert.deepEqual(emu.hub.twinProperties(D, M), before);
    assert.equal(c.isClosed(), false);
    c.socket.end();
  });

  test("garbage bytes close the socket; the hub keeps serving", async () => {
    const c = await rawClient(emu);
    c.socket.write(Buffer.from([0xf0, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
    await c.closed;
    const early = await rawClient(emu);
    early.send({ cmd: "pingreq" });
    await early.closed;
    await stillServes();
  });

  test("telemetry and output events are recorded with their properties", async () => {
    const c = await connected(emu, D, M);
    c.send({
      cmd: "publish",
      topic: `devices/${D}/modules/${M}/messages/events/%24.on=out1&%24.ct=application%2Fjson&kind=status/`,
      payload: '{"ok":true}',
      qos: 1,
      messageId: 9,
      dup: false,
      retain: false,
    });
    await c.next("puback");
    const [msg] = emu.telemetry.list({ deviceId: D, moduleId: M });
    assert.equal(msg?.outputName, "out1");
    assert.equal(msg?.properties.kind, "status");
    assert.equal(msg?.body.toString(), '{"ok":true}');
    c.socket.end();
  });

  test("an MQTT packet announcing more than the size limit closes the connection", async () => {
    const c = await connected(emu, D, M);
    // PUBLISH header with a 1 MiB remaining length, then keep sending bytes.
    c.socket.write(Buffer.from([0x30, 0x80, 0x80, 0x40]));
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    for (let i = 0; i < 8 && !c.isClosed(); i++) c.socket.write(chunk);
    await c.closed;
    await stillServes();
  });

  test("REST: PUT replaces a module twin and the connected module gets a patch with nulls", async () => {
    const owner = emu.hub.store.policies.iothubowner!;
    const auth = createHubSasToken(emu.hostName, owner.primaryKey, { keyName: "iothubowner" });
    emu.hub.updateTwin(
      D,
      M,
      { tags: { old: 1 }, properties: { desired: { a: 1, b: { c: 2 } } } },
      "*",
      "patch",
    );
    const c = await connected(emu, D, M);
    c.send({
      cmd: "subscribe",
      messageId: 2,
      subscriptions: [{ topic: "$iothub/twin/PATCH/properties/desired/#", qos: 0 }],
    });
    await c.next("suback");
    const res = await fetchJson(
      emu,
      "PUT",
      `/twins/${D}/modules/${M}`,
      JSON.stringify({ tags: { fresh: true }, properties: { desired: { b: { d: 3 } } } }),
      auth,
    );
    assert.equal(res.status, 200);
    const twin = res.body as { tags: unknown; properties: { desired: Record<string, unknown> } };
    assert.deepEqual(twin.tags, { fresh: true });
    assert.equal(twin.properties.desired.a, undefined);
    const patch = (await c.next("publish")) as { topic: string; payload: Buffer };
    assert.match(patch.topic, /^\$iothub\/twin\/PATCH\/properties\/desired\/\?\$version=\d+$/);
    const body = JSON.parse(patch.payload.toString()) as Record<string, unknown>;
    assert.equal(body.a, null);
    assert.deepEqual(body.b, { c: null, d: 3 });
    assert.equal(typeof body.$version, "number");
    c.socket.end();
  });

  test("REST: malformed JSON 400, bad SAS 401, unknown route 404, no state change", async () => {
    const owner = emu.hub.store.policies.iothubowner!;
    const auth = createHubSasToken(emu.hostName, owner.primaryKey, { keyName: "iothubowner" });
    const call = (method: string, path: string, body: string | undefined, authorization = auth) =>
      fetchJson(emu, method, path, body, authorization);
    const before = emu.hub.getTwin(D);
    const malformed = await call("PATCH", `/twins/${D}`, '{"tags": {oops');
    assert.equal(malformed.status, 400);
    assert.match(String((malformed.body as { Message?: string }).Message), /^ErrorCode:ArgumentInvalid;/);
    assert.equal(malformed.headers.get("iothub-errorcode"), "ArgumentInvalid");
    const badSas = await call("GET", `/devices/${D}`, undefined, auth.replace(/sig=[^&]+/, "sig=AAAA"));
    assert.equal(badSas.status, 401);
    const noAuth = await call("GET", `/devices/${D}`, undefined, "");
    assert.equal(noAuth.status, 401);
    const unknown = await call("GET", "/nothing/here", undefined);
    assert.equal(unknown.status, 404);
    const notObject = await call("PUT", "/devices/x1", "[1,2]");
    assert.equal(notObject.status, 400);
    const badId = await call("PUT", "/devices/bad%20id", "{}");
    assert.equal(badId.status, 400);
    assert.deepEqual(emu.hub.getTwin(D), before);
    assert.throws(() => emu.hub.device("x1"));
  });
});

async function fetchJson(
  emu: IotHubEmulator,
  method: string,
  path: string,
  body: string | undefined,
  authorization: string,
): Promise<{ status: number; body: unknown; headers: Headers }> {
  // undici's fetch cannot take a per-call CA; node:https can.
  const https = await import("node:https");
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: emu.host,
        port: emu.httpsPort,
        ca: emu.caCert,
        method,
        path: `${path}?api-version=2021-04-12`,
        headers: { authorization, "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") headers.set(k, v);
          resolve({
            status: res.statusCode ?? 0,
            body: text ? (JSON.parse(text) as unknown) : undefined,
            headers,
          });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
