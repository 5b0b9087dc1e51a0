/**
 * The port ledger: public ports and host-name routes → site + logical port, and one row per site
 * with what a gateway needs to reach it. Allocation is insert-if-absent (`createEntity`, 409 means
 * taken), which Table storage makes atomic per row, so several rollout instances can allocate at
 * once without ever handing out one port twice (ADR 0003).
 */
import { odata, type TableClient } from "@azure/data-tables";
import { RelayFleetError } from "../errors.ts";
import { createDeviceClaims } from "./device-claims.ts";
import { createOrdinalCounters } from "./ordinals.ts";
import type { AllocateRequest, PortLedger } from "./port-ledger.ts";
import { DEFAULT_PUBLIC_PORT_RANGES, type PortRange, parsePortRanges, portsOf } from "./port-ranges.ts";
import {
  DEFAULT_LEDGER_TABLE,
  hostRouteKey,
  parseRouteEntity,
  parseSiteEntity,
  ROUTE_PARTITION,
  type RouteRow,
  routeToEntity,
  SITE_PARTITION,
  type SiteRow,
  siteToEntity,
  TOMBSTONE_PARTITION,
  tombstoneKey,
} from "./schema.ts";
import { withStorageErrors } from "./storage-error.ts";
import { createTableClient, statusOf } from "./table.ts";

/** Creates a ledger on a storage connection string (Azure or Azurite). */
export function createLedger(
  connectionString: string,
  table: string = DEFAULT_LEDGER_TABLE,
  config: { ranges: readonly PortRange[] } = { ranges: parsePortRanges(DEFAULT_PUBLIC_PORT_RANGES) },
): PortLedger {
  // An API call waits on the ledger: with the SDK's default retries (3, from 800 ms, doubling)
  // storage that is down answers after ~5 s. Two short retries ride out a blip and still fail
  // within a second, as a 503 naming storage (see `storageError`).
  const client = createTableClient(connectionString, table, {
    retryOptions: { maxRetries: 2, retryDelayInMs: 100, maxRetryDelayInMs: 400 },
  });
  return createLedgerOnClient(client, config);
}

