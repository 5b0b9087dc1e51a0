/**
 * Where the rollout service reads audit records from, and the one call that merges them.
 *
 * - `hubEmulatorSource`: the modules' records, from the IoT Hub emulator's kept device-to-cloud
 *   messages (`GET /emulator/messages/events`, emulator-only; a deployed hub routes them to the
 *   `device-audit` storage container instead, see docs/audit.md).
 * - `gatewayLogSource`: the gateways' records, from their JSON log files (the simulation writes
 *   each part's log to a file; in Azure they are the gateway container's log on each VM).
 *
 * A source that fails is reported in the answer and the others still count; only when every
 * source fails is the whole read an error.
 */
import { open } from "node:fs/promises";
import { request } from "node:https";
import iothub from "azure-iothub";
import type { AuditRecord } from "../../../../lib/audit/index.ts";
import { parseServiceConnectionString } from "../../../../lib/azure/iothub-connection-string.ts";
import { errorMessage, RelayFleetError } from "../../../../lib/errors.ts";
import {
  type AuditSelection,
  auditFromGatewayLog,
  auditFromRoutedMessages,
  type ParsedAudit,
  selectAudit,
} from "./records.ts";

export interface AuditSource {
  /** Shown to the operator: which part the records came from. */
  name: string;
  read(since: Date | undefined): Promise<ParsedAudit>;
}

export interface AuditSourceReport {
  name: string;
  ok: boolean;
  records?: number;
  dropped?: number;
  skipped?: number;
  error?: string;
}

export interface AuditAnswer {
  site?: string;
  since?: string;
  count: number;
  records: AuditRecord[];
  sources: AuditSourceReport[];
}

// A CommonJS package: Node's ESM loader cannot see its named exports, so take the namespace.
const { SharedAccessSignature } = iothub;

const TIMEOUT_MS = 10_000;
/** The most of one gateway log read per request: its tail, where the recent records are. */
export const GATEWAY_LOG_TAIL_BYTES = 8 * 1024 * 1024;
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

function getJson(
  url: URL,
  headers: Record<string, string>,
  ca: string | Buffer | undefined,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, timeout: TIMEOUT_MS, ...(ca ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) req.destroy(new Error("answer too large"));
        else chunks.push(c);
      });
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if ((res.statusCode ?? 0) >= 300) {
          const detail = /"Message":"([^"]{0,200})/.exec(text)?.[1] ?? text.slice(0, 200);
          reject(new Error(`HTTP ${res.statusCode}: ${detail}`));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error("the answer is not JSON"));
        }
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/**
 * Module records kept by the IoT Hub emulator, read with the service connection string or, with
 * `hostName` + `bearerToken`, with the app's managed identity (an Entra ID token for IoT Hub).
 */
export function hubEmulatorSource(
  options: ({ connectionString: string } | { hostName: string; bearerToken: () => Promise<string> }) & {
    restPort?: number | undefined;
    ca?: string | Buffer | undefined;
  },
): AuditSource {
  const sas =
    "connectionString" in options ? parseServiceConnectionString(options.connectionString) : undefined;
  const hostName = sas?.hostName ?? ("hostName" in options ? options.hostName : "");
  const authorization = async (): Promise<string> => {
    if (!sas) return `Bearer ${await (options as { bearerToken: () => Promise<string> }).bearerToken()}`;
    return SharedAccessSignature.create(
      sas.hostName,
      sas.sharedAccessKeyName,
      sas.sharedAccessKey,
      Math.floor(Date.now() / 1000) + 300,
    ).toString();
  };
  return {
    name: "modules (IoT Hub emulator)",
    async read(since) {
      const url = new URL(`https://${hostName}:${options.restPort ?? 443}/emulator/messages/events`);
      url.searchParams.set("property", "relayFleetType:audit");
      if (since) url.searchParams.set("since", since.toISOString());
      const body = await getJson(url, { authorization: await authorization() }, options.ca);
      if (!Array.isArray(body)) throw new Error("the emulator did not answer with a list of messages");
      return auditFromRoutedMessages(body);
    },
  };
}

async function readTail(file: string, maxBytes: number): Promise<string> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - maxBytes);
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    const text = buffer.toString("utf8");
    // Starting mid-file, the first line is cut: drop it.
    return start === 0 ? text : text.slice(text.indexOf("\n") + 1);
  } finally {
    await handle.close();
  }
}

/** Gateway records from log files; a file that does not exist yet has none. */
export function gatewayLogSource(files: string[]): AuditSource {
  return {
    name: "gateways (log files)",
    async read() {
      const out: ParsedAudit = { records: [], dropped: 0, skipped: 0 };
      for (const file of files) {
        let text: string;
        try {
          text = await readTail(file, GATEWAY_LOG_TAIL_BYTES);
        } catch (err) {
          if ((err as { code?: unknown }).code === "ENOENT") continue;
          throw err;
        }
        const parsed = auditFromGatewayLog(text);
        out.records.push(...parsed.records);
        out.skipped += parsed.skipped;
      }
      return out;
    },
  };
}

/** Reads every source and answers with the selected records, newest first. */
export async function readAudit(sources: AuditSource[], selection: AuditSelection): Promise<AuditAnswer> {
  if (sources.length === 0)
    throw new RelayFleetError(
      "RF_ERR_AUDIT_NOT_CONFIGURED",
      "Audit records cannot be read through this rollout service: in Azure, the modules' records are routed to the device-audit storage container and the gateways' are in their container logs (see docs/audit.md for the queries).",
    );
  const results = await Promise.allSettled(sources.map((s) => s.read(selection.since)));
  const reports: AuditSourceReport[] = [];
  const all: AuditRecord[] = [];
  results.forEach((r, i) => {
    const name = sources[i]?.name ?? `source ${i}`;
    if (r.status === "fulfilled") {
      all.push(...r.value.records);
      reports.push({
        name,
        ok: true,
        records: r.value.records.length,
        dropped: r.value.dropped,
        skipped: r.value.skipped,
      });
    } else reports.push({ name, ok: false, error: errorMessage(r.reason).slice(0, 300) });
  });
  if (reports.every((r) => !r.ok))
    throw new RelayFleetError(
      "RF_ERR_AUDIT_UNREADABLE",
      `No audit source could be read: ${reports.map((r) => `${r.name}: ${r.error}`).join("; ")}`,
    );
  const records = selectAudit(all, selection);
  return {
    ...(selection.site !== undefined ? { site: selection.site } : {}),
    ...(selection.since !== undefined ? { since: selection.since.toISOString() } : {}),
    count: records.length,
    records,
    sources: reports,
  };
}
