/**
 * Direct methods: `getStatus` (the reported picture, live), `testTarget` (can the module reach a
 * mapping's target now, and how fast; only configured mappings, so the method is no port
 * scanner) and `reconnect` (re-register the relay listeners and re-read the twin).
 * Every payload is validated; a bad one gets 400 with a message, never an exception.
 */
import { connect } from "node:net";
import { performance } from "node:perf_hooks";
import { z } from "zod";
import { errorMessage } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";
import { parseTarget, type ReportedProperties } from "../../../lib/twin/index.ts";
import type { Allowlist } from "./allowlist.ts";
import { withDeadline } from "./deadline.ts";
import type { ModuleHubClient } from "./hub-client.ts";
import type { Reconciler } from "./reconciler.ts";

export interface MethodResult {
  status: number;
  payload: unknown;
}

export interface MethodDeps {
  reconciler: Reconciler;
  allowlist: Allowlist;
  status(): ReportedProperties;
  refreshTwin(): Promise<void>;
  logger: Logger;
  /** Deadline of the SDK's response call (a hub gone mid-answer never calls back). */
  responseDeadlineMs?: number;
}

const TestTargetPayload = z.strictObject({ mapping: z.string().min(1).max(64) });

function probe(address: string, port: number, timeoutMs: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      socket.destroy();
      resolve(ms);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/** Runs one direct method; unknown names get 404. */
export async function runMethod(name: string, payload: unknown, deps: MethodDeps): Promise<MethodResult> {
  switch (name) {
    case "getStatus":
      return { status: 200, payload: { ...deps.status(), allowlist: deps.allowlist.describe() } };
    case "testTarget": {
      const parsed = TestTargetPayload.safeParse(payload);
      if (!parsed.success)
        return { status: 400, payload: { error: 'payload must be {"mapping": "<name>"}' } };
      const mapping = deps.reconciler.mappingConfig(parsed.data.mapping);
      if (!mapping) return { status: 404, payload: { error: `no mapping '${parsed.data.mapping}'` } };
      const { host, port } = parseTarget(mapping.target);
      const decision = await deps.allowlist.check(host, port);
      if (!decision.allowed) {
        return {
          status: 200,
          payload: {
            ok: false,
            mapping: parsed.data.mapping,
            target: mapping.target,
            error: decision.reason,
          },
        };
      }
      try {
        const connectMs = await probe(decision.address, port, mapping.connectTimeoutMs);
        return {
          status: 200,
          payload: {
            ok: true,
            mapping: parsed.data.mapping,
            target: mapping.target,
            address: decision.address,
            connectMs: Math.round(connectMs * 100) / 100,
          },
        };
      } catch (err) {
        return {
          status: 200,
          payload: {
            ok: false,
            mapping: parsed.data.mapping,
            target: mapping.target,
            address: decision.address,
            error: errorMessage(err),
          },
        };
      }
    }
    case "reconnect":
      await deps.reconciler.reconnect();
      void deps.refreshTwin();
      return { status: 200, payload: { ok: true } };
    default:
      return { status: 404, payload: { error: `unknown method '${name}'` } };
  }
}

/** Registers the methods on the module client. */
export function registerMethods(client: ModuleHubClient, deps: MethodDeps): void {
  for (const name of ["getStatus", "testTarget", "reconnect"]) {
    client.onMethod(name, (req, res) => {
      runMethod(name, req.payload, deps)
        .catch((err): MethodResult => ({ status: 500, payload: { error: errorMessage(err) } }))
        .then((result) =>
          withDeadline(
            new Promise<void>((resolve, reject) =>
              res.send(result.status, result.payload, (err) => (err ? reject(err) : resolve())),
            ),
            deps.responseDeadlineMs ?? 15_000,
            "direct method response",
          ),
        )
        .catch((err) =>
          deps.logger.warn({ method: name, err: errorMessage(err) }, "direct method response failed"),
        );
    });
  }
}