/** Same as {@link createLedger} on an existing client (tests, custom credentials). */
export function createLedgerOnClient(
  client: TableClient,
  config: { ranges: readonly PortRange[] },
): PortLedger {
  // Ports known to be taken: a hint only, so allocation rarely collides. Correctness comes from
  // createEntity; the hint is refreshed from the table when the ranges look exhausted.
  const taken = new Set<number>();
  const pending = new Set<number>();
  // The ranges' ports in order, and how far from their start every port is known taken: an
  // allocation starts there instead of stepping past every taken port again (at 10,000 sites,
  // 10,000 ports a call). Still the lowest free port, as before.
  const ports = [...portsOf(config.ranges)];
  const indexOfPort = new Map(ports.map((port, i) => [port, i]));
  let firstMaybeFree = 0;
  const untake = (port: number) => {
    taken.delete(port);
    firstMaybeFree = Math.min(firstMaybeFree, indexOfPort.get(port) ?? firstMaybeFree);
  };
  // Shared ports whose `shared` row this instance has seen: a hint that spares the insert-and-read
  // before each host route (the read after the route's insert still confirms the row).
  const sharedPorts = new Set<number>();
  let loaded: Promise<void> | undefined;
  let tableReady: Promise<void> | undefined;

  const refreshTaken = async () => {
    const rows = await listRoutes();
    taken.clear();
    firstMaybeFree = 0;
    for (const r of rows) taken.add(r.port);
  };

  async function listRoutes(filter: { siteId?: string } = {}): Promise<RouteRow[]> {
    // odata (the SDK's filter builder) quotes and escapes each value: no hand-written escaping.
    const parts = [odata`PartitionKey eq ${ROUTE_PARTITION}`];
    if (filter.siteId !== undefined) parts.push(odata`siteId eq ${filter.siteId}`);
    const rows: RouteRow[] = [];
    for await (const e of client.listEntities({ queryOptions: { filter: parts.join(" and ") } })) {
      const parsed = parseRouteEntity(e as Record<string, unknown>);
      if (parsed.success) rows.push(parsed.data);
    }
    return rows;
  }

  async function getRoute(rowKey: string): Promise<RouteRow | undefined> {
    try {
      const e = await client.getEntity(ROUTE_PARTITION, rowKey);
      const parsed = parseRouteEntity(e as Record<string, unknown>);
      return parsed.success ? parsed.data : undefined;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /**
   * Deletes a site or route row; absent is fine. The tombstone comes first, so a crash between the
   * two leaves a row that a retry deletes, never a deletion that gateways following the ledger by
   * its changes cannot see (follow-ledger.ts).
   */
  async function deleteRow(partitionKey: string, rowKey: string): Promise<void> {
    await client.upsertEntity(
      { partitionKey: TOMBSTONE_PARTITION, rowKey: tombstoneKey(partitionKey, rowKey) },
      "Replace",
    );
    try {
      await client.deleteEntity(partitionKey, rowKey);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  /** Inserts a row; false when the row already exists. */
  async function insert(row: RouteRow): Promise<boolean> {
    try {
      await client.createEntity(routeToEntity(row));
      return true;
    } catch (err) {
      if (statusOf(err) === 409) return false;
      throw err;
    }
  }

  function routeRow(req: AllocateRequest, rowKey: string, port: number, kind: RouteRow["kind"]): RouteRow {
    const o = req.options ?? {};
    const row: RouteRow = {
      rowKey,
      kind,
      port,
      siteId: req.siteId,
      portName: req.portName,
      allowCidrs: o.allowCidrs ?? [],
      maxConnections: o.maxConnections ?? 0,
      ratePerMinute: o.ratePerMinute ?? 0,
      proxyProtocol: o.proxyProtocol ?? false,
    };
    if (o.idleTimeoutMs !== undefined) row.idleTimeoutMs = o.idleTimeoutMs;
    if (o.maxConnectionsPerSource !== undefined) row.maxConnectionsPerSource = o.maxConnectionsPerSource;
    if (o.silentTimeoutMs !== undefined) row.silentTimeoutMs = o.silentTimeoutMs;
    if (o.logicalPort !== undefined) row.logicalPort = o.logicalPort;
    if (req.endpoint.kind !== "tcp") row.hostname = req.endpoint.hostname.toLowerCase();
    return row;
  }

  function inRanges(port: number): boolean {
    return config.ranges.some((r) => port >= r.from && port <= r.to);
  }

  /** Same site and logical port: a retry of an earlier allocation, not a conflict. */
  const sameOwner = (row: RouteRow | undefined, req: AllocateRequest) =>
    row !== undefined && row.siteId === req.siteId && row.portName === req.portName;

  async function allocateNamedTcp(req: AllocateRequest, port: number): Promise<RouteRow> {
    if (!inRanges(port)) {
      throw new RelayFleetError(
        "RF_ERR_LEDGER_PORT_OUT_OF_RANGE",
        `Port ${port} is outside the configured public port ranges.`,
      );
    }
    const row = routeRow(req, String(port), port, "tcp");
    if (await insert(row)) return row;
    const existing = await getRoute(String(port));
    if (existing && sameOwner(existing, req)) return existing;
    throw new RelayFleetError("RF_ERR_LEDGER_PORT_TAKEN", `Public port ${port} is already in use.`);
  }

  async function tryFreePorts(req: AllocateRequest): Promise<RouteRow | undefined> {
    while (firstMaybeFree < ports.length && taken.has(ports[firstMaybeFree] as number)) firstMaybeFree++;
    for (let i = firstMaybeFree; i < ports.length; i++) {
      const port = ports[i] as number;
      if (taken.has(port) || pending.has(port)) continue;
      pending.add(port);
      try {
        const row = routeRow(req, String(port), port, "tcp");
        const ok = await insert(row);
        taken.add(port);
        if (ok) return row;
      } finally {
        pending.delete(port);
      }
    }
    return undefined;
  }

  async function allocateAnyTcp(req: AllocateRequest): Promise<RouteRow> {
    loaded ??= refreshTaken().catch((err) => {
      loaded = undefined;
      throw err;
    });
    await loaded;
    const first = await tryFreePorts(req);
    if (first) return first;
    await refreshTaken(); // ports released by other instances become visible here
    const second = await tryFreePorts(req);
    if (second) return second;
    throw new RelayFleetError(
      "RF_ERR_LEDGER_RANGE_EXHAUSTED",
      "Every public port in the configured ranges is in use.",
    );
  }

  async function ensureShared(port: number): Promise<void> {
    const shared: RouteRow = {
      rowKey: String(port),
      kind: "shared",
      port,
      siteId: "",
      portName: "",
      allowCidrs: [],
      maxConnections: 0,
      ratePerMinute: 0,
      proxyProtocol: false,
    };
    if (await insert(shared)) {
      sharedPorts.add(port);
      return;
    }
    const existing = await getRoute(String(port));
    if (existing === undefined) {
      // Released between our insert and read: try once more.
      if (await insert(shared)) sharedPorts.add(port);
      return;
    }
    if (existing.kind !== "shared") {
      sharedPorts.delete(port);
      throw new RelayFleetError(
        "RF_ERR_LEDGER_PORT_TAKEN",
        `Public port ${port} is a dedicated TCP port and cannot carry host-name routes.`,
      );
    }
    sharedPorts.add(port);
  }

  async function allocateHost(req: AllocateRequest, port: number, hostname: string): Promise<RouteRow> {
    const kind = req.endpoint.kind as "tls-sni" | "http-host";
    if (!sharedPorts.has(port)) await ensureShared(port);
    const row = routeRow(req, hostRouteKey(port, hostname), port, kind);
    if (!(await insert(row))) {
      const existing = await getRoute(row.rowKey);
      if (!sameOwner(existing, req)) {
        throw new RelayFleetError(
          "RF_ERR_LEDGER_HOSTNAME_TAKEN",
          `Host name ${hostname} on port ${port} is already routed to another mapping.`,
        );
      }
      return existing as RouteRow;
    }
    // A concurrent release may have removed the shared row after our first check (or before it,
    // when the hint stood in for the check): one read confirms it, and a missing row is written.
    try {
      if ((await getRoute(String(port)))?.kind !== "shared") await ensureShared(port);
    } catch (err) {
      // The port became a dedicated one (another instance): the route just inserted goes again.
      await deleteRow(ROUTE_PARTITION, row.rowKey).catch(() => undefined);
      throw err;
    }
    return row;
  }

  const ledger: PortLedger = {
    table: client.tableName,
    client,
    ...createDeviceClaims(client),
    ...createOrdinalCounters(client),
    async ensureTable() {
      tableReady ??= client.createTable().catch((err) => {
        tableReady = undefined;
        throw err;
      });
      await tableReady;
    },
    async getSite(siteId) {
      try {
        const e = await client.getEntity(SITE_PARTITION, siteId);
        const parsed = parseSiteEntity(e as Record<string, unknown>);
        return parsed.success ? parsed.data : undefined;
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw err;
      }
    },
    async putSite(row) {
      await client.upsertEntity(siteToEntity(row), "Replace");
    },
    async deleteSite(siteId) {
      await deleteRow(SITE_PARTITION, siteId);
    },
    async pruneTombstones(olderThan) {
      const filter = odata`PartitionKey eq ${TOMBSTONE_PARTITION} and Timestamp lt ${olderThan}`;
      let pruned = 0;
      for await (const e of client.listEntities({ queryOptions: { filter, select: ["RowKey"] } })) {
        try {
          await client.deleteEntity(TOMBSTONE_PARTITION, String(e.rowKey));
          pruned++;
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
        }
      }
      return pruned;
    },
    async listSites() {
      const rows: SiteRow[] = [];
      const filter = odata`PartitionKey eq ${SITE_PARTITION}`;
      for await (const e of client.listEntities({ queryOptions: { filter } })) {
        const parsed = parseSiteEntity(e as Record<string, unknown>);
        if (parsed.success) rows.push(parsed.data);
      }
      return rows;
    },
    listRoutes,
    async allocate(req) {
      const ep = req.endpoint;
      if (ep.kind === "tcp") {
        return ep.port === undefined ? allocateAnyTcp(req) : allocateNamedTcp(req, ep.port);
      }
      return allocateHost(req, ep.port, ep.hostname);
    },
    async checkAllocate(req) {
      const ep = req.endpoint;
      if (ep.kind === "tcp") {
        if (ep.port === undefined) return;
        if (!inRanges(ep.port)) {
          throw new RelayFleetError(
            "RF_ERR_LEDGER_PORT_OUT_OF_RANGE",
            `Port ${ep.port} is outside the configured public port ranges (${config.ranges.map((r) => `${r.from}-${r.to}`).join(", ")}).`,
          );
        }
        const existing = await getRoute(String(ep.port));
        if (existing && !sameOwner(existing, req)) {
          throw new RelayFleetError("RF_ERR_LEDGER_PORT_TAKEN", `Public port ${ep.port} is already in use.`);
        }
        return;
      }
      // A port known shared needs no read here: allocate confirms the shared row after its insert.
      const shared = sharedPorts.has(ep.port) ? undefined : await getRoute(String(ep.port));
      if (shared && shared.kind !== "shared") {
        throw new RelayFleetError(
          "RF_ERR_LEDGER_PORT_TAKEN",
          `Public port ${ep.port} is a dedicated TCP port and cannot carry host-name routes.`,
        );
      }
      const named = await getRoute(hostRouteKey(ep.port, ep.hostname));
      if (named && !sameOwner(named, req)) {
        throw new RelayFleetError(
          "RF_ERR_LEDGER_HOSTNAME_TAKEN",
          `Host name ${ep.hostname} on port ${ep.port} is already routed to another mapping.`,
        );
      }
    },
    async updateRoute(row) {
      await client.upsertEntity(routeToEntity(row), "Replace");
    },
    async release(rowKey) {
      const route = await getRoute(rowKey);
      await deleteRow(ROUTE_PARTITION, rowKey);
      if (route === undefined) return;
      if (route.kind === "tcp") {
        untake(route.port);
        return;
      }
      if (route.kind === "shared") {
        sharedPorts.delete(route.port);
        return;
      }
      const others = (await listRoutes()).filter((r) => r.port === route.port && r.kind !== "shared");
      if (others.length === 0) {
        sharedPorts.delete(route.port);
        await deleteRow(ROUTE_PARTITION, String(route.port));
      }
    },
  };
  return withStorageErrors(ledger);
}
