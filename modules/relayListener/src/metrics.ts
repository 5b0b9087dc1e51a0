/**
 * Prometheus metrics (prom-client, own registry) and the health endpoint, on the optional
 * METRICS_PORT. `/healthz` answers 200 while the module runs and the relay is online (or not
 * configured yet), 503 otherwise, so an orchestrator or a probe sees a stuck listener.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Registry } from "prom-client";
import { collectStandardDefaultMetrics } from "../../../lib/default-metrics.ts";

/** What the gauges read at scrape time (so the hot path only bumps counters). */
export interface MetricsSnapshot {
  activeByMapping: Record<string, number>;
  listenersOnline: number;
  appliedDesiredVersion: number | null;
  twinErrors: number;
  standbyHeld: number;
}

export class ModuleMetrics {
  readonly registry = new Registry();
  readonly connections = new Counter({
    name: "relay_listener_connections_total",
    help: "Relayed connections by mapping and outcome (accepted, refused, limit, allowlist, target-failed, unknown-port)",
    labelNames: ["mapping", "outcome"] as const,
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: "relay_listener_bytes_total",
    help: "Bytes relayed by mapping and direction (in: relay to target, out: target to relay)",
    labelNames: ["mapping", "direction"] as const,
    registers: [this.registry],
  });

  constructor(snapshot: () => MetricsSnapshot) {
    collectStandardDefaultMetrics(this.registry);
    new Gauge({
      name: "relay_listener_active_connections",
      help: "Live relayed connections by mapping",
      labelNames: ["mapping"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [mapping, n] of Object.entries(snapshot().activeByMapping)) this.set({ mapping }, n);
      },
    });
    new Gauge({
      name: "relay_listener_control_channels_online",
      help: "Relay control channels currently online",
      registers: [this.registry],
      collect() {
        this.set(snapshot().listenersOnline);
      },
    });
    new Gauge({
      name: "relay_listener_applied_desired_version",
      help: "$version of the desired properties last applied (-1 before any)",
      registers: [this.registry],
      collect() {
        this.set(snapshot().appliedDesiredVersion ?? -1);
      },
    });
    new Gauge({
      name: "relay_listener_standby_connections",
      help: "Standby connections held for senders (lib/hyco/standby.ts)",
      registers: [this.registry],
      collect() {
        this.set(snapshot().standbyHeld);
      },
    });
    new Gauge({
      name: "relay_listener_twin_errors",
      help: "Rejected parts of the desired properties currently reported",
      registers: [this.registry],
      collect() {
        this.set(snapshot().twinErrors);
      },
    });
  }
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

/** Serves `/metrics` and `/healthz`; `healthy()` decides the probe's answer. */
export function startHealthServer(
  metrics: ModuleMetrics,
  healthy: () => { ok: boolean; detail: Record<string, unknown> },
  port: number,
  host: string,
): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (url === "/metrics") {
      metrics.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(text);
        })
        .catch(() => {
          res.writeHead(500);
          res.end();
        });
      return;
    }
    if (url === "/healthz" || url === "/health") {
      const h = healthy();
      res.writeHead(h.ok ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: h.ok, ...h.detail }));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
